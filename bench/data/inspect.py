"""Looking at a data folder: counts (``data info``) and a contact sheet (``data preview``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bench.atomic import atomic_write_figure
from bench.config import DataConfig
from bench.data import PreparedData, RSNADataset, split_counts
from bench.data.dicom import read_header
from bench.data.domains import PNEUMONIA
from bench.data.rsna import CLASSES, Labels, read_labels, splits_for, unlabelled_images
from bench.errors import DataError
from bench.progress import bar


def image_status(labels: Labels, progress: bool = True, usable: set[str] | None = None) -> dict[str, Any]:
    """Images found, missing, and unreadable (header check) for every labelled patient; the ids of
    the readable ones are added to ``usable`` when given."""
    found = missing = 0
    unreadable: list[str] = []
    for pat in bar(labels.patients, desc="checking images", unit="img", enabled=progress):
        path = labels.layout.images / f"{pat.patient_id}.dcm"
        if not path.is_file():
            missing += 1
            continue
        found += 1
        try:
            read_header(path)
        except DataError as err:
            unreadable.append(str(err))
            continue
        if usable is not None:
            usable.add(pat.patient_id)
    return {
        "images_found": found,
        "images_missing": missing,
        "unreadable": len(unreadable),
        "unreadable_files": unreadable,
    }


def data_info(root: Path, cfg: DataConfig, progress: bool = True) -> dict[str, Any]:
    """Everything ``data info`` prints, as one JSON-serialisable dict."""
    labels = read_labels(root, include_not_normal=cfg.include_not_normal, strict=cfg.strict)
    by_class = labels.by_class()
    info: dict[str, Any] = {
        "root": str(root),
        "labels_file": labels.layout.labels.name,
        "patients": len(labels.patients),
        "classes": {c: by_class[c] for c in CLASSES},
        "boxes": labels.n_boxes(),
        "boxes_per_patient": _boxes_histogram(labels),
    }
    usable: set[str] = set()
    info.update(image_status(labels, progress, usable))
    info["split"] = split_counts(labels, cfg)
    info["split_images"] = split_image_counts(labels, cfg, usable)
    unlabelled = unlabelled_images(labels.layout)
    info["unlabelled_images"] = len(unlabelled)
    info["unlabelled_files"] = unlabelled[:20]
    info["problems"] = len(labels.problems)
    info["problem_lines"] = [str(p) for p in labels.problems[:20]]
    return info


def split_image_counts(labels: Labels, cfg: DataConfig, usable: set[str]) -> dict[str, dict[str, int]]:
    """Per split and domain, the patients whose image is present and readable."""
    parts = splits_for(labels, cfg)
    names = {0: "healthy", 1: "pneumonia"}
    return {
        k: {names[d]: sum(p.domain == d and p.patient_id in usable for p in v) for d in (1, 0)}
        for k, v in parts.items()
    }


def print_unlabelled(names: list[str], shown: int = 5) -> None:
    """One line naming the DICOMs that no CSV row describes (nothing when there are none)."""
    if names:
        more = ", ..." if len(names) > shown else ""
        print(f"{len(names):,} image(s) without a row in the label CSV, not used: {', '.join(names[:shown])}{more}")


def _boxes_histogram(labels: Labels) -> dict[str, int]:
    counts: dict[str, int] = {}
    for p in labels.patients:
        if p.boxes:
            counts[str(len(p.boxes))] = counts.get(str(len(p.boxes)), 0) + 1
    return dict(sorted(counts.items()))


def format_info(info: dict[str, Any]) -> str:
    """Human-readable ``data info`` text."""
    lines = [f"data: {info['root']} ({info['labels_file']})", f"patients: {info['patients']:,}"]
    lines += [f"  {c}: {n:,}" for c, n in info["classes"].items()]
    per = ", ".join(f"{k}: {v:,}" for k, v in info["boxes_per_patient"].items())
    lines.append(f"boxes: {info['boxes']:,} (boxes per Lung Opacity patient - {per})")
    lines.append(
        f"images: {info['images_found']:,} found, {info['images_missing']:,} missing, {info['unreadable']:,} unreadable"
    )
    lines += [f"  {u}" for u in info["unreadable_files"][:10]]
    for part, counts in info["split"].items():
        usable = info["split_images"][part]
        lines.append(
            f"split {part}: patients "
            + ", ".join(f"{d} {n:,}" for d, n in counts.items())
            + f" (total {sum(counts.values()):,}); usable images "
            + ", ".join(f"{d} {n:,}" for d, n in usable.items())
            + f" (total {sum(usable.values()):,})"
        )
    if info["unlabelled_images"]:
        more = ", ..." if info["unlabelled_images"] > 5 else ""
        lines.append(
            f"images without a row in {info['labels_file']} (not used): {info['unlabelled_images']:,} - "
            + ", ".join(info["unlabelled_files"][:5])
            + more
        )
    if info["problems"]:
        lines.append(f"label problems (rows skipped): {info['problems']}")
        lines += [f"  {p}" for p in info["problem_lines"]]
    return "\n".join(lines)


def preview_sheet(data: PreparedData, out: Path, n: int = 12, columns: int = 4) -> Path:
    """Contact sheet of images (Pneumonia first) with boxes in red and exact lesion masks in cyan."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    ds = RSNADataset(data.cache, np.arange(len(data.cache.patient_ids)))
    pneu = np.flatnonzero(ds.domains == PNEUMONIA)[: (n + 1) // 2]
    rest = np.flatnonzero(ds.domains != PNEUMONIA)[: n - len(pneu)]
    idx = np.concatenate([pneu, rest])
    if len(idx) == 0:
        raise DataError(data.root, "no decodable images to preview")
    rows = int(np.ceil(len(idx) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(3 * columns, 3.2 * rows), squeeze=False)
    batch = ds.batch(idx)
    for ax, i in zip(axes.flat, range(len(idx))):
        ax.imshow(batch["image"][i, 0].numpy(), cmap="gray", vmin=-1, vmax=1)
        if "lesion_mask" in batch and batch["lesion_mask"][i].any():
            ax.contour(batch["lesion_mask"][i, 0].numpy(), levels=[0.5], colors="cyan", linewidths=0.7)
        for x0, y0, x1, y1 in batch["boxes"][i, : int(batch["n_boxes"][i])].tolist():
            ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, color="red", lw=1.2))
        label = "Pneumonia" if int(batch["domain"][i]) == PNEUMONIA else "Healthy"
        ax.set_title(f"{label}\n{batch['patientId'][i][:13]}", fontsize=8)
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle(
        f"{data.root.name}: {ds.size}px, boxes red" + (", exact lesion masks cyan" if ds.has_lesion_masks else ""),
        fontsize=9,
    )
    fig.tight_layout()
    atomic_write_figure(fig, out, dpi=100)
    plt.close(fig)
    return out
