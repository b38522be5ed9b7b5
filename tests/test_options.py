"""The options model: validation, records, and every field reaching the core from every face."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tifffile

from acnn_fusion.cli import main
from acnn_fusion.core import pipeline
from acnn_fusion.options import FusionOptions, option_fields, outputs_differ
from acnn_fusion.synthetic import blob_mask, render_pair, sample_stack


def test_defaults_and_validation_name_the_option():
    assert FusionOptions().settings().threshold == 0.5
    assert FusionOptions(preset="paper").settings().threshold == 0.9
    with pytest.raises(ValueError, match="precision 'fp8'"):
        FusionOptions(precision="fp8")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="threshold"):
        FusionOptions(threshold=1.5)
    with pytest.raises(TypeError, match="tile must be int"):
        FusionOptions(tile="big")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="tile"):
        FusionOptions(tile=8)
    with pytest.raises(ValueError, match="device 'gpu0'"):
        FusionOptions(device="gpu0")
    with pytest.raises(TypeError, match=r"unknown option.*colour"):
        FusionOptions().replace(colour="red")
    with pytest.raises(TypeError, match=r"stack option.*strategy"):
        pipeline.fuse_pair(np.zeros((32, 32)), np.zeros((32, 32)), strategy="pairwise")


def test_every_example_is_valid_and_not_the_default():
    defaults = FusionOptions()
    for f in option_fields():
        changed = defaults.replace(**{f.name: f.metadata["example"]})
        assert getattr(changed, f.name) != getattr(defaults, f.name), f.name


def test_record_resolves_the_preset_and_blanks_options_of_the_other_kind():
    record = FusionOptions(preset="paper", strategy="pairwise").to_record("pair")
    assert record["threshold"] == 0.9 and record["min_region"] == 0.01
    assert record["strategy"] is None and record["align"] is None
    assert FusionOptions(strategy="pairwise").to_record("stack")["strategy"] == "pairwise"
    assert not outputs_differ(FusionOptions(device="cpu").to_record(), FusionOptions().to_record())
    assert outputs_differ(FusionOptions(tile=64).to_record(), FusionOptions().to_record())


# -- every field from every face --------------------------------------------------------------


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("faces")
    sharp = sample_stack().sharp[:48, :48]
    pair = render_pair(sharp, blob_mask(sharp.shape, seed=1), radius=3.0)
    (folder / "pairs").mkdir()
    tifffile.imwrite(folder / "pairs" / "p_A.tif", pair.image_a)
    tifffile.imwrite(folder / "pairs" / "p_B.tif", pair.image_b)
    (folder / "stacks").mkdir()
    planes = sample_stack().stack[:3, :48, :48]
    tifffile.imwrite(folder / "stacks" / "s.tif", planes, metadata={"axes": "ZYX"})
    return folder


def _flag(f: dataclasses.Field) -> list[str]:
    flag = f.metadata.get("flag", "--" + f.name.replace("_", "-"))
    example = f.metadata["example"]
    return [flag] if isinstance(example, bool) else [flag, str(example)]


def _faces(kind: str, inputs, out):
    pairs, stacks = inputs / "pairs", inputs / "stacks"
    if kind == "pair":
        return {
            "fuse": ["fuse", str(pairs / "p_A.tif"), str(pairs / "p_B.tif"), "-o", str(out / "f.tif")],
            "batch": ["batch", str(pairs), str(out / "batch")],
            "evaluate": ["evaluate", "--pairs", str(pairs), "--out", str(out / "table")],
        }
    return {
        "stack": ["stack", str(stacks / "s.tif"), "-o", str(out / "f.tif")],
        "batch": ["batch", str(stacks), str(out / "batch"), "--mode", "stack"],
    }


@pytest.mark.parametrize("kind", ["pair", "stack"])
def test_every_option_reaches_the_core_from_the_command_line(kind, inputs, seen, tmp_path):
    for f in option_fields(kind):
        for face, argv in _faces(kind, inputs, tmp_path / f.name).items():
            seen.clear()
            assert main([*argv, *_flag(f)]) in (0, 1), (face, f.name)
            assert seen, f"{face} did not reach the core with {f.name}"
            assert all(getattr(o, f.name) == f.metadata["example"] for o in seen), (face, f.name)


def test_every_option_reaches_the_core_from_the_batch_engine(inputs, seen, tmp_path):
    from acnn_fusion.batch import run_batch

    for kind, folder in (("pair", inputs / "pairs"), ("stack", inputs / "stacks")):
        for f in option_fields(kind):
            seen.clear()
            example = {f.name: f.metadata["example"]}
            report = run_batch(folder, tmp_path / kind / f.name, mode=kind, **example)
            assert report.ok == 1 and len(seen) == 1
            assert getattr(seen[0], f.name) == f.metadata["example"]
            if f.metadata["affects_output"]:
                assert report.parameters[f.name] == FusionOptions(**example).to_record(kind)[f.name]


def test_demo_takes_the_pair_options(seen, tmp_path):
    from acnn_fusion.synthetic import write_sample_data

    write_sample_data(tmp_path / "sample")
    argv = ["demo", "--sample-dir", str(tmp_path / "sample"), "--out", str(tmp_path / "o"), "--tile", "64"]
    assert main(argv) == 0
    assert seen and all(o.tile == 64 for o in seen)
