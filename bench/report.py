"""The run report: Markdown tables of SPEC 3, the ROC figure, the qualitative figure, provenance.

Every number printed comes from the run's record (built from this run's evaluation); the
paper's figures appear only for real RSNA data and are labelled as the paper's.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from bench import paper
from bench.checkpoint import atomic_write_figure, atomic_write_text
from bench.data import PreparedData
from bench.evaluate import GROUPS
from bench.records import markdown_table as _table
from bench.registry import get_method_class
from bench.report_data import data_problems_section

LOCALIZATION_COLUMNS = [
    ("pooled_auc", "pooled AUC"), ("pixel_auc", "per-image AUC"), ("detection_auc", "detection AUC"),
    ("hit_rate", "hit rate"), ("miou", "mIoU"), ("dice", "Dice"), ("energy", "energy in boxes"),
]


def title(name: str) -> str:
    """Display name of a registered method (its class's ``title``, else its registry name)."""
    try:
        return getattr(get_method_class(name), "title", "") or name
    except Exception:  # a method of a record that is no longer installed
        return name


def fmt(fig: dict[str, Any] | None, scale: float = 1.0, digits: int = 3) -> str:
    """'value [lo, hi]' (± seed spread when several seeds), or an em dash when absent."""
    if not fig or fig.get("value") is None:
        return "—"
    text = f"{fig['value'] * scale:.{digits}f}"
    if fig.get("seed_std") is not None:
        text += f" ± {fig['seed_std'] * scale:.{digits}f}"
    ci = fig.get("ci")
    if ci and ci[0] is not None and ci[1] is not None:
        text += f" [{ci[0] * scale:.{digits}f}, {ci[1] * scale:.{digits}f}]"
    return text


def _ok(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: m["metrics"] for n, m in record["methods"].items() if m["status"] == "ok"}


def _translators(record: dict[str, Any]) -> list[str]:
    return [n for n, m in _ok(record).items() if any(k.startswith("change_rate") for k in m)]


def translation_table(record: dict[str, Any], prefix: str, scale: float, digits: int) -> str:
    """Rows P→H, H→H, P+H→H; one column per translation method (the paper's layout)."""
    names = _translators(record)
    if not names:
        return "_No translation method in this run._"
    ok = _ok(record)
    reference = record.get("evaluator", {}).get("untranslated", {}) if prefix.startswith("accuracy") else {}
    rows = [[label] + ([fmt(reference.get(f"{prefix}_{key}"), scale, digits)] if reference else [])
            + [fmt(ok[n].get(f"{prefix}_{key}"), scale, digits) for n in names] for key, label in GROUPS.items()]
    header = [""] + (["real images, not translated"] if reference else []) + [title(n) for n in names]
    return _table(header, rows)


def paper_table(values: dict[str, tuple[float, ...]], digits: int) -> str:
    """The paper's own figures in the same layout, labelled as the paper's."""
    names = list(values)
    rows = [[f"{label} (paper)"] + [f"{values[n][i]:.{digits}f}" for n in names] for i, label in enumerate(GROUPS.values())]
    return _table([""] + [title(n) for n in names], rows)


def localization_table(record: dict[str, Any], prefix: str = "") -> str:
    """One row per method: the SPEC 3.3 figures with their CIs."""
    rows = []
    for name, m in _ok(record).items():
        if f"{prefix}pooled_auc" in m:
            rows.append([title(name)] + [fmt(m.get(prefix + key)) for key, _ in LOCALIZATION_COLUMNS])
    return _table(["method"] + [label for _, label in LOCALIZATION_COLUMNS], rows) if rows else "_No localization figures._"


def roc_figure(runs: Sequence[Any], out: Path) -> None:
    """Pooled pixel ROC, one curve per method (seed 0), AUC in the legend, chance diagonal."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="paper")
    fig, ax = plt.subplots(figsize=(5.2, 5))
    palette = sns.color_palette("tab10", n_colors=max(3, len(runs)))
    for color, run in zip(palette, runs):
        if run.error is None and run.evals and run.evals[0].roc is not None:
            roc = run.evals[0].roc
            auc = float(np.mean([e.figures["pooled_auc"].value for e in run.evals]))
            ax.plot(roc["fpr"], roc["tpr"], color=color, lw=1.6, label=f"{title(run.name)} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="chance")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="false positive rate (pixels outside boxes)",
           ylabel="true positive rate (pixels inside boxes)", title="Pooled pixel ROC, Pneumonia test images")
    ax.legend(loc="lower right", fontsize=7)
    _save(fig, out)


def qualitative_figure(runs: Sequence[Any], data: PreparedData, examples: list[str], out: Path) -> None:
    """Input with boxes, then each method's lesion map, for a few Pneumonia and Healthy images."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    shown = [r for r in runs if r.error is None and r.evals]
    position = {pid: i for i, pid in enumerate(data.test.patient_ids)}
    ids = [pid for pid in examples if pid in position]
    batch = data.test.batch([position[p] for p in ids])
    cols = 1 + len(shown)
    fig, axes = plt.subplots(len(ids), cols, figsize=(1.9 * cols, 1.95 * len(ids)), squeeze=False)
    for r, pid in enumerate(ids):
        ax = axes[r, 0]
        ax.imshow(batch["image"][r, 0].numpy(), cmap="gray", vmin=-1, vmax=1)
        for x0, y0, x1, y1 in batch["boxes"][r, : int(batch["n_boxes"][r])].tolist():
            ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, color="red", lw=1))
        ax.set_ylabel("Pneumonia" if int(batch["domain"][r]) == 1 else "Healthy", fontsize=7)
        for c, run in enumerate(shown, start=1):
            m = run.evals[0].examples.get(pid)
            if m is not None:
                axes[r, c].imshow(m, cmap="inferno")
    axes[0, 0].set_title("input + boxes", fontsize=7)
    for c, run in enumerate(shown, start=1):
        axes[0, c].set_title(title(run.name), fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    _save(fig, out)


def _save(fig: Any, out: Path) -> None:
    import matplotlib.pyplot as plt

    atomic_write_figure(fig, out, dpi=110)
    plt.close(fig)


def provenance(record: dict[str, Any]) -> str:
    """Config hash, commit, versions, device, data manifest and time per stage."""
    commit = (record.get("commit") or "not a git checkout")[:12] + (" (dirty)" if record.get("dirty") else "")
    lines = [
        f"- run: `{record['run_id']}`, created {record['created']}",
        f"- preset `{record['config']['preset']}`, config hash `{record['config_hash']}`, seeds {record['seeds']}",
        f"- commit `{commit}`",
        f"- device: {record['device']}",
        f"- data: `{record['data']['root']}` ({'built-in synthetic' if record['data']['synthetic'] else 'RSNA'}), "
        f"manifest hash `{record['data']['manifest_hash']}`",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in record["versions"].items()),
        "- time per stage (s): " + ", ".join(f"{k} {v:.1f}" for k, v in record["times"].items()),
    ]
    return "\n".join(lines)


def evaluator_line(ev: dict[str, Any]) -> str:
    """One sentence on the judge of Table 1: its AUC on real test images and its threshold (fixed on tune)."""
    auc, thr = ev.get("test_auc"), ev.get("threshold")
    source = "user-supplied weights" if ev.get("source") == "user weights" else "trained by the suite"
    text = f"Evaluator: DenseNet-121 ({source})"
    if auc is not None:
        text += f", AUC {auc:.3f} on real test images (Pneumonia vs Healthy)"
    if thr is not None:
        text += f", Youden threshold {thr:.3f} fixed on the real tune images"
    if auc is not None and auc < 0.7:
        text += ". Its AUC is low: Table 1 says little about whether translations look Healthy"
    return text + "."


def render(record: dict[str, Any]) -> str:
    """The whole report.md text from a run record."""
    data, ev, cfg = record["data"], record["evaluator"], record["config"]
    real = not data["synthetic"]
    tol = cfg["eval"]["tolerances"]
    parts = [
        f"# lesionbench report — run {record['run_id']}",
        f"Data: {'real RSNA' if real else 'built-in synthetic radiographs'} at {cfg['data']['size']} px; "
        f"test split {data['n_test']['pneumonia']} Pneumonia + {data['n_test']['healthy']} Healthy images "
        f"(train {data['n_train']}, tune {data['n_tune']}; the tune split alone chooses thresholds and early "
        f"stopping; every figure is on test). Preset `{cfg['preset']}`. Figures are value [95% bootstrap CI over images, "
        f"{cfg['eval']['n_bootstrap']} resamples]" + (", ± standard deviation across seeds" if len(record["seeds"]) > 1 else "") + ".",
        evaluator_line(ev),
        "## Table 1: accuracy after translation to Healthy (%)",
        "Share of translated test images that the evaluator classifies as Healthy at the Youden threshold "
        "fixed on real tune images. The first column is the same share for the real images before any "
        "translation: a method helps only where it beats that column.",
        translation_table(record, "accuracy", 100, 1),
        "At a threshold of 0.5:",
        translation_table(record, "accuracy05", 100, 1),
    ]
    if real:
        parts += ["The paper's figures (RSNA, 256 px, 100K iterations):", paper_table(paper.ACCURACY, 2)]
    parts += [
        "## Table 2: pixel change rate",
        "Fraction of pixels whose 8-bit value changes between x and G(x, Healthy) (lower = fewer changes).",
        translation_table(record, "change_rate", 1, 4),
    ]
    for t in tol:
        parts += [f"With a tolerance of {t} grey levels (|Δ| > {t}):", translation_table(record, f"change_rate_tol{t}", 1, 4)]
    if real:
        parts += ["The paper's figures:", paper_table(paper.CHANGE_RATE, 4)]
    parts += [
        "## Table 3: localization (Pneumonia test images, ground-truth boxes)",
        "Maps normalized per image to [0, 1]; positives are pixels inside the union of the boxes. Detection AUC: map "
        "maximum, Pneumonia vs Healthy. Hit rate: argmax pixel inside a box (ties: first index). mIoU/Dice at Otsu's "
        "threshold. Energy: share of the map's mass inside the boxes.",
        localization_table(record),
    ]
    if any(k.startswith("mask_") for m in _ok(record).values() for k in m):
        parts += ["Against the pixel-exact lesion masks of the synthetic data:", localization_table(record, "mask_")]
    if real:
        parts += [f"The paper reports a localization AUC of {paper.LOCALIZATION_AUC['pillet']} for PILLET-GAN, the highest of its methods."]
    parts += ["## ROC", "![pooled pixel ROC](roc.png)", "## Lesion maps", "![qualitative](qualitative.png)"]
    failed = {n: m["error"] for n, m in record["methods"].items() if m["status"] != "ok"}
    if failed:
        parts += ["## Failures", "\n".join(f"- {title(n)}: {e} (traceback in errors.log)" for n, e in failed.items())]
    parts += [section for section in (data_problems_section(record),) if section]
    parts += ["## Provenance", provenance(record)]
    return "\n\n".join(parts) + "\n"


def write_report(run_dir: Path, record: dict[str, Any], runs: Sequence[Any], data: PreparedData,
                 examples: list[str]) -> None:
    """Write roc.png, qualitative.png and report.md into ``run_dir``."""
    roc_figure(runs, run_dir / "roc.png")
    qualitative_figure(runs, data, examples, run_dir / "qualitative.png")
    atomic_write_text(run_dir / "report.md", render(record))
