"""Saving and loading model weights, with a sidecar JSON that records their sha256.

``<name>.pt`` is a plain state dict (loaded with ``weights_only=True``); ``<name>.json``
holds the widths, the sha256 of the ``.pt`` file, the model version and how it was trained.
An ONNX export of the same weights (``<name>.onnx``, :mod:`acnn_fusion.core.onnx_runtime`)
is recorded under ``"onnx"`` in the same JSON: its file name, its sha256 and the sha256 of
the ``.pt`` it was exported from, so a retrained ``.pt`` never runs with a stale export.
Importing this module does not import torch.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from acnn_fusion.core.model import ACNN


class WeightsError(ValueError):
    """The weights file is missing, altered or not an ACNN state dict."""


def default_weights_path() -> Path:
    """The weights shipped inside the package."""
    return Path(str(resources.files("acnn_fusion") / "weights" / "acnn_default.pt"))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def save_weights(
    model: ACNN, path: str | Path, *, training: dict | None = None, model_version: str = "custom"
) -> Path:
    """Write ``path`` (state dict, float32) and its sidecar ``.json`` atomically.

    ``model_version`` labels the file; a newly trained model is not the shipped one (``acnn-4``).

    The sidecar has no ``"onnx"`` entry: an export of earlier weights no longer applies.
    """
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().float().contiguous().cpu() for k, v in model.state_dict().items()}
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    meta = {
        "model_version": model_version,
        "sha256": sha256_of(path),
        "widths": model.config.to_dict(),
        "parameters": sum(v.numel() for v in state.values()),
        "training": training or {},
    }
    _atomic_write_bytes(path.with_suffix(".json"), json.dumps(meta, indent=2).encode())
    return path


def read_metadata(path: str | Path | None = None) -> dict:
    """The sidecar metadata of a weights file (the shipped one by default)."""
    path = Path(path) if path is not None else default_weights_path()
    meta_path = path.with_suffix(".json")
    if not meta_path.exists():
        raise WeightsError(f"{path}: metadata file {meta_path.name} is missing")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WeightsError(f"{meta_path}: not valid JSON ({exc})") from None
    except OSError as exc:
        raise WeightsError(f"{meta_path}: cannot be read ({exc.strerror or exc})") from None
    if not isinstance(meta, dict):
        raise WeightsError(
            f"{meta_path}: not weights metadata (a JSON object is expected, got {type(meta).__name__})"
        )
    if not isinstance(meta.get("sha256"), str) or not isinstance(meta.get("widths"), dict):
        raise WeightsError(f"{meta_path}: not weights metadata (no sha256 text or widths object)")
    return meta


def load_model(path: str | Path | None = None) -> ACNN:
    """Load and verify a weights file (default: the shipped model) into an eval-mode ACNN."""
    resolved = Path(path).resolve() if path is not None else default_weights_path()
    return _load_model_cached(str(resolved), resolved.stat().st_mtime_ns if resolved.exists() else 0)


@lru_cache(maxsize=4)
def _load_model_cached(path_str: str, _mtime: int) -> ACNN:
    import torch

    from acnn_fusion.core.model import ACNN, ACNNConfig

    path = Path(path_str)
    if not path.exists():
        raise WeightsError(f"weights file not found: {path}")
    meta = read_metadata(path)
    actual = sha256_of(path)
    if actual != meta.get("sha256"):
        raise WeightsError(
            f"{path}: sha256 {actual[:12]}… does not match the recorded {str(meta.get('sha256'))[:12]}…; "
            "the file is damaged or was replaced"
        )
    try:
        with warnings.catch_warnings():  # torch warns about protocols of crafted files
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch's text suggests weights_only=False: never repeat that advice
        raise WeightsError(
            f"{path}: not a plain state dict of tensors ({type(exc).__name__}); refusing to load it"
        ) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path}: not a state dict of tensors")
    for name, tensor in state.items():
        if not tensor.is_floating_point() or not bool(torch.isfinite(tensor).all()):
            raise WeightsError(f"{path}: weight {name} holds NaN, infinite or non-float values")
    if not any(bool(t.any()) for t in state.values()):
        raise WeightsError(f"{path}: every weight is zero; this is not a trained model")
    try:
        model = ACNN(ACNNConfig(**meta["widths"]))
        model.load_state_dict(state)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        raise WeightsError(f"{path}: weights do not fit the ACNN ({first})") from None
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def onnx_export(weights: str | Path | None = None) -> tuple[Path, str] | None:
    """The ONNX export of ``weights`` (default: the shipped model) and its recorded sha256.

    None when the sidecar records none, the file is missing, or it was exported from other
    weights than the ``.pt`` the sidecar describes. Reads only the JSON (cheap); the file's
    checksum is verified when it is loaded (:func:`read_onnx_export`).
    """
    path = Path(weights) if weights is not None else default_weights_path()
    try:
        meta = read_metadata(path)
    except WeightsError:
        return None
    entry = meta.get("onnx")
    if not isinstance(entry, dict) or entry.get("weights_sha256") != meta["sha256"]:
        return None
    name, digest = entry.get("file"), entry.get("sha256")
    if not isinstance(name, str) or not isinstance(digest, str) or Path(name).name != name:
        return None
    onnx_path = path.with_name(name)
    return (onnx_path, digest) if onnx_path.is_file() else None


def read_onnx_export(weights: str | Path | None = None) -> tuple[Path, bytes]:
    """The verified bytes of the ONNX export of ``weights``; WeightsError if none or altered."""
    found = onnx_export(weights)
    if found is None:
        raise WeightsError(f"{weights or default_weights_path()}: no ONNX export is recorded in its metadata")
    onnx_path, digest = found
    data = onnx_path.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != digest:
        raise WeightsError(
            f"{onnx_path}: sha256 {actual[:12]}… does not match the recorded {digest[:12]}…; "
            "the file is damaged or was replaced"
        )
    return onnx_path, data


def record_onnx_export(weights: str | Path, onnx_path: str | Path, details: dict[str, Any]) -> None:
    """Record ``onnx_path`` (beside ``weights``) as the ONNX export of ``weights`` in its sidecar."""
    path, onnx_path = Path(weights), Path(onnx_path)
    if onnx_path.parent.resolve() != path.parent.resolve():
        raise ValueError(f"the ONNX export must lie beside its weights ({path.parent})")
    meta = read_metadata(path)
    meta["onnx"] = {
        "file": onnx_path.name,
        "sha256": sha256_of(onnx_path),
        "weights_sha256": meta["sha256"],
        **details,
    }
    _atomic_write_bytes(path.with_suffix(".json"), json.dumps(meta, indent=2).encode())
