"""Reading and writing images; every write is atomic (temporary file, then rename)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import tifffile

IMAGE_SUFFIXES = {".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp"}
TIFF_SUFFIXES = {".tif", ".tiff"}


def read_image(path: str | Path) -> np.ndarray:
    """Read a TIFF, PNG or JPEG into a numpy array; clear errors for missing/broken files."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise ValueError(f"{path}: unsupported file type {path.suffix!r} (use TIFF, PNG or JPEG)")
    try:
        if path.suffix.lower() in TIFF_SUFFIXES:
            return tifffile.imread(path)
        import imageio.v3 as iio

        return np.asarray(iio.imread(path))
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a bad file to the user
        raise ValueError(f"{path}: cannot read image ({type(exc).__name__}: {exc})") from exc


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_image(path: str | Path, image: np.ndarray, *, metadata: dict | None = None) -> Path:
    """Write TIFF (any dtype) or PNG/JPEG (uint8/uint16) atomically; return the path."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise ValueError(f"{path}: unsupported output type {path.suffix!r} (use .tif or .png)")
    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        if suffix in TIFF_SUFFIXES:
            photometric = "rgb" if image.ndim == 3 and image.shape[-1] in (3, 4) else "minisblack"
            tifffile.imwrite(
                tmp_name, image, photometric=photometric, metadata=metadata, compression="zlib"
            )
        else:
            import imageio.v3 as iio

            if image.dtype not in (np.uint8, np.uint16):
                raise ValueError(f"{path}: PNG/JPEG need uint8 or uint16 data, got {image.dtype}")
            iio.imwrite(tmp_name, image, extension=suffix)
        os.chmod(tmp_name, 0o666 & ~_current_umask())  # mkstemp makes 0600 files
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path
