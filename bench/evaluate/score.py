"""``python -m bench score``: score lesion maps produced by any external method.

The maps file is an ``.npz`` with one 2-D float array per patientId, at any resolution; each
map is resized bilinearly to the working size of the ground truth and scored with the same
localization metrics as built-in methods, on the Pneumonia images of the chosen split.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.config import Config
from bench.data import PreparedData, RSNADataset
from bench.data.domains import DOMAIN_CODES, HEALTHY, PNEUMONIA
from bench.errors import BenchError
from bench.evaluate.figure import Figure, MetricId
from bench.evaluate.protocol import MethodEval, Outputs, localization_figures, resize_maps

ZIP_MAGIC = b"PK"
NPY_MAGIC = b"\x93NUMPY"


def load_maps(path: Path) -> dict[str, np.ndarray]:
    """Read an .npz of patientId -> 2-D map; a bad file or array gives one clear error."""
    if not path.is_file():
        raise BenchError(f"{path}: maps file does not exist")
    with path.open("rb") as fh:
        magic = fh.read(6)
    if magic == NPY_MAGIC:
        raise BenchError(f"{path}: not a readable .npz of lesion maps: a single .npy array, not one map per patientId")
    if not magic.startswith(ZIP_MAGIC):
        raise BenchError(f"{path}: not a readable .npz of lesion maps: not an .npz (zip) file at all")
    try:
        with np.load(path, allow_pickle=False) as npz:
            maps = {k: np.asarray(npz[k]) for k in npz.files}
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise BenchError(f"{path}: not a readable .npz of lesion maps ({exc})") from None
    for pid, m in maps.items():
        m = np.squeeze(m)
        if m.ndim != 2 or m.size == 0:
            raise BenchError(f"{path}: map {pid!r} has shape {maps[pid].shape}; expected a 2-D array")
        if not np.issubdtype(m.dtype, np.number) or not np.isfinite(m).all():
            raise BenchError(f"{path}: map {pid!r} is not a finite numeric array")
        maps[pid] = m.astype(np.float32)
    return maps


def score_maps(maps: dict[str, np.ndarray], data: PreparedData, cfg: Config, split: str = "test") -> dict[str, Any]:
    """Localization figures of external maps against the data's boxes (and exact masks)."""
    ds: RSNADataset = {"test": data.test, "tune": data.tune}.get(split) or RSNADataset(
        data.cache, np.arange(len(data.cache.patient_ids))
    )
    position = {pid: i for i, pid in enumerate(ds.patient_ids)}
    known = [pid for pid in maps if pid in position]
    unknown = sorted(set(maps) - set(known))
    pneu_ids = [ds.patient_ids[i] for i in np.flatnonzero(ds.domains == PNEUMONIA)]
    missing = [pid for pid in pneu_ids if pid not in maps]
    used = [pid for pid in known if ds.domains[position[pid]] in DOMAIN_CODES]
    if not any(ds.domains[position[p]] == PNEUMONIA for p in used):
        raise BenchError(f"none of the {len(maps)} maps is for a Pneumonia image of the {split} split of {data.root}")
    idx = np.array([position[p] for p in used])
    batch = ds.batch(idx)
    out = Outputs(
        patient_ids=used,
        domains=np.asarray(ds.domains[idx]),
        maps=np.stack([resize_maps(torch.from_numpy(maps[p])[None], ds.size)[0] for p in used]),
        box_masks=batch["box_mask"][:, 0].numpy() > 0.5,
        lesion_masks=batch["lesion_mask"][:, 0].numpy() > 0.5 if "lesion_mask" in batch else None,
    )
    result = MethodEval()
    localization_figures(out, cfg.eval, result)
    return {
        "n_images": int((out.domains == PNEUMONIA).sum()),
        "n_healthy_maps": int((out.domains == HEALTHY).sum()),
        "missing": len(missing),
        "ignored": unknown,
        "figures": result.figures,
    }


def summary_json(name: str, scored: dict[str, Any]) -> dict[str, Any]:
    """The ``--json`` object: headline keys (figures against the boxes) plus every figure with its CI."""
    figs: dict[MetricId, Figure] = scored["figures"]
    out: dict[str, Any] = {"name": name}
    for key in (
        "lm_auc",
        "lm_auc_all",
        "pooled_auc",
        "pooled_ap",
        "pixel_auc",
        "ap",
        "hit_rate",
        "miou",
        "dice",
        "energy",
        "detection_auc",
    ):
        metric = MetricId(key, target="boxes")
        if metric in figs:
            out[{"pixel_auc": "per_image_auc", "ap": "per_image_ap"}.get(key, key)] = figs[metric].value
    out.update(
        {
            "n_images": scored["n_images"],
            "missing": scored["missing"],
            "ignored": len(scored["ignored"]),
            "figures": {k.key: f.as_dict() for k, f in figs.items()},
        }
    )
    return out


def scored_tables(name: str, scored: dict[str, Any]) -> str:
    """The localization table of external maps against the boxes, and against the exact masks when scored."""
    from bench.records.record import MethodResult
    from bench.report.document import localization_table

    methods = {name: MethodResult("ok", None, scored["figures"])}
    text = localization_table(methods)
    if any(k.target == "masks" for k in scored["figures"]):
        text += "\n\nAgainst the pixel-exact lesion masks:\n" + localization_table(methods, "masks")
    return text
