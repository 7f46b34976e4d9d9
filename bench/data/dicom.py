"""Decoding one DICOM radiograph to an 8-bit greyscale array (SPEC 1).

pydicom reads the file (its Pillow plugin decodes the JPEG Baseline pixel data of real RSNA
files); the modality and VOI LUTs are applied when present, MONOCHROME1 is inverted so that
bone is bright, and anything wider than 8 bits is scaled linearly from its own min/max to
[0, 255]. Every failure is a :class:`DataError` naming the file.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image
from pydicom.pixels import apply_modality_lut, apply_voi_lut

from bench.errors import DataError, first_line


@dataclass
class Decoded:
    """An 8-bit image plus the original Rows/Columns the boxes refer to."""

    image: np.ndarray  # uint8 (rows, cols)
    rows: int
    cols: int


class _Collect(logging.Handler):
    """Collects pydicom's log messages (it logs, rather than raises, on a truncated file)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def read_header(path: str | Path) -> pydicom.Dataset:
    """Parse a DICOM file without decoding pixels; unreadable files raise DataError."""
    path = Path(path)
    logger = logging.getLogger("pydicom")
    collect = _Collect()
    logger.addHandler(collect)
    propagate, logger.propagate = logger.propagate, False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, defer_size="1 KB")
    except FileNotFoundError:
        raise DataError(path, "image file is missing") from None
    except Exception as exc:  # pydicom raises many types on corrupt input
        raise DataError(path, f"not a readable DICOM file ({first_line(exc)})") from None
    finally:
        logger.removeHandler(collect)
        logger.propagate = propagate
    truncated = [m for m in collect.messages if "End of file" in m]
    if truncated:
        raise DataError(path, f"file is truncated ({truncated[0]})".replace(f" in file {path}", ""))
    if "PixelData" not in ds:
        raise DataError(path, "DICOM has no pixel data")
    return ds


def _check_geometry(path: Path, ds: pydicom.Dataset) -> tuple[int, int]:
    samples = int(ds.get("SamplesPerPixel", 1))
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    if samples != 1 or not photometric.startswith("MONOCHROME"):
        raise DataError(
            path, f"colour image ({photometric}, {samples} samples per pixel); expected a greyscale radiograph"
        )
    rows, cols = int(ds.get("Rows", 0)), int(ds.get("Columns", 0))
    if rows <= 0 or cols <= 0:
        raise DataError(path, f"invalid image size {rows}x{cols}")
    if rows != cols:
        raise DataError(
            path, f"image is {cols}x{rows} (width x height), not square; the benchmark needs square radiographs"
        )
    if int(ds.get("NumberOfFrames", 1) or 1) != 1:
        raise DataError(path, "multi-frame DICOM; expected a single radiograph")
    return rows, cols


def to_uint8(ds: pydicom.Dataset, pixels: np.ndarray) -> np.ndarray:
    """Apply modality/VOI LUTs, invert MONOCHROME1, and scale to uint8 [0, 255]."""
    if is_plain_8bit(ds, pixels):
        return pixels
    return to_uint8_general(ds, pixels)


def is_plain_8bit(ds: pydicom.Dataset, pixels: np.ndarray) -> bool:
    """Whether the pixels are already the 8-bit image: uint8, no LUT or rescale, not inverted.

    Then :func:`to_uint8_general` returns them unchanged (its float round trip costs about as much
    as decoding the JPEG), so they are used as they are; RSNA's files are all of this kind."""
    return (
        pixels.dtype == np.uint8
        and int(ds.get("BitsStored", 8)) <= 8
        and str(ds.get("PhotometricInterpretation", "")) != "MONOCHROME1"
        and not any(k in ds for k in ("RescaleSlope", "RescaleIntercept", "ModalityLUTSequence"))
        and not any(k in ds for k in ("WindowCenter", "VOILUTSequence"))
    )


def to_uint8_general(ds: pydicom.Dataset, pixels: np.ndarray) -> np.ndarray:
    """The full conversion of :func:`to_uint8`, for any bit depth and photometric interpretation."""
    arr = apply_modality_lut(pixels, ds)
    arr = apply_voi_lut(arr, ds) if ("WindowCenter" in ds or "VOILUTSequence" in ds) else arr
    arr = np.asarray(arr, dtype=np.float64)
    eight_bit = int(ds.get("BitsStored", 8)) <= 8 and arr.min() >= 0 and arr.max() <= 255
    if not eight_bit:
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
    if str(ds.get("PhotometricInterpretation", "")) == "MONOCHROME1":
        arr = 255.0 - arr
    return np.clip(np.rint(arr), 0, 255).astype(np.uint8)


def read_dicom(path: str | Path) -> Decoded:
    """Decode a DICOM radiograph to uint8; every failure names the file."""
    path = Path(path)
    ds = read_header(path)
    rows, cols = _check_geometry(path, ds)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pixels = ds.pixel_array
    except Exception as exc:  # decoder errors: truncated data, missing plugin, ...
        raise DataError(path, f"pixel data cannot be decoded ({first_line(exc)})") from None
    if pixels.shape != (rows, cols):
        raise DataError(path, f"decoded pixels have shape {pixels.shape}, header says {rows}x{cols}")
    return Decoded(to_uint8(ds, pixels), rows, cols)


def resize_area(image: np.ndarray, size: int) -> np.ndarray:
    """Resize a 2-D uint8 image to size x size with area (box-filter) interpolation."""
    if image.shape == (size, size):
        return image.copy()
    return np.clip(np.rint(resize_area_float(image, size)), 0, 255).astype(np.uint8)


def resize_area_float(image: np.ndarray, size: int) -> np.ndarray:
    """The unrounded float32 area resize behind :func:`resize_area` (same filter, same weights)."""
    if image.shape == (size, size):
        return image.astype(np.float32)
    pil = Image.fromarray(image.astype(np.float32), mode="F")
    return np.asarray(pil.resize((size, size), Image.Resampling.BOX), dtype=np.float32)
