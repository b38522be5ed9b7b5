"""onnxruntime's tiles one at a time on a multi-threaded session, against tiles side by side on
single-threaded copies (``OnnxNetwork.concurrent``, ``inference.run_tiles``).

    .venv/bin/python benchmarks/tile_threads.py [--repeats 5] [--shared ../shared/data] [--name tile_threads]

In one process, the network step of each case both ways, interleaved (order reversed every
other round), first on the quiet machine and then with one single-threaded busy process
beside it (``wholeprocess.burners``): the stack fold's score volume (``stack._score_volume``)
of the 8-slice metallographic stack of ``../shared`` (when present) and of a synthetic
1024²×16 stack, and the focus map of a 2048² pair (``pipeline.focus_map_in_tiles``), at the
default tile. "serial" is the same code with ``concurrent()`` giving the one session (what
the package did before). Checks that both give identical arrays. Writes
``docs/results/{name}.{md,json}`` with the machine line and the load.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

import wholeprocess as wp

REPO = Path(__file__).resolve().parents[1]


def cases(shared: Path | None) -> dict[str, Callable[[object], np.ndarray]]:
    """Case name → function(network) giving the network step's array."""
    from acnn_fusion.core.pipeline import GreyRows, focus_map_in_tiles
    from acnn_fusion.core.stack import FocusImage, _score_volume
    from acnn_fusion.options import DEFAULT_TILE

    found: dict[str, Callable[[object], np.ndarray]] = {}
    folder = shared / "eval/stacks/metallographic_mufoc/mufoc_1_1" if shared else None
    if folder is not None and folder.is_dir():
        from acnn_fusion.io.stacks import read_stack, squeezed

        metallographic = FocusImage(np.asarray(squeezed(read_stack(folder))))
        found["metallographic_1_1 8×1000×1600 (volume)"] = lambda n: np.array(
            _score_volume(n, metallographic, None, DEFAULT_TILE, "auto", None)
        )
    synthetic = FocusImage(wp.synthetic_stack(1024, 16))
    found["synthetic 16×1024² uint16 (volume)"] = lambda n: np.array(
        _score_volume(n, synthetic, None, DEFAULT_TILE, "auto", None)
    )
    a, b = wp.synthetic_pair(2048)
    greys = GreyRows(a, b)
    found["pair 2048² (focus map)"] = lambda n: focus_map_in_tiles(n, greys, a.shape, tile=DEFAULT_TILE)
    return found


class Serial:
    """The network with its tiles one at a time (``concurrent()`` = itself only)."""

    def __init__(self, network: object) -> None:
        self.network = network

    def __getattr__(self, name: str) -> object:
        return getattr(self.network, name)

    def concurrent(self) -> list[object]:
        return [self.network]


def main() -> None:
    from acnn_fusion.core.onnx_runtime import load_onnx_network

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared/data")
    parser.add_argument("--name", default="tile_threads")
    args = parser.parse_args()
    info = wp.machine()
    print(wp.machine_line({**info, "loadavg_end": info["loadavg"]}), flush=True)
    concurrent = load_onnx_network()
    variants = {
        "serial (one 2-thread session)": Serial(concurrent),
        "concurrent (1-thread copies)": concurrent,
    }
    found = cases(args.shared)
    rows: list[dict] = []
    same: dict[str, bool] = {}
    for case, run in found.items():
        results = [run(v) for v in variants.values()]  # warm-up, and the identity check
        same[case] = bool(np.array_equal(results[0], results[1]))
        for busy in (0, 1):
            with wp.burners(busy):
                for r in range(args.repeats):
                    order = list(variants.items()) if r % 2 == 0 else list(variants.items())[::-1]
                    for label, network in order:
                        start = time.perf_counter()
                        run(network)
                        seconds = time.perf_counter() - start
                        rows.append({"case": case, "variant": label, "busy": busy, "seconds": seconds})
                        print(f"{case} busy={busy} {label}: {seconds:.3f} s", flush=True)
    info["loadavg_end"] = wp.os.getloadavg()
    labels = list(variants)
    lines = [
        "# Tiles side by side on single-threaded onnxruntime copies (`benchmarks/tile_threads.py`)",
        "",
        f"{wp.machine_line(info)}; {concurrent.describe()}; network step only, in one process, "
        f"median of {args.repeats} interleaved runs; busy = one single-threaded busy process beside it.",
        "",
        "| case | machine | serial s | concurrent s | concurrent / serial | identical |",
        "|---|---|---|---|---|---|",
    ]
    for case in found:
        for busy in (0, 1):
            medians = [
                statistics.median(
                    x["seconds"] for x in rows if (x["case"], x["variant"], x["busy"]) == (case, label, busy)
                )
                for label in labels
            ]
            lines.append(
                f"| {case} | {'busy' if busy else 'quiet'} | {medians[0]:.3f} | {medians[1]:.3f} | "
                f"{medians[1] / medians[0]:.2f} | {'yes' if same[case] else 'NO'} |"
            )
    text = "\n".join(lines) + "\n"
    out = REPO / "docs/results"
    (out / f"{args.name}.md").write_text(text)
    record = {"machine": info, "rows": rows, "identical": same}
    (out / f"{args.name}.json").write_text(json.dumps(record, indent=1))
    print(text)


if __name__ == "__main__":
    main()
