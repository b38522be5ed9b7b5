"""What a batch folder holds: its jobs (one focal stack, or one A/B pair each) and their outputs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from acnn_fusion.io import TIFF_SUFFIXES, find_pairs, natural_key
from acnn_fusion.io.images import check_declared_size
from acnn_fusion.io.stacks import inspect_tiff
from acnn_fusion.options import Kind

MODES = ("auto", "stack", "pair")


@dataclass(frozen=True)
class Job:
    """One input of a batch: a stack file or an A/B pair, and the stem of its outputs."""

    name: str  # output stem
    kind: Kind
    inputs: tuple[Path, ...]
    problem: str = ""  # set: fails without being read (e.g. an A without its B)
    skip: str = ""  # set: skipped without being read, and why (e.g. a 2-D TIFF in a stack folder)

    @property
    def label(self) -> str:
        return " + ".join(p.name for p in self.inputs)

    def output_names(self, save_maps: bool) -> list[str]:
        """Fused image first, then the maps: ``_depth`` (stacks) or ``_focus``/``_decision`` (pairs)."""
        if self.kind == "stack":
            return [f"{self.name}_fused.tif", f"{self.name}_depth.tif"]
        names = [f"{self.name}_fused.tif"]
        if save_maps:
            names += [f"{self.name}_focus.tif", f"{self.name}_decision.png"]
        return names


def single_image(path: Path) -> str:
    """Why the TIFF ``path`` is one image rather than a focal stack, from its header; "" if
    it may be a stack, or its header cannot be read or declares more data than the file holds
    (reading it then fails and says why: a broken file is a failure, not a skip)."""
    try:
        axes, shape = inspect_tiff(path)
        check_declared_size(path)
    except Exception:
        return ""
    kept = "".join(a for a, n in zip(axes, shape, strict=False) if n != 1 or a in "YX")
    if "Y" not in kept or "X" not in kept or not set(kept) <= set("YXSC"):
        return ""
    return f"not a focal stack: one image ({kept} {tuple(n for n in shape if n != 1)}), no slices to fold"


def find_stack_jobs(folder: Path) -> list[Job]:
    """Every visible ``*.tif``/``*.tiff`` file of ``folder`` as a focal stack; a single image
    (a plain 2-D TIFF, grey or colour) is a job to skip."""
    files = sorted(
        (
            p
            for p in folder.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in TIFF_SUFFIXES
        ),
        key=natural_key,
    )
    return [Job(p.stem, "stack", (p,), skip=single_image(p)) for p in files]


def find_pair_jobs(folder: Path, suffixes: tuple[str, str] | None = None) -> list[Job]:
    """Every A/B pair of ``folder`` (:func:`acnn_fusion.io.find_pairs`); lone images fail."""
    return [Job(p.stem, "pair", p.paths, p.problem) for p in find_pairs(folder, suffixes)]


def find_jobs(folder: Path, mode: str, suffixes: tuple[str, str] | None = None) -> tuple[Kind, list[Job]]:
    """(kind used, jobs): ``auto`` takes pairs if any complete pair is found, else stacks."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose from {list(MODES)}")
    pairs = find_pair_jobs(folder, suffixes) if mode in ("auto", "pair") else []
    if mode == "pair" or (mode == "auto" and any(not j.problem for j in pairs)):
        jobs: list[Job] = pairs
        kind: Kind = "pair"
    else:
        kind, jobs = "stack", find_stack_jobs(folder)
    if not jobs:
        wanted = "*_A.* / *_B.* pairs" if kind == "pair" else "TIFF stacks"
        if kind == "pair" and suffixes is not None:
            wanted = f"*{suffixes[0]}.* / *{suffixes[1]}.* pairs"
        raise ValueError(f"no {wanted} found in {folder}")
    return kind, jobs
