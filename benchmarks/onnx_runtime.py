"""Lever check: the shipped ACNN exported to ONNX and run with onnxruntime instead of torch.

    PYTHONPATH=/path/to/onnxruntime:src .venv/bin/python benchmarks/onnx_runtime.py [--size 1024]

Not a dependency of the package: onnxruntime, onnx and onnxscript are put on ``PYTHONPATH``
by hand (``pip install --target DIR onnxruntime onnx onnxscript``, then remove the numpy
that comes with them). Measures (1) start-up, a fresh process importing onnxruntime
against one importing torch, interleaved; (2) the network part of a grey pair fusion
(``score_map``, tile 256) with torch fp32, torch ``auto`` and onnxruntime fp32, interleaved;
(3) how many decision-map pixels differ from torch fp32 (same focus-map averaging and
decision step) on the Lytro-20 pairs (``../shared``) and on synthetic pairs. Writes
``docs/results/onnx_runtime.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from acnn_fusion.core import inference
from acnn_fusion.core.model import ACNN, score_map_shape
from acnn_fusion.core.pipeline import fuse_from_focus_map, grey_pair, resolve_settings
from acnn_fusion.core.weights import load_model

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def export(model: ACNN, path: Path) -> None:
    """The whole network (A, B) → scores, with free height and width."""

    class Scores(torch.nn.Module):
        def __init__(self, net: ACNN) -> None:
            super().__init__()
            self.net = net

        def forward(self, image_a: torch.Tensor, image_b: torch.Tensor) -> torch.Tensor:
            return ACNN.score(self.net(image_a, image_b))

    example = torch.rand(1, 1, 256, 256)
    torch.onnx.export(
        Scores(model.eval()),
        (example, example),
        str(path),
        input_names=["a", "b"],
        output_names=["scores"],
        dynamic_axes={"a": {2: "h", 3: "w"}, "b": {2: "h", 3: "w"}, "scores": {1: "sh", 2: "sw"}},
        dynamo=False,
    )


def ort_score_map(session, grey_a: np.ndarray, grey_b: np.ndarray, tile: int = 256) -> np.ndarray:
    """:func:`inference.score_map` with onnxruntime: the same tiles, the same patches."""
    height, width = grey_a.shape
    scores = np.empty(score_map_shape(height, width), np.float32)
    for rows, cols, in_rows, in_cols in inference.score_tiles(height, width, tile):
        a = np.ascontiguousarray(grey_a[in_rows, in_cols], np.float32)[None, None]
        b = np.ascontiguousarray(grey_b[in_rows, in_cols], np.float32)[None, None]
        out = session.run(None, {"a": a, "b": b})[0]
        scores[rows, cols] = out[0, : rows.stop - rows.start, : cols.stop - cols.start]
    return scores


def startup(repeats: int) -> dict[str, float]:
    codes = {"import onnxruntime": "import onnxruntime", "import torch": "import torch"}
    times: dict[str, list[float]] = {k: [] for k in codes}
    for r in range(repeats):
        for label in list(codes)[:: 1 if r % 2 == 0 else -1]:
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", codes[label]], check=True)
            times[label].append(time.perf_counter() - start)
    return {k: round(statistics.median(v), 2) for k, v in times.items()}


def pairs() -> list[tuple[str, np.ndarray, np.ndarray]]:
    from skimage import io

    from acnn_fusion.synthetic import sample_pair

    found = []
    lytro = SHARED / "data" / "eval" / "pairs" / "lytro"
    for a_path in sorted(lytro.glob("lytro-*-A.jpg")):
        found.append((a_path.stem[:-2], io.imread(a_path), io.imread(str(a_path).replace("-A.", "-B."))))
    pair = sample_pair()
    found.append(("synthetic-sample", pair.image_a, pair.image_b))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--name", default="onnx_runtime")
    parser.add_argument("--no-lytro", action="store_true", help="skip the decision comparison")
    args = parser.parse_args()
    import onnxruntime as ort

    model = load_model()
    cpu = torch.device("cpu")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "acnn.onnx"
        export(load_model(), path)
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        quiet_options = ort.SessionOptions()  # threads block instead of spinning when idle
        quiet_options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        quiet_session = ort.InferenceSession(str(path), quiet_options, providers=["CPUExecutionProvider"])

    rng = np.random.default_rng(0)
    from scipy import ndimage

    grey_a = ndimage.gaussian_filter(rng.random((args.size, args.size), dtype=np.float32), 1.0)
    grey_b = ndimage.gaussian_filter(grey_a, 2.0)
    runs = {
        "torch fp32": lambda: inference.score_map(model, grey_a, grey_b, device=cpu, precision="fp32"),
        "torch auto": lambda: inference.score_map(model, grey_a, grey_b, device=cpu, precision="auto"),
        "onnxruntime fp32": lambda: ort_score_map(session, grey_a, grey_b),
        "onnxruntime fp32, no spinning": lambda: ort_score_map(quiet_session, grey_a, grey_b),
    }
    times: dict[str, list[float]] = {k: [] for k in runs}
    for run in runs.values():  # warm-up
        run()
    for r in range(args.repeats):
        for name in list(runs)[:: 1 if r % 2 == 0 else -1]:
            start = time.perf_counter()
            runs[name]()
            times[name].append(time.perf_counter() - start)
    speed = {k: round(statistics.median(v), 3) for k, v in times.items()}
    print(speed, flush=True)

    settings = resolve_settings("default", None, None)
    differ = []
    for name, image_a, image_b in [] if args.no_lytro else pairs():
        a, b = grey_pair(image_a, image_b)
        reference = inference.score_map(model, a, b, device=cpu, precision="fp32")
        other = ort_score_map(session, a, b)
        maps = [
            fuse_from_focus_map(
                image_a, image_b, inference.focus_map_from_scores(s, a.shape), settings, grey=(a, b)
            ).decision_map
            for s in (reference, other)
        ]
        differ.append(
            {
                "pair": name,
                "max_abs_score_diff": float(np.max(np.abs(reference - other))),
                "decision_pixels_differ": float(np.mean(maps[0] != maps[1])),
            }
        )
    lytro = [d for d in differ if d["pair"].startswith("lytro")]
    start_up = startup(args.repeats)
    summary = {
        "startup_s": start_up,
        "score_map_s": speed,
        "size": args.size,
        "lytro_mean_decision_differ": statistics.mean(d["decision_pixels_differ"] for d in lytro)
        if lytro
        else None,
        "lytro_worst_decision_differ": max(d["decision_pixels_differ"] for d in lytro) if lytro else None,
        "max_abs_score_diff": max((d["max_abs_score_diff"] for d in differ), default=None),
        "ort_version": ort.__version__,
        "torch_version": torch.__version__,
    }
    (REPO / "docs" / "results" / f"{args.name}.json").write_text(
        json.dumps({"summary": summary, "pairs": differ}, indent=1)
    )
    lines = [
        f"onnxruntime {ort.__version__} (CPU provider) against torch {torch.__version__}; "
        f"{args.repeats} interleaved rounds.",
        "",
        "| measure | torch | onnxruntime |",
        "|---|---|---|",
        f"| fresh process importing it, s | {start_up['import torch']:.2f} | "
        f"{start_up['import onnxruntime']:.2f} |",
        f"| score_map {args.size}² grey pair, fp32, s | {speed['torch fp32']:.3f} | "
        f"{speed['onnxruntime fp32']:.3f} |",
        f"| score_map {args.size}² grey pair, torch `auto` (bf16 here), s | {speed['torch auto']:.3f} | – |",
    ]
    if lytro:
        lines.append(
            f"| Lytro-20 decision pixels differing from torch fp32, mean / worst | – | "
            f"{summary['lytro_mean_decision_differ']:.5%} / {summary['lytro_worst_decision_differ']:.5%} |"
        )
    lines.insert(
        -1 if lytro else len(lines),
        f"| score_map {args.size}² grey pair, onnxruntime without spinning, s | – | "
        f"{speed['onnxruntime fp32, no spinning']:.3f} |",
    )
    if differ:
        lines.append(f"| largest score difference (all pairs) | – | {summary['max_abs_score_diff']:.2e} |")
    text = "\n".join(lines) + "\n"
    (REPO / "docs" / "results" / f"{args.name}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
