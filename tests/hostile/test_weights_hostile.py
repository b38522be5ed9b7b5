"""Crafted weights and checkpoints: refused with one line naming the file, never torch's advice."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from acnn_fusion.cli import main
from acnn_fusion.core.weights import WeightsError, default_weights_path, load_model, sha256_of

from .conftest import deadline, expect_error, one_line_error


class Payload:
    """Unpickling this would run code: torch's weights_only loader must refuse it."""

    def __reduce__(self):
        return (print, ("code ran from a weights file",))


def _with_metadata(path: Path, meta: object | None = None) -> Path:
    shipped = json.loads(default_weights_path().with_suffix(".json").read_text())
    if meta is None:
        meta = {**shipped, "sha256": sha256_of(path)}
    path.with_suffix(".json").write_text(json.dumps(meta))
    return path


def _state() -> dict:
    return torch.load(default_weights_path(), weights_only=True)


def make(kind: str, folder: Path) -> tuple[Path, str]:
    path = folder / f"{kind}.pt"
    if kind == "pickle_payload":
        path.write_bytes(pickle.dumps({"w": Payload()}))
        return _with_metadata(path), "not a plain state dict"
    if kind == "torch_payload":
        torch.save({"w": Payload()}, path)
        return _with_metadata(path), "not a plain state dict"
    if kind == "not_torch":
        path.write_bytes(b"hello")
        return _with_metadata(path), "not a plain state dict"
    if kind == "empty_file":
        path.write_bytes(b"")
        return _with_metadata(path), "not a plain state dict"
    if kind == "list_of_tensors":
        torch.save([torch.zeros(3)], path)
        return _with_metadata(path), "not a state dict"
    if kind == "nan_weights":
        torch.save({k: torch.full_like(v, float("nan")) for k, v in _state().items()}, path)
        return _with_metadata(path), "NaN"
    if kind == "inf_weight":
        state = _state()
        first = next(iter(state))
        state[first] = state[first].clone()
        state[first].view(-1)[0] = float("inf")
        torch.save(state, path)
        return _with_metadata(path), "infinite"
    if kind == "zero_weights":
        torch.save({k: torch.zeros_like(v) for k, v in _state().items()}, path)
        return _with_metadata(path), "zero"
    if kind == "int_weights":
        torch.save({k: v.to(torch.int32) for k, v in _state().items()}, path)
        return _with_metadata(path), "non-float"
    if kind == "wrong_shapes":
        torch.save({k: v[..., :1] if v.ndim else v for k, v in _state().items()}, path)
        return _with_metadata(path), "do not fit"
    if kind == "missing_keys":
        state = _state()
        state.pop(next(iter(state)))
        torch.save(state, path)
        return _with_metadata(path), "do not fit"
    shutil.copy(default_weights_path(), path)
    metas = {
        "json_list": ([], "JSON object"),
        "json_null": (None, "JSON object"),
        "json_number": (3, "JSON object"),
        "json_no_sha": ({"widths": {}}, "sha256"),
        "json_bad_widths": (None, "do not fit"),
        "json_sha_mismatch": (None, "does not match"),
    }
    meta, pattern = metas[kind]
    if kind == "json_bad_widths":
        shipped = json.loads(default_weights_path().with_suffix(".json").read_text())
        meta = {**shipped, "sha256": sha256_of(path), "widths": {"nonsense": 1}}
    elif kind == "json_sha_mismatch":
        shipped = json.loads(default_weights_path().with_suffix(".json").read_text())
        meta = {**shipped, "sha256": "0" * 64}
    if kind in ("json_null",):
        path.with_suffix(".json").write_text("null")
    else:
        path.with_suffix(".json").write_text(json.dumps(meta))
    return path, pattern


KINDS = [
    "pickle_payload",
    "torch_payload",
    "not_torch",
    "empty_file",
    "list_of_tensors",
    "nan_weights",
    "inf_weight",
    "zero_weights",
    "int_weights",
    "wrong_shapes",
    "missing_keys",
    "json_list",
    "json_null",
    "json_number",
    "json_no_sha",
    "json_bad_widths",
    "json_sha_mismatch",
]


@pytest.mark.parametrize("kind", KINDS)
def test_load_model_refuses(kind, tmp_path, capfd):
    path, pattern = make(kind, tmp_path)
    with deadline(), pytest.raises(WeightsError) as info:
        load_model(path)
    expect_error(info.value, pattern)
    assert "weights_only" not in str(info.value)
    assert "code ran" not in capfd.readouterr().out


@pytest.mark.parametrize("command", ["info", "fuse"])
@pytest.mark.parametrize("kind", KINDS)
def test_cli_refuses_weights_in_one_line(kind, command, tmp_path, capfd, pair32):
    import tifffile

    path, _ = make(kind, tmp_path)
    if command == "info":
        argv = ["info", "--weights", str(path)]
    else:
        for name, image in zip("ab", pair32, strict=True):
            tifffile.imwrite(tmp_path / f"{name}.tif", image)
        argv = [
            "fuse",
            str(tmp_path / "a.tif"),
            str(tmp_path / "b.tif"),
            "-o",
            str(tmp_path / "f.tif"),
            "--weights",
            str(path),
            "--device",
            "cpu",
        ]
    with deadline():
        code = main(argv)
    captured = capfd.readouterr()
    assert code == 2 and path.stem in captured.err
    one_line_error(captured.err)
    assert "code ran" not in captured.out
    assert not (tmp_path / "f.tif").exists()


CHECKPOINTS = {
    "pickle_payload": lambda p: p.write_bytes(pickle.dumps({"model": Payload()})),
    "torch_payload": lambda p: torch.save({"model": Payload()}, p),
    "garbage": lambda p: p.write_bytes(b"\x00garbage"),
    "empty": lambda p: p.write_bytes(b""),
    "a_list": lambda p: torch.save([1, 2], p),
    "no_model": lambda p: torch.save({"history": "[]"}, p),
    "wrong_model": lambda p: torch.save(
        {"model": {"x": torch.zeros(1)}, "optimizer": {}, "scheduler": {}, "history": "[]"}, p
    ),
    "bad_history": lambda p: _checkpoint_with_history(p, "not json"),
    "history_not_list": lambda p: _checkpoint_with_history(p, "{}"),
}


def _checkpoint_with_history(path: Path, history: str) -> None:
    from acnn_fusion.core.model import ACNN, ACNNConfig

    model = ACNN(ACNNConfig())
    optimizer = torch.optim.Adam(model.parameters())
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "history": history,
        },
        path,
    )


@pytest.mark.parametrize("kind", sorted(CHECKPOINTS))
def test_crafted_checkpoint_on_resume(kind, tmp_path, stack8, capfd):
    import tifffile

    images = tmp_path / "images"
    images.mkdir()
    for i in range(2):
        tifffile.imwrite(
            images / f"img{i}.tif",
            (stack8[i] // 256).astype(np.uint8) if stack8.dtype != np.uint8 else stack8[i],
        )
    out = tmp_path / "w.pt"
    CHECKPOINTS[kind](tmp_path / "w.pt.ckpt")
    with deadline():
        code = main(
            [
                "train",
                "--images",
                str(images),
                "--out",
                str(out),
                "--epochs",
                "1",
                "--patches-per-image",
                "8",
                "--batch-size",
                "4",
            ]
        )
    captured = capfd.readouterr()
    assert code == 2 and "w.pt.ckpt" in captured.err and "--restart" in captured.err
    one_line_error(captured.err)
    assert "code ran" not in captured.out and not out.exists()
