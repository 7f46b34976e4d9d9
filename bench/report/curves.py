"""The report's learning-curve section: one flattening sentence per method and the curves figure.

Rendered from the record's ``methods.<name>.curves`` (taken on the tune subset during training by
:mod:`bench.train.gan.curves`); nothing is recomputed here.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from bench.atomic import save_figure
from bench.records.record import MethodResult, RunRecord
from bench.registry import method_title as title

FLAT_TOLERANCES = {"lm_auc": 0.02, "pooled_auc": 0.02, "accuracy_p2h": 0.05}
"""How much a curve metric may still move over the last third of training for the curve to count as flattened."""
CURVE_LABELS = {
    "lm_auc": "lm_auc (boxes)",
    "mask_lm_auc": "lm_auc (exact masks)",
    "pooled_auc": "pooled AUC (boxes)",
    "mask_pooled_auc": "pooled AUC (exact masks)",
    "accuracy_p2h": "P→H share judged Healthy",
    "change_rate_tol8_p2h": "pixels changed > 8 (Pneumonia)",
}
CURVE_PANELS = (
    ("lm_auc", "mask_lm_auc"),
    ("pooled_auc", "mask_pooled_auc"),
    ("accuracy_p2h",),
    ("change_rate_tol8_p2h",),
)


def has_curves(record: RunRecord) -> bool:
    """Whether any method of the record has a learning curve (then the report draws them)."""
    return bool(_curves(record.methods))


def _curves(methods: Mapping[str, MethodResult]) -> dict[str, list[dict[str, float]]]:
    """The learning curves of the methods that have them (first seed)."""
    return {n: m.curves for n, m in methods.items() if m.curves}


def flat_window(points: list[dict[str, float]], key: str) -> list[dict[str, float]]:
    """The points spanning the last third of training for ``key``: those at or after 2/3 of the last
    point's iteration, with the last point before them."""
    have = [p for p in points if p.get(key) is not None]
    if not have:
        return []
    start = max((i for i, p in enumerate(have) if p["iteration"] < 2 / 3 * have[-1]["iteration"]), default=0)
    return have[start:]


def flattening(points: list[dict[str, float]], key: str) -> str | None:
    """Whether curve metric ``key`` has flattened: over :func:`flat_window` (at least 3 points) its range
    (max - min) is at most ``FLAT_TOLERANCES[key]``; a curve that never moved beyond that from its first
    point is called not started, not converged. A phrase for the report; None without the metric."""
    window, tol = flat_window(points, key), FLAT_TOLERANCES[key]
    label = CURVE_LABELS[key]
    if not window:
        return None
    if len(window) < 3:
        return f"{label}: too few points to tell ({len(window)} in the last third of training)"
    values = [p[key] for p in window]
    span = max(values) - min(values)
    where = f"iterations {window[0]['iteration']:,}-{window[-1]['iteration']:,}"
    if span <= tol:
        have = [p[key] for p in points if p.get(key) is not None]
        if max(have) - min(have) <= tol:
            return (
                f"{label} has not moved from its first point ({have[0]:.3f}; range {max(have) - min(have):.3f} "
                f"over all {len(have)} points): flat because it has not started learning, not because it converged"
            )
        return f"{label} has flattened (range {span:.3f} <= {tol} over {where}, ending at {values[-1]:.3f})"
    return f"{label} is still moving (range {span:.3f} > {tol} over {where}: {values[0]:.3f} -> {values[-1]:.3f})"


def curve_sentences(methods: Mapping[str, MethodResult]) -> list[str]:
    """One sentence per method with learning curves: flattening of pooled AUC and P→H share, eval cost."""
    out = []
    for name, points in _curves(methods).items():
        parts = [t for t in (flattening(points, k) for k in FLAT_TOLERANCES) if t]
        entry = methods[name]
        cost, train = entry.curve_eval_seconds, entry.curve_train_seconds
        share = f" ({100 * cost / train:.1f}% of it)" if cost is not None and train else ""
        spent = (
            f"; the {len(points)} curve evaluations took {cost:.1f} s against {train:.1f} s of training{share}"
            if cost is not None and train is not None
            else ""
        )
        out.append(f"- {title(name)}: " + ("; ".join(parts) or "no curve metric measured") + spent + ".")
    return out


def learning_curves_figure(methods: Mapping[str, MethodResult], out: Path) -> None:
    """Pooled AUC, P→H share and changed pixels on the tune subset against training seconds, one line per
    method (exact-mask AUC dashed in the colour of its method)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="paper")
    curves = _curves(methods)
    fig, axes = plt.subplots(1, len(CURVE_PANELS), figsize=(4.2 * len(CURVE_PANELS), 3.6), squeeze=False)
    colors = dict(zip(curves, sns.color_palette("tab10", n_colors=max(3, len(curves)))))
    for ax, keys in zip(axes[0], CURVE_PANELS):
        for name, points in curves.items():
            for key, style in zip(keys, ("-", "--")):
                have = [p for p in points if p.get(key) is not None]
                if have:
                    label = title(name) + (" (exact masks)" if key.startswith("mask_") else "")
                    ax.plot(
                        [p["seconds"] for p in have],
                        [p[key] for p in have],
                        style,
                        marker=".",
                        color=colors[name],
                        label=label,
                    )
        ax.set(xlabel="training seconds (curve evaluations excluded)", ylabel=CURVE_LABELS[keys[0]])
    axes[0, 0].legend(fontsize=6)
    fig.suptitle("Learning curves on the tune subset", fontsize=9)
    fig.tight_layout()
    save_figure(fig, out)


def curves_section(record: RunRecord) -> list[str]:
    """The report's learning-curve section (figure and one sentence per method); empty without curves."""
    curves = _curves(record.methods)
    if not curves:
        return []
    n = max(len(p) for p in curves.values())
    train = record.config.get("train", {})
    return [
        "## Learning curves (tune subset)",
        f"Up to {n} points per method, every {train.get('eval_every')} iterations on the first "
        f"{train.get('curve_images')} tune images (half Pneumonia, half Healthy; seed {record.seeds[0]}). "
        "A metric has flattened when its range over the last third of training (the points from 2/3 of the "
        "last iteration on, with the point before them; at least 3) is at most "
        + ", ".join(f"{v} for {CURVE_LABELS[k]}" for k, v in FLAT_TOLERANCES.items())
        + "; a metric that never moved that far from its first point has not started learning.",
        "![learning curves](learning_curves.png)",
        "\n".join(curve_sentences(record.methods)),
    ]
