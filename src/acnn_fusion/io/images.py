"""Reading and writing single images; every write is atomic (temporary file, then rename).

Every path read is first checked by :func:`check_regular_file` (a FIFO, device or symlink
loop is refused before anything opens it, so nothing blocks). Temporary files are named
``.acnn-tmp-<tag>-<random>.<ext>``: short whatever the output's name, and recognisable, so
that a batch run deletes only temporaries that runs it recorded created (:func:`temporaries_tagged`).
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import tifffile

from acnn_fusion._version import __version__
from acnn_fusion.io.metadata import imagej_unit

IMAGE_SUFFIXES = {".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp"}
TIFF_SUFFIXES = {".tif", ".tiff"}
#: formats that do not store pixels exactly: never used for fused images or maps
LOSSY_SUFFIXES = {".jpg", ".jpeg"}
#: every temporary file this package writes starts with this
TEMP_PREFIX = ".acnn-tmp-"
_TEMP_TAG: contextvars.ContextVar[str] = contextvars.ContextVar("acnn_temp_tag", default="x")
#: the largest ratio of decoded to stored bytes a codec can reach (constant data), with margin
_MAX_RATIO = {5: 4200, 8: 1100, 32946: 1100, 32773: 130}  # LZW, Deflate (Adobe, old), PackBits
_PHOTOMETRIC_PALETTE, _PHOTOMETRIC_SEPARATED = 3, 5


def temporary_path(final: Path) -> Path:
    """A fresh temporary name beside ``final``: ``.acnn-tmp-<tag>-<12 hex>-<stem, cut to 40>.<ext>``.

    At most about 80 characters whatever the length of ``final``'s name.
    """
    hint = final.stem[:40]
    suffix = final.suffix.lower()[:16]
    return final.parent / f"{TEMP_PREFIX}{_TEMP_TAG.get()}-{secrets.token_hex(6)}-{hint}{suffix}"


@contextlib.contextmanager
def temporaries_tagged(tag: str) -> Iterator[None]:
    """Within this block, temporary files carry ``tag`` (a batch run's id) in their names."""
    if not tag.isalnum():
        raise ValueError(f"a temporary tag must be letters and digits, got {tag!r}")
    token = _TEMP_TAG.set(tag)
    try:
        yield
    finally:
        _TEMP_TAG.reset(token)


def temporaries_of(folder: Path, tag: str) -> list[Path]:
    """The temporary files in ``folder`` whose names carry ``tag`` (regular files only)."""
    prefix = f"{TEMP_PREFIX}{tag}-"
    found = []
    for path in folder.iterdir():
        rest = path.name[len(prefix) :]
        if (
            path.name.startswith(prefix)
            and len(rest) >= 12
            and all(c in "0123456789abcdef" for c in rest[:12])
        ):
            with contextlib.suppress(OSError):
                if stat.S_ISREG(path.lstat().st_mode):
                    found.append(path)
    return found


def check_regular_file(path: str | Path) -> os.stat_result:
    """``os.stat`` of ``path``; FileNotFoundError if absent, ValueError unless a regular file.

    Only metadata is read, so a FIFO or device named ``*.tif`` is refused before anything
    opens (and blocks on) it; a symlink loop gets its own message.
    """
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise FileNotFoundError(f"no such file: {path}") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ValueError(f"{path}: symbolic link loop; it leads to no file") from None
        raise ValueError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if stat.S_ISDIR(info.st_mode):
        raise ValueError(f"{path}: is a folder, not an image file")
    if not stat.S_ISREG(info.st_mode):
        kind = "a FIFO (named pipe)" if stat.S_ISFIFO(info.st_mode) else "not a regular file"
        if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode):
            kind = "a device"
        elif stat.S_ISSOCK(info.st_mode):
            kind = "a socket"
        raise ValueError(f"{path}: is {kind}, not an image file; refusing to open it")
    return info


def _memory_bytes() -> int | None:
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, OSError, ValueError):
        return None


def _declared(path: Path) -> dict | None:
    """What a TIFF's header says about its first series and page, or None if it cannot be parsed."""
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            page = tif.pages.first
            return {
                "shape": tuple(series.shape),
                "dtype": np.dtype(series.dtype),
                "bits": int(page.bitspersample),
                "compression": int(page.compression),
                "page_values": int(np.prod(page.shape, dtype=np.float64)),
                "page_itemsize": np.dtype(page.dtype).itemsize if page.dtype is not None else 1,
                "offsets": tuple(int(o) for o in page.dataoffsets),
                "counts": tuple(int(c) for c in page.databytecounts),
            }
    except Exception:
        return None


def check_declared_size(path: Path, limit: int | None = None) -> None:
    """Refuse a TIFF whose header declares more pixel data than it can hold or memory allows.

    Reads only the header: a TIFF whose pixel data lies (partly) past the end of the file,
    that holds no pixel data at all, that declares more pixels than its compressed data can
    possibly decode to, or that declares more than ``limit`` bytes (default: half this
    machine's memory) fails here with a ValueError instead of being allocated. Packed pixels
    (1-bit, 12-bit) are counted at their stored size. Files that tifffile cannot parse are
    left to the reader (which reports them).
    """
    path = Path(path)
    if path.suffix.lower() not in TIFF_SUFFIXES:
        return
    size = check_regular_file(path).st_size
    if limit is None:
        memory = _memory_bytes()
        limit = memory // 2 if memory is not None else None
    header = _declared(path)
    if header is None:
        return
    shape, dtype = header["shape"], header["dtype"]
    n_values = float(np.prod(shape, dtype=np.float64))
    decoded = n_values * dtype.itemsize
    described = f"{shape} {dtype} pixels"
    offsets, counts = header["offsets"], header["counts"]
    if header["page_values"] > 0 and (not counts or not any(counts) or not any(offsets)):
        raise ValueError(f"{path.name}: the TIFF declares {described} but holds no pixel data; it is corrupt")
    if header["compression"] == 1:
        stored = n_values * header["bits"] / 8  # packed bits: 1-bit, 12-bit …
        if stored > size:
            raise ValueError(
                f"{path.name}: the TIFF header declares {described} ({stored:,.0f} bytes, uncompressed) "
                f"but the file holds only {size:,} bytes; it is truncated or corrupt"
            )
    elif any(o + c > size for o, c in zip(offsets, counts, strict=False)):
        raise ValueError(f"{path.name}: the TIFF's pixel data runs past the end of the file; it is truncated")
    ratio = _MAX_RATIO.get(header["compression"])
    page_bytes = header["page_values"] * header["page_itemsize"]
    if ratio is not None and page_bytes > ratio * sum(counts) + 65536:
        raise ValueError(
            f"{path.name}: the TIFF declares {described} but its first page holds only {sum(counts):,} "
            f"compressed bytes, far less than any image of that size compresses to; it is corrupt"
        )
    if limit is not None and decoded > limit:
        raise ValueError(
            f"{path.name}: the TIFF header declares {described} ({decoded / 2**30:.1f} GiB), more than "
            f"the {limit / 2**30:.1f} GiB allowed; the file is corrupt or too large to fuse in memory"
        )


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _palette_to_rgb(indices: np.ndarray, colormap: np.ndarray) -> np.ndarray:
    """Indexed colour → RGB through the TIFF colormap (uint8 when the map holds 8-bit values)."""
    colormap = np.asarray(colormap)
    if colormap.ndim != 2 or colormap.shape[0] != 3 or indices.dtype.kind not in "ub":
        raise ValueError("its palette (colormap) is malformed")
    if int(indices.max(initial=0)) >= colormap.shape[1]:
        raise ValueError("palette indices exceed its colormap")
    if colormap.max() <= 255:
        colormap = colormap.astype(np.uint8)
    elif np.all(colormap % 257 == 0):
        colormap = (colormap // 257).astype(np.uint8)
    return np.moveaxis(colormap[:, indices.astype(np.intp)], 0, -1)


def _cmyk_to_rgb(data: np.ndarray) -> np.ndarray:
    """CMYK samples (last axis 4) → RGB, for uint8 and uint16 ink values."""
    if data.dtype not in (np.uint8, np.uint16) or data.shape[-1] != 4:
        raise ValueError(
            f"CMYK with {data.shape[-1]} {data.dtype} samples is not supported; convert it to RGB"
        )
    full = float(np.iinfo(data.dtype).max)
    ink = data.astype(np.float64)
    white = (full - ink[..., 3:4]) / full
    return np.round((full - ink[..., :3]) * white).astype(data.dtype)


def _read_tiff(path: Path) -> np.ndarray:
    """First series of a TIFF as pixels: palettes and CMYK become RGB, planar RGB becomes (Y, X, S)."""
    with tifffile.TiffFile(path) as tif:
        if not tif.series:
            raise ValueError("the TIFF holds no image series")
        series, page = tif.series[0], tif.pages.first
        data = series.asarray()
        axes = series.axes.upper()
        photometric = int(page.photometric)
        if photometric == _PHOTOMETRIC_PALETTE:
            data = _palette_to_rgb(data, page.colormap)
        elif photometric == _PHOTOMETRIC_SEPARATED:
            inkset = page.tags.valueof(332, 1)  # InkSet: 1 = CMYK
            if inkset != 1:
                raise ValueError("separated (ink) colour other than CMYK is not supported")
            if axes.endswith("SYX"):
                data = np.moveaxis(data, -3, -1)
            data = _cmyk_to_rgb(data)
        elif axes.endswith("SYX") and data.shape[-3] in (3, 4):  # planar RGB(A): samples last
            data = np.moveaxis(data, -3, -1)
    if data.dtype == bool:  # 1-bit: black and white
        data = data.astype(np.uint8) * np.uint8(255)
    return data


def read_image(path: str | Path) -> np.ndarray:
    """Read a TIFF, PNG or JPEG into a numpy array; one-line errors for missing/broken files.

    Palette (indexed) and CMYK TIFFs come back as RGB, planar RGB as (Y, X, 3), 1-bit as
    0/255 uint8.
    """
    path = Path(path)
    info = check_regular_file(path)
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise ValueError(f"{path}: unsupported file type {path.suffix!r} (use TIFF, PNG or JPEG)")
    if info.st_size == 0:
        raise ValueError(f"{path}: the file is empty (0 bytes)")
    check_declared_size(path)
    try:
        if path.suffix.lower() in TIFF_SUFFIXES:
            image = _read_tiff(path)
        else:
            import imageio.v3 as iio

            image = np.asarray(iio.imread(path))
    except MemoryError:
        raise ValueError(f"{path}: not enough memory to decode this image") from None
    except Exception as exc:
        raise ValueError(f"{path}: cannot read image ({_one_line(exc)})") from None
    if image.ndim < 2 or image.size == 0:
        raise ValueError(f"{path}: cannot read image (the file holds no image data)")
    return image


#: the axis order ImageJ hyperstacks need
_IMAGEJ_ORDER = "TZCYXS"


def _canonical(image: np.ndarray, axes: str) -> tuple[np.ndarray, str]:
    """Samples that are not RGB(A) become channels (C); axes put in ImageJ's order when they allow."""
    axes = axes.upper()
    if len(axes) != image.ndim or len(set(axes)) != len(axes):
        raise ValueError(f"axes {axes!r} do not fit an image of shape {image.shape}")
    if "S" in axes and not (axes.endswith("S") and image.shape[-1] in (3, 4)):
        axes = axes.replace("S", "C") if "C" not in axes else axes
    if set(axes) <= set(_IMAGEJ_ORDER):
        order = sorted(range(len(axes)), key=lambda i: _IMAGEJ_ORDER.index(axes[i]))
        image = np.transpose(image, order)
        axes = "".join(axes[i] for i in order)
    return image, axes


def write_image(
    path: str | Path,
    image: np.ndarray,
    *,
    metadata: dict | None = None,
    pixel_size: tuple[float, float] | None = None,
    unit: str | None = None,
    axes: str | None = None,
) -> Path:
    """Write TIFF (any dtype) or PNG/JPEG (uint8/uint16) atomically; return the path.

    ``pixel_size`` (y, x) in ``unit`` is stored as ImageJ-readable TIFF resolution; TIFFs
    record the package version in their Software tag. ``axes`` (tifffile letters, e.g.
    ``"YXC"`` or ``"TCYX"``) labels the dimensions of a TIFF: it is written as an ImageJ
    hyperstack (axes in ImageJ's order) where ImageJ can hold the data, else with tifffile's
    axes metadata; without it an array is grey (Y, X), RGB(A) (Y, X, 3|4) or pages.
    The temporary file has a short name (:func:`temporary_path`) whatever the output's name.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise ValueError(f"{path}: unsupported output type {path.suffix!r} (use .tif or .png)")
    if pixel_size is not None and not all(np.isfinite(s) and s > 0 for s in pixel_size):
        raise ValueError(f"{path}: pixel size {tuple(pixel_size)} must be two positive finite numbers")
    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))  # the umask applies
    try:
        if suffix in TIFF_SUFFIXES:
            _write_tiff(tmp, image, metadata, pixel_size, unit, axes)
        else:
            import imageio.v3 as iio

            if image.dtype not in (np.uint8, np.uint16):
                raise ValueError(f"{path}: PNG/JPEG need uint8 or uint16 data, got {image.dtype}")
            iio.imwrite(tmp, image, extension=suffix)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _write_tiff(
    tmp: Path,
    image: np.ndarray,
    metadata: dict | None,
    pixel_size: tuple[float, float] | None,
    unit: str | None,
    axes: str | None,
) -> None:
    options: dict = {
        "compression": "zlib",
        "software": f"napari-acnn-fusion {__version__}",  # which release made this file
    }
    if pixel_size is not None:
        options["resolution"] = (1.0 / pixel_size[1], 1.0 / pixel_size[0])
    imagej_dtype = image.dtype in (np.uint8, np.uint16, np.float32)
    if axes is not None and image.ndim > 2:
        data, axes = _canonical(image, axes)
        rgb = axes.endswith("S")
        if imagej_dtype and set(axes) <= set(_IMAGEJ_ORDER) and (not rgb or data.dtype == np.uint8):
            meta = {**(metadata or {}), "axes": axes}
            if pixel_size is not None:
                meta["unit"] = imagej_unit(unit)
            photometric = "rgb" if rgb else "minisblack"
            tifffile.imwrite(tmp, data, imagej=True, photometric=photometric, metadata=meta, **options)
            return
        photometric = "rgb" if rgb else "minisblack"
        tifffile.imwrite(
            tmp, data, photometric=photometric, metadata={**(metadata or {}), "axes": axes}, **options
        )
        return
    photometric = "rgb" if image.ndim == 3 and image.shape[-1] in (3, 4) else "minisblack"
    options["metadata"] = metadata
    if pixel_size is not None and imagej_dtype and image.ndim == 2:
        options["imagej"] = True
        options["metadata"] = {**(metadata or {}), "unit": imagej_unit(unit)}
    tifffile.imwrite(tmp, image, photometric=photometric, **options)
