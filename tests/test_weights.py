"""Shipped weights load and verify; altered or foreign files are refused clearly."""

import json
import shutil

import pytest
import torch

from acnn_fusion.core.weights import WeightsError, default_weights_path, load_model, read_metadata


def test_shipped_weights_load_and_carry_metadata():
    model = load_model()
    meta = read_metadata()
    assert meta["parameters"] == sum(p.numel() for p in model.parameters())
    assert meta["training"]["val_accuracy"] > 0.95
    assert default_weights_path().stat().st_size < 5_000_000


@pytest.fixture
def weights_copy(tmp_path):
    src = default_weights_path()
    dst = tmp_path / "w.pt"
    shutil.copy(src, dst)
    shutil.copy(src.with_suffix(".json"), dst.with_suffix(".json"))
    return dst


def test_altered_weights_are_refused(weights_copy):
    data = bytearray(weights_copy.read_bytes())
    data[-100] ^= 0xFF
    weights_copy.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="sha256"):
        load_model(weights_copy)


def test_file_that_is_not_a_state_dict_is_refused(weights_copy):
    torch.save([1, 2, 3], weights_copy)
    meta = json.loads(weights_copy.with_suffix(".json").read_text())
    from acnn_fusion.core.weights import sha256_of

    meta["sha256"] = sha256_of(weights_copy)
    weights_copy.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(WeightsError, match="not a state dict"):
        load_model(weights_copy)


def test_missing_weights_file(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        load_model(tmp_path / "nothing.pt")
