"""Writing small DICOM files of every kind the reader must handle or reject."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid


def write_dicom(
    path: Path,
    pixels: np.ndarray | None,
    photometric: str = "MONOCHROME2",
    bits: int = 8,
    window: tuple[float, float] | None = None,
) -> Path:
    """An uncompressed DICOM with the given pixels (H, W) or (H, W, 3); None = no pixel data."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientID = path.stem
    ds.Modality = "CR"
    if pixels is not None:
        ds.Rows, ds.Columns = pixels.shape[:2]
        ds.SamplesPerPixel = 3 if pixels.ndim == 3 else 1
        if pixels.ndim == 3:
            ds.PlanarConfiguration = 0
        ds.PhotometricInterpretation = photometric
        ds.BitsAllocated = 8 if bits == 8 else 16
        ds.BitsStored = bits
        ds.HighBit = bits - 1
        ds.PixelRepresentation = 0
        if window is not None:
            ds.WindowCenter, ds.WindowWidth = window
        dtype = np.uint8 if bits == 8 else np.uint16
        ds.PixelData = pixels.astype(dtype).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def gradient(rows: int = 64, cols: int = 64, maximum: int = 255) -> np.ndarray:
    """A left-to-right ramp from 0 to ``maximum``: easy to check after inversion and scaling."""
    ramp = np.linspace(0, maximum, cols)
    return np.tile(np.rint(ramp), (rows, 1))
