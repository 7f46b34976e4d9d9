"""The files of the Kaggle RSNA layout: DICOM images, mask and lift PNGs, label and class CSVs.

Images are JPEG Baseline, 8-bit MONOCHROME2, modality CR, like RSNA; masks are uint8 0/255 PNGs;
lifts are 16-bit PNGs of the grey levels the lesions add, times ``LIFT_SCALE`` (the cache
subtracts them from the decoded image to get the lesion-free twin). Box coordinates are in the
pixels of the written images.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import JPEGBaseline8Bit, SecondaryCaptureImageStorage, generate_uid

from bench.data.domains import CLASS_COLUMNS, CLASS_FILES, IMAGE_DIRS, LABEL_COLUMNS, LABEL_FILES
from bench.data.rsna import LIFT_SCALE
from bench.data.synth.boxes import Box

GENERATOR_NAME = "lesionbench-synth"
GENERATOR_VERSION = 2  # 2: lesion lifts (lesion-free twins) in synthetic_lesion_lift/

LABELS_CSV = LABEL_FILES[0]
CLASS_CSV = CLASS_FILES[0]
IMAGE_DIR = IMAGE_DIRS[0]
MANIFEST = "synthetic.json"


def _jpeg_bytes(image: np.ndarray, quality: int) -> bytes:
    """Baseline JPEG encoding of an 8-bit grey image."""
    buf = io.BytesIO()
    Image.fromarray(image, mode="L").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def write_dicom(path: Path, image: np.ndarray, patient_id: str, quality: int) -> None:
    """Write ``image`` as an RSNA-like DICOM: JPEG Baseline, 8-bit MONOCHROME2, modality CR."""
    sop_uid = generate_uid(prefix=None, entropy_srcs=[patient_id, "sop"])
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = "19010101"
    ds.StudyTime = "000000.00"
    ds.Modality = "CR"
    ds.ConversionType = "WSD"
    ds.SeriesDescription = f"synthetic ({GENERATOR_NAME} v{GENERATOR_VERSION})"
    ds.PatientName = patient_id
    ds.PatientID = patient_id
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = "PA"
    ds.StudyInstanceUID = generate_uid(prefix=None, entropy_srcs=[patient_id, "study"])
    ds.SeriesInstanceUID = generate_uid(prefix=None, entropy_srcs=[patient_id, "series"])
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = image.shape
    ds.PixelSpacing = [f"{0.139 * 1024 / image.shape[0]:.4f}"] * 2
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionMethod = "ISO_10918_1"
    ds.PixelData = encapsulate([_jpeg_bytes(image, quality)])
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)


def write_mask(path: Path, mask: np.ndarray) -> None:
    """Write a lesion mask as an 8-bit PNG with values 0 and 255."""
    Image.fromarray(mask.astype(np.uint8) * 255, mode="L").save(path, format="PNG", compress_level=1)


def write_lift(path: Path, lift: np.ndarray) -> None:
    """Write a lesion lift (grey levels) as a 16-bit PNG of ``round(lift * LIFT_SCALE)``."""
    scaled = np.clip(np.round(lift.astype(np.float64) * LIFT_SCALE), 0, 65535).astype(np.uint16)
    Image.fromarray(scaled).save(path, format="PNG", compress_level=1)


def _fmt(value: int) -> str:
    """A box coordinate written like the real CSV (``264.0``)."""
    return f"{float(value):.1f}"


def write_csvs(root: Path, cases: list[tuple[str, str, list[Box]]]) -> None:
    """Write the labels and class CSVs, rows ordered by patientId, one row per box."""
    with open(root / LABELS_CSV, "w", newline="") as fl, open(root / CLASS_CSV, "w", newline="") as fc:
        labels, classes = csv.writer(fl, lineterminator="\n"), csv.writer(fc, lineterminator="\n")
        labels.writerow(LABEL_COLUMNS)
        classes.writerow(CLASS_COLUMNS)
        for patient_id, label, boxes in sorted(cases):
            for x, y, w, h in boxes:
                labels.writerow([patient_id, _fmt(x), _fmt(y), _fmt(w), _fmt(h), 1])
                classes.writerow([patient_id, label])
            if not boxes:
                labels.writerow([patient_id, "", "", "", "", 0])
                classes.writerow([patient_id, label])
