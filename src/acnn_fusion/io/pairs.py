"""The one naming rule for image pairs and their fused results.

A pair is ``<stem><A suffix>.<ext>`` with ``<stem><B suffix>.<ext>`` in the same folder; by
default the suffixes are ``_A``/``_B`` or ``-A``/``-B`` (``lytro-01-A.jpg`` pairs with
``lytro-01-B.jpg``). Names are compared as text, never as glob patterns. The fused image
of pair ``<stem>`` is ``<stem>.<ext>`` or ``<stem><sep><tag>.<ext>`` (``scene1_fused.tif``,
``lytro-01-cnn.png``): ``scene10_fused.tif`` is not a result of ``scene1``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from acnn_fusion.io.images import IMAGE_SUFFIXES
from acnn_fusion.io.stacks import natural_key

#: the suffix pairs tried when none are given
DEFAULT_SUFFIXES: tuple[tuple[str, str], ...] = (("_A", "_B"), ("-A", "-B"))
_TAG_SEPARATORS = "_-. "


@dataclass(frozen=True)
class Pair:
    """Two images of one scene; ``problem`` is set when one of them is missing."""

    stem: str
    paths: tuple[Path, ...]  # (A, B), or just the one image that was found
    problem: str = ""


def image_files(folder: Path) -> list[Path]:
    """Visible image files of ``folder`` in natural order."""
    return sorted(
        (
            p
            for p in folder.iterdir()
            if not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
        ),
        key=natural_key,
    )


def _check_suffixes(suffixes: tuple[str, str]) -> tuple[str, str]:
    a, b = (str(s) for s in suffixes)
    if not a or not b or a == b:
        raise ValueError(f"pair suffixes must be two different non-empty strings, got {suffixes}")
    return a, b


def find_pairs(folder: Path, suffixes: tuple[str, str] | None = None) -> list[Pair]:
    """Every pair in ``folder`` (natural order); a lone A or B is a :class:`Pair` with a problem.

    ``suffixes`` (A, B) fixes the naming; by default each of :data:`DEFAULT_SUFFIXES` is tried
    and an image belongs to the first rule it matches.
    """
    rules = (_check_suffixes(suffixes),) if suffixes is not None else DEFAULT_SUFFIXES
    files = image_files(folder)
    by_stem: dict[str, list[Path]] = {}
    for path in files:
        by_stem.setdefault(path.stem, []).append(path)
    pairs: list[Pair] = []
    used: set[Path] = set()
    for suffix_a, suffix_b in rules:
        for path_a in files:
            if path_a in used or not path_a.stem.endswith(suffix_a):
                continue
            stem = path_a.stem[: -len(suffix_a)]
            candidates = [p for p in by_stem.get(stem + suffix_b, []) if p not in used]
            same_ext = [p for p in candidates if p.suffix.lower() == path_a.suffix.lower()]
            path_b = (same_ext or candidates)[0] if candidates else None
            used.add(path_a)
            if path_b is None:
                pairs.append(Pair(stem, (path_a,), f"no matching {stem + suffix_b}.* for {path_a.name}"))
            else:
                used.add(path_b)
                pairs.append(Pair(stem, (path_a, path_b)))
        for path_b in files:
            if path_b not in used and path_b.stem.endswith(suffix_b):
                stem = path_b.stem[: -len(suffix_b)]
                used.add(path_b)
                pairs.append(Pair(stem, (path_b,), f"no matching {stem + suffix_a}.* for {path_b.name}"))
    return sorted(pairs, key=lambda p: natural_key(p.paths[0]))


def find_fused(folder: Path, stem: str) -> Path:
    """The fused image of pair ``stem`` in ``folder`` (see the module's naming rule).

    Raises FileNotFoundError when there is none and ValueError when several match (a file
    named ``<stem>_fused.*`` is preferred over other tags).
    """
    matches = []
    for path in image_files(folder):
        name = path.stem
        if name == stem:
            matches.append(path)
        elif name.startswith(stem) and name[len(stem)] in _TAG_SEPARATORS:
            tag = name[len(stem) + 1 :]
            if tag and not any(sep in tag for sep in _TAG_SEPARATORS):  # one word: not another pair
                matches.append(path)
    if len(matches) > 1:
        preferred = [p for p in matches if p.stem.lower().endswith("fused")]
        if len(preferred) == 1:
            return preferred[0]
        names = ", ".join(p.name for p in matches)
        raise ValueError(f"several fused images for pair {stem!r} in {folder}: {names}")
    if not matches:
        raise FileNotFoundError(f"no fused image for pair {stem!r} in {folder}")
    return matches[0]
