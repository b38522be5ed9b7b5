"""Reading and writing single images; every write is atomic (temporary file, then rename)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import tifffile

from acnn_fusion._version import __version__
from acnn_fusion.io.metadata import imagej_unit

IMAGE_SUFFIXES = {".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp"}
TIFF_SUFFIXES = {".tif", ".tiff"}


def _memory_bytes() -> int | None:
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, OSError, ValueError):
        return None


def check_declared_size(path: Path, limit: int | None = None) -> None:
    """Refuse a TIFF whose header declares more pixel data than it can hold or memory allows.

    Reads only the header: an uncompressed TIFF declaring more bytes than the file holds, or
    any TIFF declaring more than ``limit`` (default: half this machine's memory), fails here
    with a ValueError instead of being allocated. Files that tifffile cannot parse are left to the
    reader (which reports them).
    """
    if path.suffix.lower() not in TIFF_SUFFIXES or not path.is_file():
        return
    if limit is None:
        memory = _memory_bytes()
        if memory is None:
            return
        limit = memory // 2
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            declared = int(np.prod(series.shape, dtype=np.float64)) * np.dtype(series.dtype).itemsize
            uncompressed = tif.pages[0].compression == 1
    except Exception:
        return
    size = path.stat().st_size
    if uncompressed and declared > size:
        raise ValueError(
            f"{path.name}: the TIFF header declares {series.shape} {np.dtype(series.dtype)} pixels "
            f"({declared:,} bytes, uncompressed) but the file holds only {size:,} bytes; "
            "it is truncated or corrupt"
        )
    if declared > limit:
        raise ValueError(
            f"{path.name}: the TIFF header declares {series.shape} {np.dtype(series.dtype)} pixels "
            f"({declared / 2**30:.1f} GiB), more than the {limit / 2**30:.1f} GiB allowed; "
            "the file is corrupt or too large to fuse in memory"
        )


def read_image(path: str | Path) -> np.ndarray:
    """Read a TIFF, PNG or JPEG into a numpy array; clear errors for missing/broken files."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise ValueError(f"{path}: unsupported file type {path.suffix!r} (use TIFF, PNG or JPEG)")
    check_declared_size(path)
    try:
        if path.suffix.lower() in TIFF_SUFFIXES:
            image = tifffile.imread(path)
        else:
            import imageio.v3 as iio

            image = np.asarray(iio.imread(path))
    except Exception as exc:
        raise ValueError(f"{path}: cannot read image ({type(exc).__name__}: {exc})") from exc
    if image.ndim < 2 or image.size == 0:
        raise ValueError(f"{path}: cannot read image (the file holds no image data)")
    return image


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_image(
    path: str | Path,
    image: np.ndarray,
    *,
    metadata: dict | None = None,
    pixel_size: tuple[float, float] | None = None,
    unit: str | None = None,
) -> Path:
    """Write TIFF (any dtype) or PNG/JPEG (uint8/uint16) atomically; return the path.

    ``pixel_size`` (y, x) in ``unit`` is stored as ImageJ-readable TIFF resolution; TIFFs
    record the package version in their Software tag.
    """
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
            options: dict = {
                "photometric": photometric,
                "metadata": metadata,
                "compression": "zlib",
                "software": f"napari-acnn-fusion {__version__}",  # which release made this file
            }
            if pixel_size is not None:
                options["resolution"] = (1.0 / pixel_size[1], 1.0 / pixel_size[0])
                if image.dtype in (np.uint8, np.uint16, np.float32):
                    options["imagej"] = True
                    options["metadata"] = {**(metadata or {}), "unit": imagej_unit(unit)}
            tifffile.imwrite(tmp_name, image, **options)
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
