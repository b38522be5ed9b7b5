"""Command line: ``acnn-fusion fuse | stack | batch | evaluate | demo | train | info | export-onnx``.

A thin face: arguments become a :class:`~acnn_fusion.options.FusionOptions` (its fields
generate the option flags), the work is one call of :mod:`acnn_fusion.tasks` or
:mod:`acnn_fusion.batch`, and input problems print one line and exit with status 2.
Nothing heavy is imported before a command runs, so ``--version`` answers at once.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from acnn_fusion._version import __version__
from acnn_fusion.options import FusionOptions, choices, option_fields, option_names, option_type

EXIT_USAGE = 2


class CLIError(Exception):
    """An input or usage problem reported as one line with exit status 2."""


def _progress_bar(description: str) -> Callable[[int, int], None]:
    """A tqdm-driven callback (done, total) for long runs; silent when not a terminal."""
    from tqdm import tqdm

    bar: dict[str, tqdm] = {}

    def update(done: int, total: int) -> None:
        if "bar" not in bar:
            disable = total < 4 or not sys.stderr.isatty()
            bar["bar"] = tqdm(total=total, desc=description, unit="step", leave=False, disable=disable)
        bar["bar"].n = done
        bar["bar"].refresh()
        if done >= total:
            bar.pop("bar").close()

    return update


def add_option_arguments(parser: argparse.ArgumentParser, kind: str | None) -> None:
    """One flag per :class:`FusionOptions` field that applies to ``kind`` (None: pair and stack)."""
    group = parser.add_argument_group("fusion options")
    for f in option_fields(kind):
        flag = f.metadata.get("flag", "--" + f.name.replace("_", "-"))
        help_text = f.metadata["help"].replace("%", "%%")  # argparse formats help with %
        kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": help_text}
        kind_of_value, allowed = option_type(f.name), choices(f.name)
        if kind_of_value is bool:
            kwargs["action"] = "store_true"
        elif allowed is not None:
            kwargs["choices"] = list(allowed)
        else:
            kwargs["type"] = kind_of_value
        group.add_argument(flag, **kwargs)


def options_from(args: argparse.Namespace) -> FusionOptions:
    """The options given on the command line over the defaults."""
    return FusionOptions(**{name: getattr(args, name) for name in option_names() if hasattr(args, name)})


def cmd_fuse(args: argparse.Namespace) -> int:
    from acnn_fusion.tasks import PairOutputs, fuse_pair_files

    outputs = PairOutputs(args.output, args.focus_map, args.decision_map)
    start = time.perf_counter()
    result = fuse_pair_files(args.a, args.b, outputs, options_from(args), _progress_bar("fusing"))
    print(
        f"fused {args.a.name} + {args.b.name} → {args.output} in {time.perf_counter() - start:.2f} s "
        f"({result.decision_map.mean():.1%} of pixels from A)"
    )
    return 0


def cmd_stack(args: argparse.Namespace) -> int:
    from acnn_fusion.io import stack_axes
    from acnn_fusion.tasks import StackOutputs, fuse_stack_file

    start = time.perf_counter()
    outputs = StackOutputs(args.output, args.depth_map)
    result, stack = fuse_stack_file(
        args.input, outputs, options_from(args), args.axis, _progress_bar("folding")
    )
    data, z_axis, _, _ = stack_axes(stack, args.axis)
    print(
        f"folded {data.shape[z_axis]} slices of {args.input.name} ({result.strategy}) → {args.output} "
        f"in {time.perf_counter() - start:.2f} s"
    )
    return 0


def cmd_batch(args: argparse.Namespace) -> int:
    from acnn_fusion.batch import BatchEntry, run_batch

    def show(entry: BatchEntry) -> None:
        detail = f": {entry.error}" if entry.error else ""
        timing = f" ({entry.seconds:.2f} s)" if entry.status == "ok" else ""
        print(f"{entry.status:>9}  {entry.file}{timing}{detail}", flush=True)

    try:
        report = run_batch(
            args.input,
            args.output,
            options_from(args),
            mode=args.mode,
            pair_suffixes=tuple(args.pair_suffixes) if args.pair_suffixes else None,
            save_maps=args.save_maps,
            progress=_progress_bar("batch"),
            on_entry=show,
            scheduler=args.scheduler,
            workers=args.workers,
        )
    except ImportError as exc:
        raise CLIError(str(exc)) from exc
    print(f"{report.summary()} → {args.output} (batch_report.json, batch_report.csv)")
    return 1 if report.failed else 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from acnn_fusion.io import read_image

    if args.pairs is None:
        if not (args.a and args.b and args.fused):
            raise CLIError("give A B FUSED, or --pairs DIR [--fused DIR]")
        from acnn_fusion.metrics import evaluate

        for key, value in evaluate(read_image(args.a), read_image(args.b), read_image(args.fused)).items():
            print(f"{key:>5}  {value:.4f}")
        return 0
    from acnn_fusion.tasks import evaluate_folder, write_tables

    def show(row: dict[str, Any]) -> None:
        print("  ".join(f"{v:.4f}" if isinstance(v, float) else str(v) for v in row.values()), flush=True)

    rows = evaluate_folder(args.pairs, options_from(args), args.fused_dir, on_row=show)
    print("mean  " + "  ".join(f"{k} {v:.4f}" for k, v in rows[-1].items() if k != "pair"))
    csv_path, md_path = write_tables(rows, args.out or Path("evaluation"))
    print(f"wrote {csv_path} and {md_path}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from acnn_fusion.tasks import run_demo

    run_demo(args.sample_dir, args.out, options_from(args), say=print)
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from acnn_fusion.core.inference import resolve_runtime, select_device
    from acnn_fusion.core.weights import default_weights_path, load_model, onnx_export, read_metadata

    path = args.weights or default_weights_path()
    options = FusionOptions(weights=str(path))
    # decided before torch is loaded below, as in a fusion process
    runtimes = (resolve_runtime(options, 0.0), resolve_runtime(options, None))
    load_model(path)  # verifies the checksum
    meta = read_metadata(path)
    print(f"napari-acnn-fusion {__version__}")
    print(f"weights: {path} (sha256 {meta['sha256'][:16]}…, verified)")
    print(f"model: {meta['model_version']}, widths {meta['widths']}, {meta['parameters']:,} parameters")
    if meta.get("training"):
        print(f"validation accuracy: {meta['training'].get('val_accuracy', float('nan')):.4%}")
    print(f"device (auto): {select_device('auto')}")
    found = onnx_export(path)
    print(f"onnx export: {found[0].name} (sha256 {found[1][:16]}…)" if found else "onnx export: none")
    small, large = runtimes
    print(
        f"runtime (auto): {small}"
        if small == large
        else f"runtime (auto): {small} for small inputs, {large} for large"
    )
    if args.json:
        import json

        print(json.dumps(meta, indent=2))
    return 0


def cmd_export_onnx(args: argparse.Namespace) -> int:
    from acnn_fusion.core.onnx_runtime import export_onnx

    try:
        written = export_onnx(args.weights)
    except ImportError as exc:
        raise CLIError(f"exporting needs the onnx package (pip install onnx): {exc}") from exc
    print(f"wrote {written} and recorded its sha256 in {written.with_suffix('.json').name}")
    return 0


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
    add_option_arguments(fuse, "pair")
    fuse.set_defaults(func=cmd_fuse)

    stack = sub.add_parser("stack", help="fold a focal stack into one all-in-focus image")
    stack.add_argument("input", type=Path, help="multi-page/hyperstack TIFF, or a folder of planes")
    stack.add_argument("-o", "--output", type=Path, required=True, help="fused image (.tif)")
    stack.add_argument("--depth-map", type=Path, help="write the source slice index per pixel")
    stack.add_argument("--axis", type=int, help="focus axis (default: the Z axis, else the first)")
    add_option_arguments(stack, "stack")
    stack.set_defaults(func=cmd_stack)

    batch = sub.add_parser("batch", help="fuse every focal stack or A/B pair of a folder (resumable)")
    batch.add_argument("input", type=Path, help="folder of TIFF stacks or of <stem>_A/<stem>_B pairs")
    batch.add_argument("output", type=Path, help="output folder (not the input folder)")
    batch.add_argument(
        "--mode",
        default="auto",
        choices=["auto", "stack", "pair"],
        help="auto: pairs if any are found, else stacks",
    )
    batch.add_argument(
        "--pair-suffixes",
        nargs=2,
        metavar=("A", "B"),
        help="name endings of a pair (default: _A _B or -A -B)",
    )
    batch.add_argument("--save-maps", action="store_true", help="pairs: also write focus and decision maps")
    scale = batch.add_mutually_exclusive_group()
    scale.add_argument("--workers", type=int, metavar="N", help="run on a local dask cluster of N processes")
    scale.add_argument(
        "--scheduler", metavar="ADDRESS", help="run on an existing dask cluster (tcp://host:8786)"
    )
    add_option_arguments(batch, None)
    batch.set_defaults(func=cmd_batch)

    evaluate = sub.add_parser("evaluate", help="fusion metrics (MI, Q^AB/F, Q_MI, Q_Y)")
    evaluate.add_argument("a", type=Path, nargs="?", help="image A")
    evaluate.add_argument("b", type=Path, nargs="?", help="image B")
    evaluate.add_argument("fused", type=Path, nargs="?", help="fused image")
    evaluate.add_argument("--pairs", type=Path, help="folder of *_A.*/*_B.* (or -A/-B) pairs to score")
    evaluate.add_argument(
        "--fused",
        dest="fused_dir",
        type=Path,
        help="folder of fused images <stem>[_tag].* (default: fuse now)",
    )
    evaluate.add_argument("--out", type=Path, help="table path stem (writes .csv and .md)")
    add_option_arguments(evaluate, "pair")
    evaluate.set_defaults(func=cmd_evaluate)

    demo = sub.add_parser("demo", help="fuse the bundled sample pair and report time and scores")
    demo.add_argument("--sample-dir", type=Path, default=Path("sample_data"))
    demo.add_argument("--out", type=Path, default=Path("demo_output"))
    add_option_arguments(demo, "pair")
    demo.set_defaults(func=cmd_demo)

    from acnn_fusion.training.command import add_train_arguments, cmd_train

    train = sub.add_parser("train", help="train the patch classifier on folders of sharp images")
    add_train_arguments(train)
    train.set_defaults(func=cmd_train)

    info = sub.add_parser("info", help="version, model metadata and the device that would be used")
    info.add_argument("--weights", type=Path)
    info.add_argument("--json", action="store_true", help="also print the full weights metadata")
    info.set_defaults(func=cmd_info)

    export = sub.add_parser(
        "export-onnx", help="write the ONNX export of a weights file (runtime onnx) and record its sha256"
    )
    export.add_argument("--weights", type=Path, help="a .pt with its .json (default: the shipped model)")
    export.set_defaults(func=cmd_export_onnx)
    return parser


def _one_line(exc: BaseException) -> str:
    """An error as one line: its first line, and the file for an OSError that names one."""
    if isinstance(exc, OSError) and exc.strerror and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror}"
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (CLIError, ValueError, TypeError, OSError) as exc:  # input problems: one line
        print(f"acnn-fusion: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except MemoryError:
        print("acnn-fusion: error: not enough memory for this input (try a smaller --tile)", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("acnn-fusion: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
