"""Dense, tiled evaluation of the ACNN and the per-pixel focus map (paper step 1).

Two runtimes compute the same network (:class:`Network`): torch (:class:`TorchNetwork`:
any device, bf16 where native, training) and onnxruntime on the CPU
(:class:`~acnn_fusion.core.onnx_runtime.OnnxNetwork`: fp32, starts without torch).
:func:`open_network` picks one from the options (``runtime``, ``device``, ``precision``);
``auto`` prefers onnxruntime for CPU inference when it is installed and the weights have an
ONNX export (``docs/performance.md``). Nothing here imports torch until the torch runtime
is used.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import math
import os
import platform
import re
import sys
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from copy import deepcopy
from pathlib import Path
from queue import SimpleQueue
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

import numpy as np

from acnn_fusion.core.geometry import PATCH_SIZE, SCORE_STRIDE, score_map_shape
from acnn_fusion.options import DEFAULT_TILE, PRECISIONS, RUNTIMES, FusionOptions

if TYPE_CHECKING:
    import torch

    from acnn_fusion.core.model import ACNN

ProgressCallback = Callable[[int, int], None]
_Item = TypeVar("_Item")
_Net = TypeVar("_Net", bound="Network")


def select_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then CPU; an explicit device must be available."""
    import torch

    name = str(device).lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available on this machine")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {device!r} requested but Apple MPS is not available on this machine")
    if not (name == "cpu" or name == "mps" or name.startswith("cuda")):
        raise ValueError(f"unknown device {device!r}; use auto, cpu, cuda, cuda:N or mps")
    return torch.device(name)


def available_devices() -> list[str]:
    """Device names that :func:`select_device` accepts on this machine."""
    import torch

    names = ["auto", "cpu"]
    if torch.cuda.is_available():
        names.append("cuda")
    if torch.backends.mps.is_available():
        names.append("mps")
    return names


def _cpu_flags() -> str:
    """The text of ``/proc/cpuinfo`` (Linux; empty elsewhere), where the CPU's flags are."""
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


@functools.cache
def _cpu_has_native_bf16() -> bool:
    """True on x86 CPUs with AVX-512 BF16 or AMX (Linux); elsewhere bf16 would be emulated."""
    flags = _cpu_flags()
    return " avx512_bf16" in flags or " amx_bf16" in flags


@functools.cache
def _cpu_has_amx_bf16() -> bool:
    """True on x86 CPUs with AMX tiles for bf16 (Linux): bf16 matrix work ~2× AVX-512 BF16's."""
    return " amx_bf16" in _cpu_flags()


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """The dtype the network runs in: ``torch.bfloat16`` (autocast) or ``torch.float32``.

    bf16 changes 0.05 % of the Lytro-20 decision-map pixels and runs the CPU network ~1.8×
    faster where the CPU has native bf16 (``docs/performance.md``); on CPUs without it, bf16
    is emulated and several times slower, so ``auto`` keeps fp32 there.
    """
    import torch

    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose from {PRECISIONS}")
    if precision == "fp32":
        return torch.float32
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    if device.type == "cpu" and _cpu_has_native_bf16():
        return torch.bfloat16
    return torch.float32


@contextlib.contextmanager
def _ieee_fp32_convolutions() -> Iterator[None]:
    """cuDNN convolutions in full fp32: by default torch lets them round inputs to TF32."""
    import torch

    before = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = before


def autocast(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    """Mixed-precision context for ``dtype`` on ``device``; for fp32, IEEE fp32 (no TF32 on CUDA)."""
    import torch

    if dtype == torch.float32:
        return _ieee_fp32_convolutions() if device.type == "cuda" else contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def thread_settings() -> dict[str, object]:
    """How the CPU runs the network: torch threads (if torch is loaded), onnxruntime threads,
    OpenMP wait policy, usable CPUs (for reports)."""
    from acnn_fusion import core

    torch_module = sys.modules.get("torch")
    return {
        "torch_threads": torch_module.get_num_threads() if torch_module is not None else None,
        "onnx_intra_op_threads": cpu_threads(),
        "onnx_spinning": spinning_allowed(),
        "usable_cpus": core.usable_cpus(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "gomp_spincount": os.environ.get("GOMP_SPINCOUNT"),
        "set_by_acnn_fusion": dict(core.OPENMP_DEFAULTS_APPLIED),
    }


def score_tiles(height: int, width: int, tile: int, halo: int = 0) -> list[tuple[slice, slice, slice, slice]]:
    """Split the score map of an image into tiles: (score rows, score cols, input rows, input cols).

    Each tile carries the input rows and columns its patches need, so tiled evaluation
    computes exactly the patches an untiled one does. With ``halo=7`` the tiles cover the
    grid of 2×2-pixel blocks instead ((h + 7, w + 7), :func:`patch_average_grid`) and the
    input also holds the 7 score rows and columns before each tile: every patch covering
    its blocks. A tile's first score row is ``input rows.start // SCORE_STRIDE``.
    """
    if tile < PATCH_SIZE:
        raise ValueError(f"tile must be at least {PATCH_SIZE} pixels, got {tile}")
    h, w = score_map_shape(height, width)
    step = max(1, (tile - PATCH_SIZE) // SCORE_STRIDE + 1 - halo)

    def spans(n: int) -> list[tuple[slice, slice]]:
        out = []
        for start in range(0, n + halo, step):
            stop = min(n + halo, start + step)
            first, last = max(0, start - halo), min(n, stop) - 1  # score rows needed
            out.append((slice(start, stop), slice(SCORE_STRIDE * first, SCORE_STRIDE * last + PATCH_SIZE)))
        return out

    return [(rows, cols, in_rows, in_cols) for rows, in_rows in spans(h) for cols, in_cols in spans(w)]


_PREPARED: weakref.WeakKeyDictionary[ACNN, dict[str, ACNN]] = weakref.WeakKeyDictionary()
_PREPARED_LOCK = threading.Lock()


def prepare(model: ACNN, device: torch.device, dtype: torch.dtype | None = None) -> ACNN:
    """The model laid out for ``device`` (channels-last on the CPU, where it is faster) and, for
    bf16 on the CPU, with its weights stored in bf16 (:func:`compute_in`).

    Returns a copy made once per (model, device, dtype) and cached; ``model`` itself is never
    moved or changed, so runs on different devices or threads can share one loaded model. The
    network runs in inference mode only, so the copy is safe to use from several threads.
    """
    import torch

    key = str(device) if not _precast(device, dtype) else f"{device} {dtype}"
    if getattr(model, "prepared_for", None) == key:
        return model
    with _PREPARED_LOCK:
        per_device = _PREPARED.setdefault(model, {})
        if key not in per_device:
            copy = deepcopy(model).to(device)
            if device.type == "cpu":
                copy = copy.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
            if _precast(device, dtype):
                copy = copy.to(dtype)
            copy.prepared_for = key
            per_device[key] = copy
        return per_device[key]


def _precast(device: torch.device, dtype: torch.dtype | None) -> bool:
    """Whether the model runs with weights cast once to ``dtype`` instead of under autocast:
    bf16 on the CPU, where autocast casts every weight again on every call (the pair's
    score map 0.94× without them, bit-identical: ``benchmarks/network_precast.py``)."""
    import torch

    return device.type == "cpu" and dtype == torch.bfloat16


def compute_in(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    """The context a :func:`prepare`'d model runs in for ``dtype``: none for a pre-cast model
    (its weights and inputs are already in ``dtype``), else :func:`autocast`."""
    return contextlib.nullcontext() if _precast(device, dtype) else autocast(device, dtype)


def to_input(images: np.ndarray, device: torch.device, dtype: torch.dtype | None = None) -> torch.Tensor:
    """(N, Y, X) float32 numpy → (N, 1, Y, X) tensor on ``device``, in ``dtype`` where the
    model is pre-cast to it (:func:`prepare`), else float32."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))[:, None].to(device)
    if _precast(device, dtype):
        x = x.to(dtype)
    return x.contiguous(memory_format=torch.channels_last) if device.type == "cpu" else x


def score_map(
    model: ACNN,
    grey_a: np.ndarray,
    grey_b: np.ndarray,
    *,
    device: torch.device,
    tile: int = DEFAULT_TILE,
    precision: str = "auto",
    progress: ProgressCallback | None = None,
) -> np.ndarray:
    """Patch scores at stride 2: float32 (h, w), entry (i, j) for the patch at (2i, 2j) (torch)."""
    import torch

    height, width = grey_a.shape
    tiles = score_tiles(height, width, tile)
    dtype = resolve_precision(precision, device)
    model = prepare(model, device, dtype)
    scores = np.empty(score_map_shape(height, width), dtype=np.float32)
    with torch.inference_mode():
        for done, (rows, cols, in_rows, in_cols) in enumerate(tiles, start=1):
            x = to_input(np.stack([grey_a[in_rows, in_cols], grey_b[in_rows, in_cols]]), device, dtype)
            with compute_in(device, dtype):
                features = model.branch(x)
                logits = model.head(features[:1], features[1:])
            n_rows, n_cols = rows.stop - rows.start, cols.stop - cols.start
            scores[rows, cols] = type(model).score(logits)[0, :n_rows, :n_cols].cpu().numpy()
            if progress is not None:
                progress(done, len(tiles))
    return scores


def _window8_sum(values: np.ndarray, axis: int) -> np.ndarray:
    """Sums of 8 consecutive entries along ``axis``, zero-padded: length n + 7."""
    pad = [(0, 0)] * values.ndim
    pad[axis] = (7, 7)
    padded = np.moveaxis(np.pad(values, pad), axis, 0)
    n_out = values.shape[axis] + 7
    total = padded[:n_out].copy()
    for k in range(1, 8):  # slices, not np.take: no index arrays, no copies per term
        total += padded[k : k + n_out]
    return np.moveaxis(total, 0, axis)


def patch_average_grid(values: np.ndarray) -> np.ndarray:
    """Mean of per-patch values over the patches covering each 2×2 pixel block.

    A pixel at row y is covered by the patches of score rows y//2 − 7 … y//2, so the
    average is an 8×8 box sum on the score grid divided by the number of covering
    patches. Returns float64 (h + 7, w + 7); :func:`grid_to_pixels` expands it.
    """
    h, w = values.shape
    return patch_average_blocks(values.astype(np.float64), (0, 0), (slice(0, h + 7), slice(0, w + 7)), (h, w))


def patch_average_blocks(
    values: np.ndarray,
    first_score: tuple[int, int],
    blocks: tuple[slice, slice],
    score_shape: tuple[int, int],
) -> np.ndarray:
    """:func:`patch_average_grid` for the blocks ``blocks`` only, from part of the score grid.

    ``values`` holds the score rows and columns from ``first_score`` on, including every
    patch that covers those blocks (block − 7 … block); ``score_shape`` is the whole grid's,
    for the number of covering patches. The sums run in a fixed order, so a tile computes
    exactly what the whole grid does.
    """
    (first_row, first_col), (rows, cols), (h, w) = first_score, blocks, score_shape
    row_sums = _window8_sum(values, 0)[rows.start - first_row : rows.stop - first_row]
    sums = _window8_sum(row_sums, 1)[:, cols.start - first_col : cols.stop - first_col]
    count_rows = _window8_sum(np.ones(h), 0)[rows]
    count_cols = _window8_sum(np.ones(w), 0)[cols]
    return sums / np.outer(count_rows, count_cols)


def grid_to_pixels(grid: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Expand a per-2×2-block grid to pixels; an odd uncovered margin copies its neighbour."""
    height, width = shape
    full = np.repeat(np.repeat(grid, SCORE_STRIDE, axis=0), SCORE_STRIDE, axis=1)
    covered_h, covered_w = min(height, full.shape[0]), min(width, full.shape[1])
    full = full[:covered_h, :covered_w]
    if (covered_h, covered_w) != (height, width):
        full = np.pad(full, ((0, height - covered_h), (0, width - covered_w)), mode="edge")
    return full


def focus_map_from_scores(scores: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Average of the scores of every 16×16 patch (stride 2) covering each pixel: float32 (Y, X)."""
    # cast on the grid, before expanding to pixels: the same values, a quarter of the memory
    return grid_to_pixels(patch_average_grid(scores).astype(np.float32), shape)


def compute_focus_map(
    model: ACNN | Network,
    grey_a: np.ndarray,
    grey_b: np.ndarray,
    *,
    device: torch.device | None = None,
    tile: int = DEFAULT_TILE,
    precision: str = "auto",
    progress: ProgressCallback | None = None,
) -> np.ndarray:
    """Focus map S: float32 (Y, X) in [0, 1], near 1 where A is the focused image.

    ``model``: a :class:`Network` (from :func:`open_network`, which already applied the
    options' device and precision: ``device`` and ``precision`` are then not used), or a
    torch ACNN run on ``device`` in ``precision``.
    """
    network = as_network(model, device, precision)
    scores = network.score_map(grey_a, grey_b, tile=tile, progress=progress)
    return focus_map_from_scores(scores, grey_a.shape)


# -- runtimes ----------------------------------------------------------------------------------


class Network(Protocol):
    """The network on one runtime, with the calls the pair and stack fusions make.

    Images are float32 numpy arrays in [0, 1]; every result is a float32 numpy array.
    """

    #: ``torch`` or ``onnx``
    runtime: str

    def score_map(
        self, grey_a: np.ndarray, grey_b: np.ndarray, *, tile: int, progress: ProgressCallback | None = None
    ) -> np.ndarray:
        """Patch scores at stride 2 of the pair (A, B), tiled as :func:`score_tiles` cuts."""
        ...

    def reference(self, image: np.ndarray) -> Any:
        """The stack fold's reference (the mean grey image of a tile), ready to pair with slices."""
        ...

    def slice_odds(self, image: np.ndarray, reference: Any) -> np.ndarray:
        """Per patch, ½[logit(slice vs reference) − logit(reference vs slice)]: float32 (h, w)."""
        ...

    def describe(self) -> str:
        """One line for reports: runtime, device and arithmetic."""
        ...

    def concurrent(self) -> Sequence[Network]:
        """Copies of this network that may run at the same time, one per worker thread of
        :func:`run_tiles` (``[self]``: one tile at a time); each gives the same results."""
        ...


def run_tiles(network: _Net, work: Callable[[_Net, _Item], None], tiles: Sequence[_Item]) -> Iterator[int]:
    """Call ``work(copy, tile)`` for every tile, as many at a time as ``network.concurrent()``
    has copies, each call on a copy no other call is using; yields 1, 2, … as the tiles finish
    in order (for progress). ``work`` writes its results itself (tiles write disjoint parts).

    Independent tiles on single-threaded copies keep both cores busy without the barrier
    after every layer that one multi-threaded call waits at: onnxruntime's per-slice call took
    0.82–0.86× the time of one 2-thread call on a quiet 2-core CPU, with identical results
    (``docs/performance.md``). An error in a tile is raised here; the tiles not yet started
    are dropped when the caller stops iterating.
    """
    copies = cast("list[_Net]", list(network.concurrent()))  # copies of the same class
    if len(copies) <= 1 or len(tiles) <= 1:
        for done, tile in enumerate(tiles, start=1):
            work(copies[0] if copies else network, tile)
            yield done
        return
    free: SimpleQueue[_Net] = SimpleQueue()
    for copy in copies:
        free.put(copy)

    def run(tile: _Item) -> None:
        copy = free.get()  # never waits: at most len(copies) calls run at once
        try:
            work(copy, tile)
        finally:
            free.put(copy)

    with ThreadPoolExecutor(len(copies)) as pool:
        futures = [pool.submit(run, tile) for tile in tiles]
        try:
            for done, future in enumerate(futures, start=1):
                future.result()
                yield done
        finally:
            for future in futures:
                future.cancel()


class TorchNetwork:
    """:class:`Network` on torch: ``model`` run on ``device`` in ``precision``."""

    runtime = "torch"

    def __init__(self, model: ACNN, device: torch.device, precision: str = "auto") -> None:
        self.model, self.device, self.precision = model, device, precision
        self.dtype = resolve_precision(precision, device)
        _apply_torch_threads()

    def describe(self) -> str:
        return f"torch on {self.device} ({str(self.dtype).removeprefix('torch.')})"

    def concurrent(self) -> list[TorchNetwork]:
        # torch's thread count is global to the process; its 2-thread calls measured within
        # 6 % of two 1-thread calls side by side, so tiles run one at a time
        return [self]

    def score_map(
        self, grey_a: np.ndarray, grey_b: np.ndarray, *, tile: int, progress: ProgressCallback | None = None
    ) -> np.ndarray:
        return score_map(
            self.model,
            grey_a,
            grey_b,
            device=self.device,
            tile=tile,
            precision=self.precision,
            progress=progress,
        )

    def reference(self, image: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        model = prepare(self.model, self.device, self.dtype)
        with torch.inference_mode(), compute_in(self.device, self.dtype):
            features = model.branch(to_input(image[None], self.device, self.dtype))
            # fc1's bias added once here, not per slice (a broadcast add is slow on channels-last);
            # the sums in float32, as autocast leaves them (a pre-cast model's bias is bf16)
            bias = model.head.fc1_bias().float()
            as_a = model.head.project(features, as_a=True).float() + bias
            as_b = model.head.project(features, as_a=False).float() + bias
        return as_a, as_b

    def slice_odds(self, image: np.ndarray, reference: tuple[torch.Tensor, torch.Tensor]) -> np.ndarray:
        import torch

        model = prepare(self.model, self.device, self.dtype)
        reference_a, reference_b = reference
        with torch.inference_mode():
            with compute_in(self.device, self.dtype):
                features = model.branch(to_input(image[None], self.device, self.dtype))
                # fc1's sums in float32 (see reference), fc2 in the model's own type
                head, dtype = model.head, model.head.fc2.weight.dtype
                first = head.classify((head.project(features, as_a=True) + reference_b).to(dtype))[0]
                second = head.classify((head.project(features, as_a=False) + reference_a).to(dtype))[0]
            odds = ((first[0] - first[1]) - (second[0] - second[1])).float() / 2
        return odds.cpu().numpy()


def as_network(model: ACNN | Network, device: torch.device | None, precision: str = "auto") -> Network:
    """``model`` itself if it is a :class:`Network`, else a torch ACNN wrapped for ``device``."""
    if hasattr(model, "slice_odds"):
        return model  # type: ignore[return-value]
    import torch

    return TorchNetwork(model, device if device is not None else torch.device("cpu"), precision)  # type: ignore[arg-type]


def onnxruntime_installed() -> bool:
    """Whether onnxruntime can be imported (checked without importing it)."""
    return importlib.util.find_spec("onnxruntime") is not None


_CPU_THREADS: int | None = None


def set_cpu_threads(threads: int | None) -> None:
    """Limit CPU inference in this process to ``threads`` (``None``: back to :func:`cpu_threads`'s
    default): onnxruntime sessions opened from now on, and torch's intra-op threads (now if
    torch is loaded, else when the torch runtime starts). Batch workers call it with 1."""
    global _CPU_THREADS
    _CPU_THREADS = threads
    _apply_torch_threads()


def _apply_torch_threads() -> None:
    torch = sys.modules.get("torch")
    if _CPU_THREADS is not None and torch is not None and torch.get_num_threads() != _CPU_THREADS:
        torch.set_num_threads(_CPU_THREADS)


def cpu_threads() -> int:
    """Threads for CPU inference: :func:`set_cpu_threads`'s limit, else ``OMP_NUM_THREADS`` if
    set (as torch does), else the usable CPUs (the affinity mask capped by a cgroup quota)."""
    from acnn_fusion import core

    if _CPU_THREADS is not None:
        return _CPU_THREADS
    try:
        chosen = int(os.environ.get("OMP_NUM_THREADS", ""))
    except ValueError:
        chosen = 0
    return chosen if chosen > 0 else core.usable_cpus()


def spinning_allowed() -> bool:
    """Whether idle inference threads may spin: only when the user asked for it.

    The same rule as the OpenMP default of :mod:`acnn_fusion.core`: ``OMP_WAIT_POLICY=ACTIVE``
    or a positive ``GOMP_SPINCOUNT`` allows spinning; anything else (the passive default) not.
    """
    if os.environ.get("OMP_WAIT_POLICY", "").upper() == "ACTIVE":
        return True
    try:
        return int(os.environ.get("GOMP_SPINCOUNT", "0")) > 0
    except ValueError:
        return False


def _torch_build_has_cuda() -> bool:
    """Whether the installed torch was built with CUDA, read from its ``version.py`` (no import)."""
    loaded = sys.modules.get("torch")
    if loaded is not None:
        return loaded.version.cuda is not None
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return False
    try:
        text = (Path(next(iter(spec.submodule_search_locations))) / "version.py").read_text()
    except OSError:
        return True  # cannot tell: let torch decide
    found = re.search(r"^cuda\b[^=\n]*=\s*(.+)$", text, re.MULTILINE)
    return found is not None and found.group(1).strip() != "None"


def accelerator_likely() -> bool:
    """Whether ``device="auto"`` would probably find a GPU for torch, decided without torch.

    Apple silicon (MPS), or an NVIDIA driver with a CUDA build of torch. When torch is
    already imported, its own answer.
    """
    loaded = sys.modules.get("torch")
    if loaded is not None:
        return bool(loaded.cuda.is_available() or loaded.backends.mps.is_available())
    if sys.platform == "darwin" and platform.machine() == "arm64":
        return True
    driver = Path("/proc/driver/nvidia/version").exists() or Path("/dev/nvidiactl").exists()
    return driver and _torch_build_has_cuda()


#: Megapixels through the network's branch (a pair: 2 × its area; a stack: (slices + 1) × its
#: area) up to which ``runtime="auto"`` takes onnxruntime (fp32) on a CPU with native bf16,
#: where torch may run the network in bf16 faster but starts ~2 s later; by the CPU's kind of
#: bf16 (:func:`bf16_break_even_megapixels`). Whole processes with the shipped ``acnn-4``
#: (``benchmarks/runtime_network.py --whole``; ``docs/performance.md``, session 12): on an AMD
#: EPYC with ``avx512_bf16`` onnxruntime with tiles side by side (:func:`run_tiles`) was faster
#: at every size measured, up to 68 MP, with about the same seconds per megapixel as torch
#: bf16, so torch never catches up there. For AMX, whose bf16 ran about twice as fast, the
#: break-even measured with ``acnn-2`` (5–8 MP, session 10) scaled by the network's arithmetic
#: (``acnn-4`` has 0.16× ``acnn-2``'s) gives ~32 MP: an estimate until that CPU is measured.
BF16_BREAK_EVEN_MEGAPIXELS = {"amx_bf16": 32.0, "avx512_bf16": math.inf}


def bf16_break_even_megapixels() -> float:
    """:data:`BF16_BREAK_EVEN_MEGAPIXELS` for this CPU (AMX, else AVX-512 BF16)."""
    return BF16_BREAK_EVEN_MEGAPIXELS["amx_bf16" if _cpu_has_amx_bf16() else "avx512_bf16"]


def resolve_runtime(options: FusionOptions, megapixels: float | None = None) -> str:
    """``onnx`` or ``torch`` for ``options`` (``runtime``, ``device``, ``precision``, ``weights``).

    ``auto`` takes onnxruntime when the network runs on the CPU (``device`` cpu, or auto on a
    machine without a GPU), onnxruntime is installed, the weights have an ONNX export and
    ``precision`` is not ``bf16`` (onnxruntime runs fp32), with one exception: where the CPU
    computes bf16 natively and ``precision`` is ``auto``, torch's bf16 network is about twice
    as fast, so torch runs inputs of more than :func:`bf16_break_even_megapixels` (``megapixels``:
    what the branch will see; unknown counts as large). The choice depends only on the
    options, the input's size and the machine, never on what the process imported before,
    so a batch worker and an interactive session give the same result. Torch otherwise.
    ``onnx`` refuses what it cannot do instead of falling back.
    """
    from acnn_fusion.core.weights import onnx_export

    if options.runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {options.runtime!r}; choose from {', '.join(RUNTIMES)}")
    if options.runtime == "torch":
        return "torch"
    device = str(options.device).lower()
    on_cpu = device == "cpu" or (device == "auto" and not accelerator_likely())
    if options.runtime == "auto":
        usable = on_cpu and options.precision != "bf16" and onnxruntime_installed()
        if usable and options.precision == "auto" and _cpu_has_native_bf16():
            # never "torch is imported already": the answer must not depend on the process's history
            usable = megapixels is not None and megapixels <= bf16_break_even_megapixels()
        return "onnx" if usable and onnx_export(options.weights) is not None else "torch"
    if device not in ("auto", "cpu"):
        raise ValueError(f"runtime onnx runs on the CPU only; use device cpu or runtime torch for {device}")
    if options.precision == "bf16":
        raise ValueError(
            "runtime onnx computes in fp32; use precision auto or fp32, or runtime torch for bf16"
        )
    if not onnxruntime_installed():
        raise ValueError("runtime onnx needs onnxruntime (pip install onnxruntime); or use runtime torch")
    if onnx_export(options.weights) is None:
        from acnn_fusion.core.weights import WeightsError

        raise WeightsError(
            f"weights {options.weights or 'shipped'} have no ONNX export; "
            "run `acnn-fusion export-onnx` on them, or use runtime torch"
        )
    return "onnx"


def open_network(options: FusionOptions, megapixels: float | None = None) -> Network:
    """The network for ``options``: weights loaded and verified, on the runtime and device chosen
    (:func:`resolve_runtime`; ``megapixels``: what the branch will see, for ``auto``)."""
    if resolve_runtime(options, megapixels) == "onnx":
        from acnn_fusion.core.onnx_runtime import load_onnx_network

        return load_onnx_network(options.weights)
    from acnn_fusion.core.weights import load_model

    device = select_device(options.device)
    return TorchNetwork(load_model(options.weights), device, options.precision)
