"""No file of the user's is ever overwritten: outputs that are inputs in disguise, clashing
outputs, lossy outputs, the demo's sample folder and training's --out. Each case checks that
the command refuses with one line (exit 2) *and* that every input is byte-for-byte intact."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import tifffile

from acnn_fusion.cli import main

from .conftest import deadline, digest, one_line_error


@pytest.fixture
def inputs(tmp_path, stack8):
    folder = tmp_path / "planes"
    folder.mkdir()
    for z, plane in enumerate(stack8[:4]):
        tifffile.imwrite(folder / f"plane{z}.tif", plane)
    tifffile.imwrite(tmp_path / "stack.tif", stack8, metadata={"axes": "ZYX"})
    (tmp_path / "out").mkdir()
    return tmp_path


def _aliases(root: Path, target: Path) -> dict[str, Path]:
    """Other names for ``target``: a symlink, a path through '..', a hard link, a link to its folder."""
    (root / "link.tif").symlink_to(target)
    os.link(target, root / "hard.tif")
    (root / "folder_link").symlink_to(target.parent)
    return {
        "same": target,
        "symlink": root / "link.tif",
        "dotdot": target.parent / ".." / target.parent.name / target.name,
        "dot": target.parent / "." / target.name,
        "hardlink": root / "hard.tif",
        "linked_folder": root / "folder_link" / target.name,
        "relative": Path(os.path.relpath(target)),
    }


ALIASES = ["same", "symlink", "dotdot", "dot", "hardlink", "linked_folder", "relative"]


def _run(argv: list, capsys) -> tuple[int, str]:
    with deadline():
        code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p): digest(p) for p in sorted(root.rglob("*.tif")) if p.is_file() and not p.is_symlink()}


@pytest.mark.parametrize("role", ["output", "map"])
@pytest.mark.parametrize("alias", ALIASES)
@pytest.mark.parametrize("command", ["stack_folder", "stack_file", "fuse"])
def test_outputs_resolving_to_inputs_are_refused(command, alias, role, inputs, capsys, monkeypatch):
    monkeypatch.chdir(inputs)
    if command == "stack_folder":
        target, argv = inputs / "planes" / "plane1.tif", ["stack", inputs / "planes"]
        map_flag = "--depth-map"
    elif command == "stack_file":
        target, argv = inputs / "stack.tif", ["stack", inputs / "stack.tif"]
        map_flag = "--depth-map"
    else:
        target = inputs / "planes" / "plane0.tif"
        argv, map_flag = ["fuse", target, inputs / "planes" / "plane2.tif"], "--focus-map"
    victim = _aliases(inputs, target)[alias]
    before = _snapshot(inputs)
    if role == "output":
        argv += ["-o", victim, map_flag, inputs / "out" / "map.tif"]
    else:
        argv += ["-o", inputs / "out" / "fused.tif", map_flag, victim]
    code, err = _run([*argv, "--device", "cpu"], capsys)
    assert code == 2
    one_line_error(err)
    assert "input" in err
    assert _snapshot(inputs) == before
    assert not (inputs / "out" / "fused.tif").exists() and not (inputs / "out" / "map.tif").exists()


def test_folder_stack_may_not_overwrite_two_planes(inputs, capsys):
    """The issue's case: ``stack FOLDER -o FOLDER/plane0.tif --depth-map FOLDER/plane1.tif``."""
    folder = inputs / "planes"
    before = _snapshot(folder)
    code, err = _run(
        ["stack", folder, "-o", folder / "plane0.tif", "--depth-map", folder / "plane1.tif"], capsys
    )
    assert code == 2 and _snapshot(folder) == before
    one_line_error(err)


CLASHES = [
    ("fuse", "--focus-map"),
    ("fuse", "--decision-map"),
    ("stack", "--depth-map"),
]


@pytest.mark.parametrize("spelling", ["same", "dotdot", "symlink_existing"])
@pytest.mark.parametrize(("command", "flag"), CLASHES)
def test_clashing_outputs_are_refused(command, flag, spelling, inputs, capsys):
    out = inputs / "out" / "x.tif"
    if spelling == "same":
        other = out
    elif spelling == "dotdot":
        other = inputs / "out" / ".." / "out" / "x.tif"
    else:
        out.write_bytes(b"previous result")
        (inputs / "out" / "y.tif").symlink_to(out)
        other = inputs / "out" / "y.tif"
    argv = (
        ["fuse", inputs / "planes" / "plane0.tif", inputs / "planes" / "plane1.tif"]
        if command == "fuse"
        else ["stack", inputs / "stack.tif"]
    )
    code, err = _run([*argv, "-o", out, flag, other, "--device", "cpu"], capsys)
    assert code == 2 and "same file" in err
    one_line_error(err)


@pytest.mark.parametrize("suffix", [".jpg", ".jpeg", ".JPG"])
@pytest.mark.parametrize("which", ["-o", "--focus-map", "--decision-map"])
def test_lossy_outputs_are_refused(suffix, which, inputs, capsys):
    """Decision: JPEG outputs are refused (a fused JPEG holds pixels from neither source)."""
    outputs = {"-o": inputs / "out" / "f.tif", "--focus-map": None, "--decision-map": None}
    outputs[which] = inputs / "out" / f"lossy{suffix}"
    argv = ["fuse", inputs / "planes" / "plane0.tif", inputs / "planes" / "plane1.tif"]
    for flag, path in outputs.items():
        if path is not None:
            argv += [flag, path]
    code, err = _run([*argv, "--device", "cpu"], capsys)
    assert code == 2 and "lossy" in err
    one_line_error(err)
    assert not any((inputs / "out").iterdir())


@pytest.mark.parametrize("bad", ["folder", "loop", "no_suffix", "txt"])
def test_unusable_output_names(bad, inputs, capsys):
    out = {
        "folder": inputs / "out",
        "loop": inputs / "loop.tif",
        "no_suffix": inputs / "out" / "result",
        "txt": inputs / "out" / "result.txt",
    }[bad]
    if bad == "loop":
        (inputs / "loop.tif").symlink_to(inputs / "loop2.tif")
        (inputs / "loop2.tif").symlink_to(inputs / "loop.tif")
    code, err = _run(["stack", inputs / "stack.tif", "-o", out, "--device", "cpu"], capsys)
    assert code == 2
    one_line_error(err)


def test_long_output_name_is_written(inputs, capsys):
    """A 244-character name: the temporary name must not be longer than the output's."""
    out = inputs / "out" / ("f" * 240 + ".tif")
    code, err = _run(["stack", inputs / "stack.tif", "-o", out, "--device", "cpu"], capsys)
    assert code == 0, err
    assert out.exists() and [p.name for p in (inputs / "out").iterdir()] == [out.name]


@pytest.mark.parametrize("existing", ["stack.tif", "pair_mask.png", "pair_A.tif", ".hidden"])
def test_demo_never_replaces_user_files(existing, tmp_path, capsys):
    samples = tmp_path / "samples"
    samples.mkdir()
    (samples / existing).write_bytes(b"the user's own file")
    code, err = _run(
        ["demo", "--sample-dir", samples, "--out", tmp_path / "demo_out", "--device", "cpu"], capsys
    )
    assert code == 2
    one_line_error(err)
    assert (samples / existing).read_bytes() == b"the user's own file"


def test_demo_refuses_writing_over_its_samples(tmp_path, capsys):
    from acnn_fusion.synthetic import write_sample_data

    samples = tmp_path / "samples"
    write_sample_data(samples)
    (samples / "fused.tif").symlink_to(samples / "pair_A.tif")
    before = digest(samples / "pair_A.tif")
    code, err = _run(["demo", "--sample-dir", samples, "--out", samples, "--device", "cpu"], capsys)
    assert code == 2 and digest(samples / "pair_A.tif") == before
    one_line_error(err)


@pytest.mark.parametrize("target", ["image", "image_json", "ckpt"])
def test_train_out_is_never_a_training_image(target, tmp_path, stack8):
    from acnn_fusion.training.train import TrainConfig, train

    images = tmp_path / "images"
    images.mkdir()
    for i in range(2):
        tifffile.imwrite(images / f"img{i}.tif", stack8[i])
    before = digest(images / "img0.tif")
    if target == "image":
        out = images / "img0.tif"
        pattern = "must end in .pt"
    elif target == "image_json":  # weights.pt's metadata file would be img0.json: not an image
        (images / "img0.json").write_text("{}")
        out = images / "img0.pt"
        pattern = ""
    else:
        out = tmp_path / "w.pt"
        (tmp_path / "w.pt.ckpt").symlink_to(images / "img0.tif")
        pattern = "training image"
    config = TrainConfig(images=[str(images)], epochs=0, patches_per_image=8)
    with deadline():
        if pattern:
            with pytest.raises(ValueError, match=pattern):
                train(config, out, log=lambda m: None)
        else:
            train(config, out, log=lambda m: None)
    assert digest(images / "img0.tif") == before


def test_train_cli_out_image_refused(tmp_path, stack8, capsys):
    images = tmp_path / "images"
    images.mkdir()
    for i in range(2):
        tifffile.imwrite(images / f"img{i}.tif", stack8[i])
    before = digest(images / "img1.tif")
    code, err = _run(["train", "--images", images, "--out", images / "img1.tif", "--epochs", "0"], capsys)
    assert code == 2 and digest(images / "img1.tif") == before
    one_line_error(err)
    assert np.array_equal(tifffile.imread(images / "img1.tif"), stack8[1])
