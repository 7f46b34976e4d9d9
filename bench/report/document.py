"""The run report: Markdown tables of SPEC 3, the ROC figure, the qualitative figure, provenance.

Every number printed comes from the run's record (built from this run's evaluation); the
paper's figures appear only for real RSNA data and are labelled as the paper's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.atomic import atomic_write_text, save_figure
from bench.data.problems import data_problems_section
from bench.evaluate.figure import GROUPS, Example, Figure, MetricId, RocCurve, localization_id
from bench.records.record import MethodResult, RunRecord
from bench.registry import get_method_class
from bench.registry import method_title as title
from bench.report import paper
from bench.report.curves import curves_section, has_curves, learning_curves_figure
from bench.report.markdown import fmt
from bench.report.markdown import markdown_table as _table
from bench.report.verdict import verdict_section

LOCALIZATION_COLUMNS = [
    ("lm_auc", "lm_auc"),
    ("lm_auc_all", "lm_auc (+Healthy)"),
    ("pooled_auc", "pooled AUC"),
    ("pooled_ap", "pooled AP"),
    ("pixel_auc", "per-image AUC"),
    ("ap", "per-image AP"),
    ("detection_auc", "detection AUC"),
    ("hit_rate", "hit rate"),
    ("miou", "mIoU"),
    ("dice", "Dice"),
    ("energy", "energy in boxes"),
    ("randomization_rho", "randomization ρ"),
]
UNPREFIXED = {"randomization_rho"}
"""Columns that do not depend on the ground truth: shown once, in the table against the boxes."""

ORACLE = "ref_oracle"
"""The reference that sees the lesion-free twin: a ceiling, not a baseline to beat."""

ARUN_AUPRC = (
    "Published figures, not ours: Arun et al. (Radiology: AI 2021) report a pixel-level AUPRC against "
    "the RSNA boxes of 0.16-0.52 for saliency methods and 0.60 for a supervised RetinaNet; compare them "
    "with the pooled AP column."
)
HIT_RATE_NOTE = (
    "Hit rate: the map's maximal pixel lies inside a box; where several pixels tie for the maximum it "
    "counts the expected hit under uniform tie-breaking (the share of the tied maximal pixels inside "
    "the truth), so a constant map scores the box area fraction."
)
REFERENCE_INTRO = (
    "Reference maps, computed like any method (a method's score means something only above the best "
    "non-oracle reference; the oracle and any reference that sees lesion boxes are ceilings, not baselines):"
)
RANDOMIZATION_NOTE = (
    "Randomization ρ (Adebayo et al. 2018): mean per-image Spearman correlation between the trained "
    "method's maps and the maps of the same method with fresh random weights; near 1 means the map "
    "does not depend on what was learned; lower is better; reference maps learn nothing and have "
    "none."
)


def is_ceiling(name: str) -> bool:
    """Whether reference ``name`` sees more than any method (its class's ``ceiling``; the oracle for a
    record whose methods are no longer installed)."""
    try:
        return bool(get_method_class(name).ceiling)
    except Exception:  # a method of a record that is no longer installed
        return name == ORACLE


def _ok(record: RunRecord, references: bool = False) -> dict[str, dict[MetricId, Figure]]:
    """Metrics of the methods that succeeded: the methods, or with ``references`` the reference maps."""
    return {n: m.metrics for n, m in record.ok_methods(references).items()}


def _translators(record: RunRecord) -> list[str]:
    return [n for n, m in _ok(record).items() if any(k.metric == "change_rate" for k in m)]


def translation_table(record: RunRecord, metric: str, scale: float, digits: int, tolerance: int = 0) -> str:
    """Rows P→H, H→H, P+H→H; one column per translation method (the paper's layout); ``tolerance`` is
    that of the change rate."""
    names = _translators(record)
    if not names:
        return "_No translation method in this run._"
    ok = _ok(record)
    reference = record.evaluator.untranslated if metric.startswith("accuracy") else {}

    def figure_id(group: str) -> MetricId:
        return MetricId(metric, group=group, tolerance=tolerance if metric == "change_rate" else None)

    rows = [
        [label]
        + ([fmt(reference.get(figure_id(group)), scale, digits)] if reference else [])
        + [fmt(ok[n].get(figure_id(group)), scale, digits) for n in names]
        for group, label in GROUPS.items()
    ]
    header = [""] + (["real images, not translated"] if reference else []) + [title(n) for n in names]
    return _table(header, rows)


def paper_table(values: dict[str, tuple[float, ...]], digits: int) -> str:
    """The paper's own figures in the same layout, labelled as the paper's."""
    names = list(values)
    rows = [
        [f"{label} (paper)"] + [f"{values[n][i]:.{digits}f}" for n in names] for i, label in enumerate(GROUPS.values())
    ]
    return _table([""] + [title(n) for n in names], rows)


def _column(key: str, target: str) -> MetricId:
    """The figure a localization column shows against ``target`` (target-free ones: their only figure)."""
    return localization_id(key, target)


def _ok_of(methods: Mapping[str, MethodResult], references: bool = False) -> dict[str, dict[MetricId, Figure]]:
    return {n: m.metrics for n, m in methods.items() if m.ok and m.reference == references}


def localization_table(methods: Mapping[str, MethodResult], target: str = "boxes", references: bool = False) -> str:
    """One row per method (or per reference map): the SPEC 3.3 figures against ``target`` with their CIs."""
    columns = [(key, label) for key, label in LOCALIZATION_COLUMNS if not (target != "boxes" and key in UNPREFIXED)]
    pooled = MetricId("pooled_auc", target=target)
    rows = [
        [title(name)] + [fmt(m.get(_column(key, target))) for key, _ in columns]
        for name, m in _ok_of(methods, references).items()
        if pooled in m
    ]
    if not rows:
        return "_No reference maps in this run._" if references else "_No localization figures._"
    return _table(["reference map" if references else "method"] + [label for _, label in columns], rows)


def _bounds(fig: Figure | None) -> tuple[float, float] | None:
    """(CI low, CI high) of a record figure, the value twice when it has no CI; None without a value."""
    if not fig or fig.value is None:
        return None
    ci = fig.ci
    if ci and ci[0] is not None and ci[1] is not None:
        return float(ci[0]), float(ci[1])
    return float(fig.value), float(fig.value)


def _ceilings(methods: Mapping[str, MethodResult]) -> set[str]:
    """Reference rows that see what methods may not (the oracle's twin, boxes): ceilings, not baselines."""
    return {n for n, m in methods.items() if m.ceiling or is_ceiling(n)}


def beats_references(methods: Mapping[str, MethodResult], target: str = "boxes") -> str | None:
    """One sentence: which methods beat every non-ceiling reference on the headline lm_auc (CI lower bound
    above each such reference's CI upper bound), naming the best such reference; None without references."""
    key = MetricId("lm_auc", target=target)
    ceilings = _ceilings(methods)
    references = _ok_of(methods, references=True)
    refs = {n: _bounds(m.get(key)) for n, m in references.items() if n not in ceilings}
    refs = {n: b for n, b in refs.items() if b is not None}
    if not refs:
        return None
    ceiling = max(hi for _, hi in refs.values())
    best = max(refs, key=lambda n: references[n][key].value)
    lower = {n: _bounds(m.get(key)) for n, m in _ok_of(methods).items()}
    winners = [title(n) for n, b in lower.items() if b is not None and b[0] > ceiling]
    best_text = f"The best such reference is {title(best)}, lm_auc {fmt(references[best][key])}."
    rule = "(lm_auc CI lower bound above the CI upper bound of every reference that is not a ceiling)"
    if winners:
        return f"Methods that beat every reference {rule}: {', '.join(winners)}. {best_text}"
    return f"No method beats every reference {rule}. {best_text}"


def oracle_sentence(methods: Mapping[str, MethodResult], target: str = "boxes") -> str | None:
    """The oracle's pooled AUC: what a perfect lesion map scores against this ground truth, and whether a
    reference that knows no lesion scores above it (then the ground truth rewards location, not lesions);
    None when the oracle did not run."""
    ok = _ok_of(methods, references=True)
    pooled = MetricId("pooled_auc", target=target)
    fig = ok.get(ORACLE, {}).get(pooled)
    if not fig or fig.value is None:
        return None
    truth = "exact masks" if target == "masks" else "boxes"
    text = (
        f"The oracle reference, which sees each image's lesion-free twin (the map |x - twin|), scores a pooled "
        f"AUC of {fmt(fig)}: what a perfect lesion map scores against the {truth}."
    )
    above = [n for n, m in ok.items() if not is_ceiling(n) and _value(m.get(pooled)) > fig.value]
    if above:
        text += (
            f" {', '.join(title(n) for n in above)} scores above it: against the {truth}, knowing where lesions "
            "usually are beats seeing the lesion, so a method's score here says more about location than about "
            "lesion evidence" + ("; the exact masks below are the sharper test." if target == "boxes" else ".")
        )
    return text


def _value(fig: Figure | None) -> float:
    """A figure's value, 0 when absent."""
    return (fig.value if fig is not None else None) or 0.0


def localization_section(record: RunRecord, target: str = "boxes") -> list[str]:
    """A localization table, then its block of reference rows and what they say about the methods."""
    parts = [localization_table(record.methods, target)]
    if _ok(record, references=True):
        parts += [REFERENCE_INTRO, localization_table(record.methods, target, references=True)]
        left_out = record.references_left_out or {}
        if left_out:
            parts.append("Left out: " + "; ".join(f"{title(n)} ({why})" for n, why in left_out.items()) + ".")
        sentences = (beats_references(record.methods, target), oracle_sentence(record.methods, target))
        parts += [t for t in sentences if t]
    return parts


def roc_figure(curves: Sequence[RocCurve], out: Path) -> None:
    """Pooled pixel ROC, one curve per method (seed 0), references dashed, AUC in the legend, chance diagonal."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="paper")
    fig, ax = plt.subplots(figsize=(5.2, 5))
    methods = [c for c in curves if not c.reference]
    refs = [c for c in curves if c.reference]
    palettes = (
        sns.color_palette("tab10", n_colors=max(3, len(methods))),
        sns.color_palette("dark", n_colors=max(3, len(refs))),
    )
    for group, palette, style in ((methods, palettes[0], "-"), (refs, palettes[1], "--")):
        for color, c in zip(palette, group):
            auc = "—" if c.auc is None else f"{c.auc:.3f}"
            label = f"{c.title}{' (reference)' if c.reference else ''} (AUC {auc})"
            ax.plot(c.fpr, c.tpr, color=color, lw=1.6 if style == "-" else 1.1, ls=style, label=label)
    ax.plot([0, 1], [0, 1], ls=":", color="grey", lw=1, label="chance")
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1),
        xlabel="false positive rate (pixels outside boxes)",
        ylabel="true positive rate (pixels inside boxes)",
        title="Pooled pixel ROC, Pneumonia test images",
    )
    ax.legend(loc="lower right", fontsize=6)
    save_figure(fig, out)


def qualitative_figure(examples: Sequence[Example], out: Path) -> None:
    """Input with boxes, then each method's lesion map, for a few Pneumonia and Healthy images."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    names = list(dict.fromkeys(n for ex in examples for n in ex.maps))
    cols, n_rows = 1 + len(names), max(1, len(examples))
    fig, axes = plt.subplots(n_rows, cols, figsize=(1.9 * cols, 1.95 * n_rows), squeeze=False)
    for r, ex in enumerate(examples):
        ax = axes[r, 0]
        ax.imshow(ex.image, cmap="gray", vmin=-1, vmax=1)
        for x0, y0, x1, y1 in ex.boxes.tolist():
            ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, color="red", lw=1))
        ax.set_ylabel("Pneumonia" if ex.pneumonia else "Healthy", fontsize=7)
        for c, name in enumerate(names, start=1):
            if name in ex.maps:
                axes[r, c].imshow(ex.maps[name], cmap="inferno")
    axes[0, 0].set_title("input + boxes", fontsize=7)
    for c, name in enumerate(names, start=1):
        axes[0, c].set_title(title(name), fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    save_figure(fig, out)


def recipe_text(cfg: dict[str, Any]) -> str:
    """', GAN recipe `paper`' (and the adversarial loss when it is not WGAN-GP) for the preset lines."""
    train = cfg.get("train", {})
    text = f", GAN recipe `{train.get('recipe', 'paper')}`"
    if train.get("gan_loss", "wgan-gp") != "wgan-gp":
        text += f" with adversarial loss `{train['gan_loss']}` (R1 gamma {train.get('r1_gamma')})"
    return text


def layout_text(layout: dict[str, int] | None) -> str:
    """How the run used the machine (absent in records older than ``--jobs``)."""
    if not layout:
        return ""
    return (
        f"; training {layout['jobs']} method(s) at a time with {layout['threads']} thread(s) each, "
        f"evaluation with {layout['eval_threads']} thread(s)"
    )


def launch_text(launch: dict[str, Any]) -> str:
    """How a launched run trained its methods (``run --launcher submitit``): cluster, jobs, logs."""
    jobs = launch.get("jobs", {})
    failed = sum(1 for j in jobs.values() if j.get("status") != "ok")
    state = f", {failed} failed" if failed else ""
    return (
        f"; trained by {len(jobs)} {launch['launcher']} job(s) on `{launch['cluster']}` (one per method and seed"
        f"{state}; scripts and logs in `jobs/`)"
    )


def provenance(record: RunRecord) -> str:
    """Config hash, commit, versions, device, data manifest and time per stage."""
    commit = (record.commit or "not a git checkout")[:12] + (" (dirty)" if record.dirty else "")
    data = record.data
    lines = [
        f"- run: `{record.run_id}`, created {record.created}",
        f"- preset `{record.config['preset']}`{recipe_text(record.config)}, "
        f"config hash `{record.config_hash}`, seeds {record.seeds}",
        f"- commit `{commit}`",
        f"- device: {record.device}" + (launch_text(record.launch) if record.launch else layout_text(record.layout)),
        f"- data: `{data['root']}` ({'built-in synthetic' if data['synthetic'] else 'RSNA'}), "
        f"manifest hash `{data['manifest_hash']}`",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in record.versions.items()),
        "- time per stage (s): " + ", ".join(f"{k} {v:.1f}" for k, v in record.times.items()),
    ]
    return "\n".join(lines)


def evaluator_line(ev: dict[str, Any]) -> str:
    """One sentence on the judge of Table 1: its input size and final feature map, its AUC on real test
    images and its threshold (fixed on tune)."""
    auc, thr = ev.get("test_auc"), ev.get("threshold")
    source = "user-supplied weights" if ev.get("source") == "user weights" else "trained by the suite"
    text = f"Evaluator: DenseNet-121 ({source})"
    if ev.get("input_size") is not None:
        side = ev.get("feature_map")
        text += f" at {ev['input_size']} px ({side}x{side} final feature map)"
    if auc is not None:
        text += f", AUC {auc:.3f} on real test images (Pneumonia vs Healthy)"
    if thr is not None:
        text += f", Youden threshold {thr:.3f} fixed on the real tune images"
    if auc is not None and auc < 0.7:
        text += ". Its AUC is low: Table 1 says little about whether translations look Healthy"
    return text + "."


def render(record: RunRecord) -> str:
    """The whole report.md text from a run record."""
    data, ev, cfg = record.data, record.evaluator.settings, record.config
    real = not data["synthetic"]
    tol = cfg["eval"]["tolerances"]
    parts = [
        f"# lesionbench report — run {record.run_id}",
        f"Data: {'real RSNA' if real else 'built-in synthetic radiographs'} at {cfg['data']['size']} px; "
        f"test split {data['n_test']['pneumonia']} Pneumonia + {data['n_test']['healthy']} Healthy images "
        f"(train {data['n_train']}, tune {data['n_tune']}; the tune split alone chooses thresholds and early "
        f"stopping; every figure is on test). Preset `{cfg['preset']}`{recipe_text(cfg)}. "
        "Figures are value [95% bootstrap CI over images, "
        f"{cfg['eval']['n_bootstrap']} resamples]"
        + (", ± standard deviation across seeds" if len(record.seeds) > 1 else "")
        + ".",
        evaluator_line(ev),
        *verdict_section(record),
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
        parts += [
            f"With a tolerance of {t} grey levels (|Δ| > {t}):",
            translation_table(record, "change_rate", 1, 4, tolerance=t),
        ]
    if real:
        parts += ["The paper's figures:", paper_table(paper.CHANGE_RATE, 4)]
    parts += [
        "## Table 3: localization (Pneumonia test images, ground-truth boxes)",
        (
            "Maps normalized per image to [0, 1]; positives are pixels inside the union of the boxes. lm_auc: the "
            "location-matched AUC, pairs of pixels at the same location in different Pneumonia images (any map that "
            "ignores the image scores 0.5); lm_auc (+Healthy) also counts Healthy images' pixels as negatives. "
            "Pooled AUC (the paper's figure) and "
            "pooled AP (average precision, the area under the precision-recall curve) over all pixels of all images; "
            "per-image AUC and AP averaged over images. Detection AUC: map maximum, Pneumonia vs Healthy. mIoU/Dice at "
            "Otsu's threshold. Energy: share of the map's mass inside the boxes."
        ),
        HIT_RATE_NOTE,
        RANDOMIZATION_NOTE,
        *localization_section(record),
    ]
    if any(k.target == "masks" for m in _ok(record).values() for k in m):
        parts += ["Against the pixel-exact lesion masks of the synthetic data:", *localization_section(record, "masks")]
    if real:
        parts += [ARUN_AUPRC] + [
            f"The paper reports a localization AUC of {auc} for {title(name)}."
            for name, auc in paper.LOCALIZATION_AUC.items()
        ]
    parts += ["## ROC", "![pooled pixel ROC](roc.png)", "## Lesion maps", "![qualitative](qualitative.png)"]
    parts += curves_section(record)
    failed = {n: m.error for n, m in record.methods.items() if not m.ok}
    if failed:
        parts += ["## Failures", "\n".join(f"- {title(n)}: {e} (traceback in errors.log)" for n, e in failed.items())]
    parts += [section for section in (data_problems_section({"data": record.data}),) if section]
    parts += ["## Provenance", provenance(record)]
    return "\n\n".join(parts) + "\n"


def write_report(run_dir: Path, record: RunRecord, curves: Sequence[RocCurve], examples: Sequence[Example]) -> None:
    """Write roc.png, qualitative.png, learning_curves.png (when a method has curves) and report.md."""
    roc_figure(curves, run_dir / "roc.png")
    if has_curves(record):
        learning_curves_figure(record.methods, run_dir / "learning_curves.png")
    qualitative_figure(examples, run_dir / "qualitative.png")
    atomic_write_text(run_dir / "report.md", render(record))
