"""The ACNN on onnxruntime: CPU inference in fp32 without importing torch.

The ONNX graph holds the network up to the first fully connected layer, split as the stack
fold uses it (:class:`~acnn_fusion.core.model.Head`): input ``images`` (N, 1, H, W), any
N, H and W; outputs ``proj_a`` = the image's contribution to ``fc1`` as image A, with fc1's
bias, and ``proj_b`` = its contribution as image B, both (N, fc, h, w); plus ``fc2_weight``
and ``fc2_bias``. What follows fc1 (add, ReLU, the 1×1 ``fc2``, softmax) is a dot product per
score and runs in numpy: only the difference of fc2's two rows matters. A stack slice needs
both projections of itself and of the reference, so the fold does no extra work; a pair
needs ``proj_a`` of A and ``proj_b`` of B only, but onnxruntime computes every output of the
graph (measured: asking for fewer is no faster), so a pair tile runs A and B as one batch of
two and ~25 % of its multiply-adds (the unused halves of fc1) are wasted.

The graph is written by :func:`export_onnx` from the ``.pt`` state dict with ``onnx.helper``
(one Conv node per layer, nothing traced), so the export is deterministic and byte-stable;
:func:`~acnn_fusion.core.weights.record_onnx_export` records its sha256 in the weights'
sidecar and :func:`~acnn_fusion.core.weights.read_onnx_export` verifies it on every load.
Exporting needs torch and the ``onnx`` package; running needs only onnxruntime.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from acnn_fusion.core.geometry import PATCH_SIZE, score_map_shape
from acnn_fusion.core.inference import (
    ProgressCallback,
    cpu_threads,
    run_tiles,
    score_tiles,
    spinning_allowed,
)
from acnn_fusion.core.weights import (
    default_weights_path,
    onnx_export,
    read_onnx_export,
    record_onnx_export,
)

#: ONNX operator set of the export (Conv, Relu and Identity only: any onnxruntime runs it)
OPSET = 17
#: ONNX IR version of the export (onnxruntime ≥ 1.10 reads it)
IR_VERSION = 8
#: Score rows per step of the numpy head: 64 channels × 8 rows × a tile's ~121 columns of
#: float32 (~250 KB per array) stay in the L2 cache through the sums, ReLUs and fc2
HEAD_ROWS = 8


class OnnxNetwork:
    """:class:`~acnn_fusion.core.inference.Network` on onnxruntime's CPU provider, fp32.

    One session per weights file, safe to share between threads (onnxruntime's ``run`` is).
    Intra-op threads: :func:`~acnn_fusion.core.inference.cpu_threads` (``OMP_NUM_THREADS``,
    else the usable CPUs, capped by a cgroup quota); idle threads do not spin unless the user
    asked OpenMP to (:func:`~acnn_fusion.core.inference.spinning_allowed`), for the reason
    ``OMP_WAIT_POLICY=PASSIVE`` is the torch default (``docs/performance.md``, Contention).
    Tiled work runs on :meth:`concurrent`: as many single-threaded sessions as this one has
    threads, one tile each at a time (:func:`~acnn_fusion.core.inference.run_tiles`).
    """

    runtime = "onnx"

    def __init__(self, model: bytes, threads: int | None = None, spinning: bool | None = None) -> None:
        import onnxruntime as ort

        self._model = model
        options = ort.SessionOptions()
        self.threads = threads if threads is not None else cpu_threads()
        self.spinning = spinning if spinning is not None else spinning_allowed()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.spinning else "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        options.log_severity_level = 3  # warnings about unused initialisers are not the user's concern
        self.session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        self.version = ort.__version__
        weight, bias = self.session.run(
            ["fc2_weight", "fc2_bias"], {"images": np.zeros((1, 1, PATCH_SIZE, PATCH_SIZE), np.float32)}
        )
        # logit(A) − logit(B) = (w₀ − w₁)·h + (b₀ − b₁): softmax of two classes is a sigmoid of it
        self.logit_weight = np.ascontiguousarray((weight[0] - weight[1]).reshape(-1), np.float32)
        self.logit_bias = np.float32(bias[0] - bias[1])

    def describe(self) -> str:
        return f"onnxruntime {self.version} on cpu (float32, {self.threads} threads)"

    @functools.cached_property
    def _copies(self) -> list[OnnxNetwork]:
        if self.threads <= 1:
            return [self]
        return [type(self)(self._model, 1, self.spinning) for _ in range(self.threads)]

    def concurrent(self) -> list[OnnxNetwork]:
        """One single-threaded session per thread of this one (made once): independent tiles
        on them are faster than one multi-threaded call at a time, and compute the same values."""
        return self._copies

    def _run(self, outputs: list[str], images: np.ndarray) -> list[np.ndarray]:
        feed = np.ascontiguousarray(images, np.float32)[:, None]
        return self.session.run(outputs, {"images": feed})

    def _logit_difference(self, fc1_as_a: np.ndarray, fc1_as_b: np.ndarray) -> np.ndarray:
        """logit(A) − logit(B) − fc2's bias difference per score, from the two parts of fc1's
        input (f, h, w) (the first is overwritten). Worked :data:`HEAD_ROWS` score rows at a
        time, so the sums and the ReLU stay in the cache (measured ~1.4–1.9× faster than whole
        tiles at 121 rows)."""
        h, w = fc1_as_a.shape[1:]
        out = np.empty((h, w), np.float32)
        for r0 in range(0, h, HEAD_ROWS):
            rows = slice(r0, r0 + HEAD_ROWS)
            part = fc1_as_a[:, rows]
            part += fc1_as_b[:, rows]
            np.maximum(part, 0, out=part)
            out[rows] = np.tensordot(self.logit_weight, part, axes=(0, 0))
        return out

    def score_map(
        self, grey_a: np.ndarray, grey_b: np.ndarray, *, tile: int, progress: ProgressCallback | None = None
    ) -> np.ndarray:
        from scipy.special import expit

        height, width = grey_a.shape
        tiles = score_tiles(height, width, tile)
        scores = np.empty(score_map_shape(height, width), dtype=np.float32)

        def score(network: OnnxNetwork, tile: tuple[slice, slice, slice, slice]) -> None:
            rows, cols, in_rows, in_cols = tile
            pair = np.stack([grey_a[in_rows, in_cols], grey_b[in_rows, in_cols]])
            proj_a, proj_b = network._run(["proj_a", "proj_b"], pair)
            difference = network._logit_difference(proj_a[0], proj_b[1])  # A's part of fc1 + B's part
            difference += network.logit_bias
            n_rows, n_cols = rows.stop - rows.start, cols.stop - cols.start
            scores[rows, cols] = expit(difference[:n_rows, :n_cols])

        for done in run_tiles(self, score, tiles):
            if progress is not None:
                progress(done, len(tiles))
        return scores

    def reference(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        proj_a, proj_b = self._run(["proj_a", "proj_b"], image[None])
        return proj_a[0], proj_b[0]

    def slice_odds(self, image: np.ndarray, reference: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        reference_a, reference_b = reference
        proj_a, proj_b = self._run(["proj_a", "proj_b"], image[None])
        first, second = proj_a[0], proj_b[0]
        h, w = first.shape[1:]
        odds = np.empty((h, w), np.float32)
        # ½[(l₀ − l₁)(slice, ref) − (l₀ − l₁)(ref, slice)]: fc2's bias cancels; in bands of rows
        # that stay in the cache (as _logit_difference)
        for r0 in range(0, h, HEAD_ROWS):
            rows = slice(r0, r0 + HEAD_ROWS)
            as_a, as_b = first[:, rows], second[:, rows]
            as_a += reference_b[:, rows]  # the slice as A against the reference as B
            as_b += reference_a[:, rows]  # the reference as A against the slice as B
            np.maximum(as_a, 0, out=as_a)
            np.maximum(as_b, 0, out=as_b)
            as_a -= as_b
            odds[rows] = np.tensordot(self.logit_weight, as_a, axes=(0, 0))
        odds *= np.float32(0.5)
        return odds


@functools.lru_cache(maxsize=4)
def _load(
    path: str, _onnx_path: str, _digest: str, _stat: tuple[int, int], threads: int, spinning: bool
) -> OnnxNetwork:
    _, data = read_onnx_export(path)  # verified once per (file, recorded hash, mtime and size)
    return OnnxNetwork(data, threads, spinning)


def load_onnx_network(weights: str | Path | None = None) -> OnnxNetwork:
    """The verified ONNX export of ``weights`` (default: the shipped model) in a session (cached).

    The export is read and its sha256 checked when first loaded, and again only when the
    sidecar records another file or hash or the file's mtime or size changes; later calls
    read the small sidecar JSON and stat the file.
    """
    path = Path(weights).resolve() if weights is not None else default_weights_path()
    found = onnx_export(path)
    if found is None:
        read_onnx_export(path)  # raises the reason
    onnx_path, digest = found  # type: ignore[misc]
    stat = onnx_path.stat()
    return _load(
        str(path), str(onnx_path), digest, (stat.st_mtime_ns, stat.st_size), cpu_threads(), spinning_allowed()
    )


def onnx_graph(state: dict[str, np.ndarray], c3: int) -> Any:
    """The ONNX model (``onnx.ModelProto``) of the branch and fc1's two halves, from a state dict."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    initialisers = []

    def constant(name: str, value: np.ndarray) -> str:
        initialisers.append(numpy_helper.from_array(np.ascontiguousarray(value, np.float32), name))
        return name

    nodes = []
    x = "images"
    for layer, stride in (("conv1", 1), ("conv2", 1), ("down", 2), ("conv3", 1)):
        weight = constant(f"branch.{layer}.weight", state[f"branch.{layer}.weight"])
        bias = constant(f"branch.{layer}.bias", state[f"branch.{layer}.bias"])
        nodes.append(
            helper.make_node(
                "Conv", [x, weight, bias], [f"{layer}_out"], kernel_shape=[3, 3], strides=[stride, stride]
            )
        )
        nodes.append(helper.make_node("Relu", [f"{layer}_out"], [f"{layer}_relu"]))
        x = f"{layer}_relu"
    fc1 = state["head.fc1.weight"]
    weight_a = constant("head.fc1.weight_a", fc1[:, :c3])
    weight_b = constant("head.fc1.weight_b", fc1[:, c3:])
    fc1_bias = constant("head.fc1.bias", state["head.fc1.bias"])
    nodes.append(helper.make_node("Conv", [x, weight_a, fc1_bias], ["proj_a"], kernel_shape=[3, 3]))
    nodes.append(helper.make_node("Conv", [x, weight_b], ["proj_b"], kernel_shape=[3, 3]))
    fc2_weight = constant("head.fc2.weight", state["head.fc2.weight"])
    fc2_bias = constant("head.fc2.bias", state["head.fc2.bias"])
    nodes.append(helper.make_node("Identity", [fc2_weight], ["fc2_weight"]))
    nodes.append(helper.make_node("Identity", [fc2_bias], ["fc2_bias"]))
    fc = fc1.shape[0]
    graph = helper.make_graph(
        nodes,
        "acnn_branch_fc1",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 1, "H", "W"])],
        [
            helper.make_tensor_value_info("proj_a", TensorProto.FLOAT, ["N", fc, "h", "w"]),
            helper.make_tensor_value_info("proj_b", TensorProto.FLOAT, ["N", fc, "h", "w"]),
            helper.make_tensor_value_info(
                "fc2_weight", TensorProto.FLOAT, list(state["head.fc2.weight"].shape)
            ),
            helper.make_tensor_value_info("fc2_bias", TensorProto.FLOAT, list(state["head.fc2.bias"].shape)),
        ],
        initialisers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name="acnn-fusion",
    )
    onnx.checker.check_model(model)
    return model


def export_onnx(weights: str | Path | None = None, output: str | Path | None = None) -> Path:
    """Export ``weights`` (default: the shipped model) to ONNX beside it and record it in its sidecar.

    ``output`` defaults to the weights' name with ``.onnx``. The ``.pt`` is loaded and verified
    with torch; the graph is :func:`onnx_graph`. Returns the path written.
    """
    from acnn_fusion.core.weights import _atomic_write_bytes, load_model

    path = Path(weights) if weights is not None else default_weights_path()
    model = load_model(path)
    state = {name: tensor.detach().cpu().numpy() for name, tensor in model.state_dict().items()}
    proto = onnx_graph(state, model.config.c3)
    target = Path(output) if output is not None else path.with_suffix(".onnx")
    _atomic_write_bytes(target, proto.SerializeToString())
    import onnx

    record_onnx_export(
        path, target, {"opset": OPSET, "ir_version": IR_VERSION, "onnx_version": onnx.__version__}
    )
    return target
