"""Command line: ``acnn-fusion fuse | stack | batch | evaluate | demo | train | info``."""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from acnn_fusion import __version__
from acnn_fusion.core.inference import DEFAULT_TILE, PRECISIONS
from acnn_fusion.core.stack import STRATEGIES

EXIT_USAGE = 2


class CLIError(Exception):
    """An input or usage problem reported as one line with exit status 2."""


def _progress_bar(description: str):
    """A tqdm-driven callback (done, total) for long runs; silent when not a terminal."""
    from tqdm import tqdm

    bar: dict[str, tqdm] = {}

    def update(done: int, total: int) -> None:
        if "bar" not in bar:
            bar["bar"] = tqdm(
                total=total,
                desc=description,
                unit="tile",
                leave=False,
                disable=total < 4 or not sys.stderr.isatty(),
            )
        bar["bar"].n = done
        bar["bar"].refresh()
        if done >= total:
            bar.pop("bar").close()

    return update


def _refuse_overwriting_inputs(outputs: Sequence[Path | None], inputs: Sequence[Path]) -> None:
    resolved = {p.resolve() for p in inputs}
    for out in outputs:
        if out is not None and out.resolve() in resolved:
            raise CLIError(f"output {out} is one of the inputs; refusing to overwrite an input")


def _write_maps(result, focus_map: Path | None, decision_map: Path | None) -> None:
    from acnn_fusion.io import write_image

    if focus_map is not None:
        fm = result.focus_map
        if focus_map.suffix.lower() in (".png", ".jpg", ".jpeg"):
            fm = np.round(fm * 255).astype(np.uint8)
        write_image(focus_map, fm)
    if decision_map is not None:
        write_image(decision_map, result.decision_map.astype(np.uint8) * 255)


def cmd_fuse(args: argparse.Namespace) -> int:
    from acnn_fusion.core.pipeline import fuse_pair
    from acnn_fusion.io import read_image, write_image

    _refuse_overwriting_inputs([args.output, args.focus_map, args.decision_map], [args.a, args.b])
    image_a, image_b = read_image(args.a), read_image(args.b)
    start = time.perf_counter()
    result = fuse_pair(
        image_a,
        image_b,
        **_fusion_options(args),
        tile=args.tile,
        progress=_progress_bar("fusing"),
    )
    seconds = time.perf_counter() - start
    write_image(args.output, result.fused)
    _write_maps(result, args.focus_map, args.decision_map)
    print(
        f"fused {args.a.name} + {args.b.name} → {args.output} in {seconds:.2f} s "
        f"({result.decision_map.mean():.1%} of pixels from A)"
    )
    return 0


def _find_pairs(folder: Path) -> list[tuple[str, Path, Path]]:
    """Pairs named ``<stem>-A.<ext>``/``<stem>-B.<ext>`` (or ``_A``/``_B``) in ``folder``."""
    pairs = []
    for path_a in sorted(folder.iterdir()):
        stem = path_a.stem
        if stem[-2:] not in ("-A", "_A"):
            continue
        candidates = sorted(folder.glob(f"{stem[:-1]}B.*"))
        if candidates:
            pairs.append((stem[:-2], path_a, candidates[0]))
    if not pairs:
        raise CLIError(f"no image pairs named *-A.* / *-B.* found in {folder}")
    return pairs


def _find_fused(folder: Path, name: str) -> Path:
    matches = sorted(p for p in folder.iterdir() if p.stem.startswith(name) and p.is_file())
    if not matches:
        raise CLIError(f"no fused image for pair {name!r} in {folder}")
    return matches[0]


def cmd_evaluate(args: argparse.Namespace) -> int:
    from acnn_fusion.io import read_image
    from acnn_fusion.metrics import evaluate

    if args.pairs is None:
        if not (args.a and args.b and args.fused):
            raise CLIError("give A B FUSED, or --pairs DIR [--fused DIR]")
        scores = evaluate(read_image(args.a), read_image(args.b), read_image(args.fused))
        for key, value in scores.items():
            print(f"{key:>5}  {value:.4f}")
        return 0

    from acnn_fusion.core.pipeline import fuse_pair

    rows = []
    for name, path_a, path_b in _find_pairs(args.pairs):
        image_a, image_b = read_image(path_a), read_image(path_b)
        start = time.perf_counter()
        if args.fused_dir is not None:
            fused = read_image(_find_fused(args.fused_dir, name))
        else:
            fused = fuse_pair(
                image_a,
                image_b,
                **_fusion_options(args),
            ).fused
        seconds = time.perf_counter() - start
        row = {"pair": name, **evaluate(image_a, image_b, fused)}
        if args.fused_dir is None:
            row["seconds"] = seconds
        rows.append(row)
        print("  ".join(f"{v:.4f}" if isinstance(v, float) else str(v) for v in row.values()), flush=True)
    keys = [k for k in rows[0] if k != "pair"]
    mean = {"pair": "mean", **{k: float(np.mean([r[k] for r in rows])) for k in keys}}
    rows.append(mean)
    print("mean  " + "  ".join(f"{k} {mean[k]:.4f}" for k in keys))
    out = args.out or Path("evaluation")
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.with_suffix(".csv"), "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["pair", *keys])
        writer.writeheader()
        writer.writerows(rows)
    lines = ["| pair | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    lines += ["| " + r["pair"] + " | " + " | ".join(f"{r[k]:.4f}" for k in keys) + " |" for r in rows]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out.with_suffix('.csv')} and {out.with_suffix('.md')}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from acnn_fusion.core.pipeline import fuse_pair
    from acnn_fusion.io import read_image, write_image
    from acnn_fusion.metrics import evaluate

    sample = args.sample_dir
    if not (sample / "pair_A.tif").exists():
        from acnn_fusion.synthetic import write_sample_data

        print(f"rendering the sample data into {sample}")
        write_sample_data(sample)
    image_a, image_b = read_image(sample / "pair_A.tif"), read_image(sample / "pair_B.tif")
    fuse_pair(image_a[:64, :64], image_b[:64, :64], device=args.device)  # load the model, warm up
    start = time.perf_counter()
    result = fuse_pair(image_a, image_b, device=args.device)
    seconds = time.perf_counter() - start
    out = args.out
    write_image(out / "fused.tif", result.fused)
    write_image(out / "focus_map.tif", result.focus_map)
    write_image(out / "decision_map.png", result.decision_map)
    scores = evaluate(image_a, image_b, result.fused)
    truth = read_image(sample / "pair_mask.png") > 0
    sharp = read_image(sample / "pair_sharp.tif").astype(np.float64)
    error = result.fused.astype(np.float64) - sharp
    psnr = 10 * np.log10(255.0**2 / max(np.mean(error**2), 1e-12))
    print(
        f"fused the sample pair {image_a.shape} in {seconds:.2f} s → {out}/fused.tif, "
        "focus_map.tif, decision_map.png"
    )
    print("metrics: " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))
    print(
        f"against ground truth: decision accuracy {np.mean(result.decision_map == truth):.2%}, "
        f"PSNR {psnr:.2f} dB"
    )
    return 0


def cmd_stack(args: argparse.Namespace) -> int:
    from acnn_fusion.batch import stack_axes
    from acnn_fusion.core.stack import fuse_stack
    from acnn_fusion.io import read_stack, write_image

    _refuse_overwriting_inputs([args.output, args.depth_map], [args.input])
    stack = read_stack(args.input)
    data, z_axis, channel_axis, time_axis = stack_axes(stack, args.axis, name=args.input)
    start = time.perf_counter()
    result = fuse_stack(
        data,
        axis=z_axis,
        channel_axis=channel_axis,
        time_axis=time_axis,
        detect_channel=args.channel,
        align=args.align,
        strategy=args.strategy,
        **_fusion_options(args),
        tile=args.tile,
        progress=_progress_bar("folding"),
    )
    seconds = time.perf_counter() - start
    meta = {"pixel_size": stack.pixel_size, "unit": stack.unit}
    write_image(args.output, result.fused, **meta)
    if args.depth_map is not None:
        write_image(args.depth_map, result.depth_map, **meta)
    n_slices = data.shape[z_axis]
    print(
        f"folded {n_slices} slices of {args.input.name} ({result.strategy}) → {args.output} "
        f"in {seconds:.2f} s"
    )
    return 0


def cmd_batch(args: argparse.Namespace) -> int:
    from acnn_fusion.batch import run_batch

    if args.input.resolve() == args.output.resolve():
        raise CLIError(f"output folder {args.output} is the input folder; choose another folder")
    if args.workers is not None or args.scheduler is not None:
        try:
            import dask.distributed  # noqa: F401
        except ImportError as exc:
            raise CLIError(
                "--workers/--scheduler need dask.distributed: pip install 'napari-acnn-fusion[distributed]'"
            ) from exc

    def show(entry) -> None:
        detail = f": {entry.error}" if entry.error else ""
        timing = f" ({entry.seconds:.2f} s)" if entry.status == "ok" else ""
        print(f"{entry.status:>9}  {entry.file}{timing}{detail}", flush=True)

    report = run_batch(
        args.input,
        args.output,
        mode=args.mode,
        pair_pattern=tuple(args.pair_suffixes),
        **_fusion_options(args),
        tile=args.tile,
        strategy=args.strategy,
        save_maps=args.save_maps,
        progress=_progress_bar("batch"),
        on_entry=show,
        scheduler=args.scheduler,
        workers=args.workers,
    )
    print(f"{report.summary()} → {args.output} (batch_report.json, batch_report.csv)")
    return 1 if report.failed else 0


def cmd_train(args: argparse.Namespace) -> int:
    from acnn_fusion.core.model import ACNNConfig
    from acnn_fusion.training.train import TrainConfig, train

    widths = ACNNConfig(*args.widths) if args.widths else ACNNConfig()
    config = TrainConfig(
        images=[str(p) for p in args.images],
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        patches_per_image=args.patches_per_image,
        seed=args.seed,
        widths=widths,
        bf16=args.bf16,
        noise=args.noise,
        noise_sigma_max=args.noise_sigma_max,
        photons_min=args.photons_min,
        ab_gain=args.ab_gain,
        ab_offset=args.ab_offset,
        weight_ambiguous=args.weight_ambiguous,
        relative_defocus=args.relative_defocus,
        init=str(args.init) if args.init else None,
    )
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    report = train(config, args.out, resume=not args.restart, log=lambda m: print(m, flush=True))
    print(f"wrote {args.out} (validation accuracy {report['val_accuracy']:.4%})")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from acnn_fusion.core.inference import select_device
    from acnn_fusion.core.weights import default_weights_path, load_model, read_metadata

    path = args.weights or default_weights_path()
    load_model(path)  # verifies the checksum
    meta = read_metadata(path)
    training = meta.get("training", {})
    print(f"napari-acnn-fusion {__version__}")
    print(f"weights: {path} (sha256 {meta['sha256'][:16]}…, verified)")
    print(f"model: {meta['model_version']}, widths {meta['widths']}, {meta['parameters']:,} parameters")
    if training:
        print(f"validation accuracy: {training.get('val_accuracy', float('nan')):.4%}")
    print(f"device (auto): {select_device('auto')}")
    if args.json:
        print(json.dumps(meta, indent=2))
    return 0


def _fusion_options(args: argparse.Namespace) -> dict:
    """The options that :func:`_add_fusion_options` defines, as keyword arguments of the core."""
    return {
        "threshold": args.threshold,
        "min_region": args.min_region,
        "preset": args.preset,
        "device": args.device,
        "precision": args.precision,
        "weights": args.weights,
    }


def _add_fusion_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--preset",
        default="default",
        choices=["default", "paper"],
        help="default: β=0.5; paper: Du & Gao's β=0.9",
    )
    parser.add_argument("--threshold", type=float, help="β: focus map level above which A is taken")
    parser.add_argument("--min-region", type=float, help="smallest region kept, as a fraction of the area")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    parser.add_argument(
        "--precision",
        default="auto",
        choices=list(PRECISIONS),
        help="network arithmetic: auto = bf16 where the device has it natively (0.05 %% of Lytro "
        "decision pixels change), fp32 = bit-reproducible",
    )
    parser.add_argument("--weights", type=Path, help="weights file (default: the shipped model)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="acnn-fusion", description="Multi-focus image fusion with an all convolutional network."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    fuse = sub.add_parser("fuse", help="fuse two images focused at different depths")
    fuse.add_argument("a", type=Path, help="image A (TIFF, PNG or JPEG)")
    fuse.add_argument("b", type=Path, help="image B, same size as A")
    fuse.add_argument("-o", "--output", type=Path, required=True, help="fused image (.tif or .png)")
    fuse.add_argument("--focus-map", type=Path, help="write the focus map (float TIFF or 8-bit PNG)")
    fuse.add_argument("--decision-map", type=Path, help="write the decision map (0/255)")
    fuse.add_argument("--tile", type=int, default=DEFAULT_TILE, help="tile edge in pixels (memory bound)")
    _add_fusion_options(fuse)
    fuse.set_defaults(func=cmd_fuse)

    evaluate = sub.add_parser("evaluate", help="fusion metrics (MI, Q^AB/F, Q_MI, Q_Y)")
    evaluate.add_argument("a", type=Path, nargs="?", help="image A")
    evaluate.add_argument("b", type=Path, nargs="?", help="image B")
    evaluate.add_argument("fused", type=Path, nargs="?", help="fused image")
    evaluate.add_argument("--pairs", type=Path, help="folder of *-A.*/*-B.* pairs to score")
    evaluate.add_argument(
        "--fused",
        dest="fused_dir",
        type=Path,
        help="folder of fused images named after the pairs (default: fuse them now)",
    )
    evaluate.add_argument("--out", type=Path, help="table path stem (writes .csv and .md)")
    _add_fusion_options(evaluate)
    evaluate.set_defaults(func=cmd_evaluate)

    demo = sub.add_parser("demo", help="fuse the bundled sample pair and report time and scores")
    demo.add_argument("--sample-dir", type=Path, default=Path("sample_data"))
    demo.add_argument("--out", type=Path, default=Path("demo_output"))
    demo.add_argument("--device", default="auto")
    demo.set_defaults(func=cmd_demo)

    stack = sub.add_parser("stack", help="fold a focal stack into one all-in-focus image")
    stack.add_argument("input", type=Path, help="multi-page/hyperstack TIFF, or a folder of planes")
    stack.add_argument("-o", "--output", type=Path, required=True, help="fused image (.tif)")
    stack.add_argument("--depth-map", type=Path, help="write the source slice index per pixel")
    stack.add_argument("--axis", type=int, help="focus axis (default: the Z axis, else the first)")
    stack.add_argument("--channel", type=int, help="detect focus on this channel (default: all)")
    stack.add_argument("--align", action="store_true", help="correct drift between slices first")
    stack.add_argument("--strategy", default="features", choices=STRATEGIES)
    stack.add_argument("--tile", type=int, default=DEFAULT_TILE, help="tile edge in pixels (memory bound)")
    _add_fusion_options(stack)
    stack.set_defaults(func=cmd_stack)

    batch = sub.add_parser("batch", help="fuse every focal stack or A/B pair of a folder (resumable)")
    batch.add_argument("input", type=Path, help="folder of TIFF stacks or of <stem>_A/<stem>_B pairs")
    batch.add_argument("output", type=Path, help="output folder (not the input folder)")
    batch.add_argument(
        "--mode",
        default="auto",
        choices=["auto", "stack", "pair"],
        help="auto: pairs if any A/B pair is found, else stacks",
    )
    batch.add_argument(
        "--pair-suffixes",
        nargs=2,
        default=["_A", "_B"],
        metavar=("A", "B"),
        help="file name endings of the two images of a pair (default: _A _B)",
    )
    batch.add_argument("--save-maps", action="store_true", help="pairs: also write focus and decision maps")
    batch.add_argument("--strategy", default="features", choices=STRATEGIES)
    batch.add_argument("--tile", type=int, default=DEFAULT_TILE, help="tile edge in pixels (memory bound)")
    scale = batch.add_mutually_exclusive_group()
    scale.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="run on a local dask cluster of N worker processes (needs the [distributed] extra)",
    )
    scale.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run on an existing dask cluster, e.g. tcp://10.0.0.5:8786 (needs the [distributed] extra)",
    )
    _add_fusion_options(batch)
    batch.set_defaults(func=cmd_batch)

    train = sub.add_parser("train", help="train the patch classifier on folders of sharp images")
    train.add_argument("--images", type=Path, nargs="+", required=True)
    train.add_argument("--out", type=Path, required=True, help="weights file (.pt) to write")
    train.add_argument("--epochs", type=int, default=6)
    train.add_argument("--batch-size", type=int, default=256)
    train.add_argument("--lr", type=float, default=1e-3)
    train.add_argument("--patches-per-image", type=int, default=450)
    train.add_argument("--widths", type=int, nargs=4, metavar=("C1", "C2", "C3", "FC"))
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--bf16", action="store_true", help="bf16 autocast (fast only with native bf16)")
    train.add_argument("--restart", action="store_true", help="ignore an existing checkpoint")
    train.add_argument(
        "--noise", type=float, default=0.0, help="share of pairs given camera (read + shot) noise, 0–1"
    )
    train.add_argument("--noise-sigma-max", type=float, default=0.08, help="largest read-noise σ (0–1 scale)")
    train.add_argument("--photons-min", type=float, default=10.0, help="fewest photons per unit intensity")
    train.add_argument("--ab-gain", type=float, default=0.06, help="gain spread between A and B")
    train.add_argument("--ab-offset", type=float, default=0.0, help="offset spread between A and B")
    train.add_argument(
        "--weight-ambiguous", action="store_true", help="down-weight pairs the noise makes ambiguous"
    )
    train.add_argument(
        "--relative-defocus",
        type=float,
        default=0.0,
        help="share of pairs comparing a light defocus with a stronger one, 0–1",
    )
    train.add_argument("--init", type=Path, help="weights file to fine-tune instead of a random start")
    train.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    train.set_defaults(func=cmd_train)

    info = sub.add_parser("info", help="version, model metadata and the device that would be used")
    info.add_argument("--weights", type=Path)
    info.add_argument("--json", action="store_true", help="also print the full weights metadata")
    info.set_defaults(func=cmd_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (CLIError, ValueError, TypeError, FileNotFoundError, PermissionError, OSError) as exc:
        print(f"acnn-fusion: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("acnn-fusion: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
