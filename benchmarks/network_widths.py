"""What a narrower network would save: the stack fold's per-slice call at other channel widths.

    .venv/bin/python benchmarks/network_widths.py [--repeats 200]   # writes docs/results/network_widths.md

Times ``TorchNetwork.slice_odds`` (branch, both fc1 projections, fc2) on a 256-px tile with its
halo, in the precision ``auto`` picks on this CPU, for the shipped widths and narrower ones of
the same topology (untrained weights: only the speed is measured, not what such a network
would decide). Single calls alternate between the widths round by round, so the machine's
drift hits them alike; medians. A narrower network would have to be trained and pass the
quality issue's checks before it could ship.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import wholeprocess as wp

REPO = Path(__file__).resolve().parents[1]
WIDTHS = [(24, 48, 64, 64), (16, 32, 64, 64), (16, 32, 48, 48), (16, 32, 32, 32), (12, 24, 32, 32)]


def main() -> None:
    import torch

    from acnn_fusion.core.inference import TorchNetwork
    from acnn_fusion.core.model import ACNN, ACNNConfig

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--out", type=Path, default=REPO / "docs/results")
    args = parser.parse_args()
    info = wp.machine()
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    tile = rng.random((272, 272), dtype=np.float32)
    mean = rng.random((272, 272), dtype=np.float32)
    calls = {}
    for widths in WIDTHS:
        network = TorchNetwork(ACNN(ACNNConfig(*widths)).eval(), torch.device("cpu"), "auto")
        reference = network.reference(mean)
        calls[widths] = lambda n=network, r=reference: n.slice_odds(tile, r)
        calls[widths]()  # warm-up
    times: dict[tuple, list[float]] = {w: [] for w in WIDTHS}
    for index in range(args.repeats):
        for widths in WIDTHS if index % 2 == 0 else WIDTHS[::-1]:
            start = time.perf_counter()
            calls[widths]()
            times[widths].append(time.perf_counter() - start)
    info["loadavg_end"] = wp.os.getloadavg()
    base = float(np.median(times[WIDTHS[0]]))
    lines = [
        "# The fold's per-slice call at other channel widths (`benchmarks/network_widths.py`)",
        "",
        f"{wp.machine_line(info)}; precision `auto` ({network.describe()}); median of {args.repeats} "
        "calls per width on a 272² tile, alternating. Untrained weights: speed only.",
        "",
        "| widths (c1, c2, c3, fc) | parameters | ms per call | × shipped |",
        "|---|---|---|---|",
    ]
    for widths in WIDTHS:
        params = sum(p.numel() for p in ACNN(ACNNConfig(*widths)).parameters())
        ms = float(np.median(times[widths])) * 1e3
        shipped = " (shipped)" if widths == WIDTHS[0] else ""
        name = ", ".join(map(str, widths)) + shipped
        lines.append(f"| {name} | {params:,} | {ms:.2f} | {ms / 1e3 / base:.2f} |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "network_widths.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
