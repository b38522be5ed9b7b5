"""One naming rule for pairs and fused results; evaluate --fused scores the right files."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from acnn_fusion.cli import main
from acnn_fusion.io import find_fused, find_pairs


def _touch(folder, *names):
    folder.mkdir(exist_ok=True)
    for name in names:
        tifffile.imwrite(folder / name, np.zeros((16, 16), np.uint8))


def test_fused_image_is_matched_by_whole_name_not_prefix(tmp_path):
    _touch(tmp_path / "out", "scene10_fused.tif", "scene1_fused.tif", "scene1x.tif")
    (tmp_path / "out" / "scene1.done.json").write_text("{}")
    assert find_fused(tmp_path / "out", "scene1").name == "scene1_fused.tif"
    assert find_fused(tmp_path / "out", "scene10").name == "scene10_fused.tif"
    with pytest.raises(FileNotFoundError, match="scene2"):
        find_fused(tmp_path / "out", "scene2")


def test_published_result_names_and_ambiguity(tmp_path):
    _touch(tmp_path / "ref", "lytro-01-cnn.tif", "lytro-011-cnn.tif")
    assert find_fused(tmp_path / "ref", "lytro-01").name == "lytro-01-cnn.tif"
    _touch(tmp_path / "two", "p-cnn.tif", "p-ours.tif")
    with pytest.raises(ValueError, match="several"):
        find_fused(tmp_path / "two", "p")


def test_pairs_follow_one_rule_and_names_are_not_patterns(tmp_path):
    _touch(tmp_path / "in", "img[1]-A.tif", "img1-B.tif", "img[1]-B.tif", "b_A.tif", "b_B.tif", "lone_A.tif")
    pairs = {p.stem: [q.name for q in p.paths] for p in find_pairs(tmp_path / "in") if not p.problem}
    assert pairs == {"img[1]": ["img[1]-A.tif", "img[1]-B.tif"], "b": ["b_A.tif", "b_B.tif"]}
    problems = {p.stem: p.problem for p in find_pairs(tmp_path / "in") if p.problem}
    assert set(problems) == {"img1", "lone"} and "img1-A" in problems["img1"]
    custom = find_pairs(tmp_path / "in", ("_A", "_B"))
    assert {p.stem for p in custom if not p.problem} == {"b"}


def test_evaluate_with_fused_folder_scores_each_pair_against_its_own_result(tmp_path, camera_pair):
    from acnn_fusion.metrics import evaluate

    pairs, fused = tmp_path / "pairs", tmp_path / "fused"
    pairs.mkdir(), fused.mkdir()
    a, b = camera_pair.image_a, camera_pair.image_b
    for stem in ("scene1", "scene10"):
        tifffile.imwrite(pairs / f"{stem}_A.tif", a)
        tifffile.imwrite(pairs / f"{stem}_B.tif", b)
    tifffile.imwrite(fused / "scene1_fused.tif", a)  # scene1 "fused" = A, scene10 = B
    tifffile.imwrite(fused / "scene10_fused.tif", b)
    (fused / "scene1.done.json").write_text("{}")
    assert main(["evaluate", "--pairs", str(pairs), "--fused", str(fused), "--out", str(tmp_path / "t")]) == 0
    rows = (tmp_path / "t.csv").read_text().splitlines()
    header = rows[0].split(",")
    values = {r.split(",")[0]: dict(zip(header, r.split(","), strict=True)) for r in rows[1:]}
    assert float(values["scene1"]["MI"]) == pytest.approx(evaluate(a, b, a)["MI"], abs=1e-4)
    assert float(values["scene10"]["MI"]) == pytest.approx(evaluate(a, b, b)["MI"], abs=1e-4)
