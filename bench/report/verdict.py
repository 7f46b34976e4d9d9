"""The report's verdict section: the lm_auc leaderboard, methods set apart, one sentence per method.

Rendered from the record's ``verdict`` (built by :mod:`bench.evaluate.verdict`) and ``agreement``;
nothing is recomputed here.
"""

from __future__ import annotations

from bench.evaluate.figure import Figure, MetricId
from bench.evaluate.standing import Difference, Leaderboard, Standing
from bench.records.record import RunRecord
from bench.registry import method_title as _title
from bench.report.markdown import fmt
from bench.report.markdown import markdown_table as _table

TRUTHS = {"boxes": "the boxes", "masks": "the exact lesion masks"}
VERDICT_INTRO = (
    "Methods ranked by the location-matched AUC (lm_auc, SPEC 3.3): the pooled pixel AUC restricted to pairs of "
    "pixels at the same location in different Pneumonia images, so that any map that ignores the image (the "
    "location prior, a constant) scores exactly 0.5 and only knowing where the lesion is *in this image* scores "
    "above it. Differences are paired bootstrap CIs over the same resamples of test images; a difference whose CI "
    "holds 0 is a tie. A method is ranked only when it learned its task (a translation judged Healthy more often "
    "than the untranslated images; a classifier with a useful test AUC) and its lm_auc CI lies above 0.5."
)
LEARNED = {True: "learned its task", False: "did not learn its task", None: "has no task to check"}


def _num(v: float | None, digits: int = 3) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def _diff(d: Difference | None) -> str:
    if not d:
        return "—"
    text = f"{d.value:+.3f} [{d.ci[0]:+.3f}, {d.ci[1]:+.3f}]"
    if d.order_share is not None:
        text += f", order kept in {100 * d.order_share:.0f}% of draws"
    return text + (" (tied)" if d.tied else "")


def _ci(s: Standing) -> str:
    return fmt(Figure(s.value, s.ci, 0, "higher", ""))


def leaderboard_table(board: Leaderboard, record: RunRecord) -> str:
    """Rank, method, lm_auc, differences to the next method and the best reference, pooled AUC beside."""
    pooled = MetricId("pooled_auc", target=board.target)
    ref = board.best_reference
    rows = []
    for s in board.ranked:
        rows.append(
            [
                str(s.rank),
                _title(s.method),
                _ci(s),
                _diff(s.to_next),
                _diff(s.to_reference),
                fmt(record.methods[s.method].metrics.get(pooled)),
            ]
        )
    header = ["rank", "method", "lm_auc", "Δ to the next", f"Δ to {_title(ref) if ref else 'best reference'}"]
    header.append("pooled AUC (paper's figure)")
    return _table(header, rows) if rows else "_No method is ranked: none learned its task and localizes beyond 0.5._"


def set_apart_line(board: Leaderboard) -> str | None:
    """The methods left out of the ranking, in one line; None when every method is ranked."""
    names = [_title(s.method) for s in board.set_apart]
    return f"Not trained far enough, left out of the ranking: {', '.join(names)}." if names else None


def method_sentences(board: Leaderboard, preset: str) -> list[str]:
    """One plain sentence per method: learned its task or not, localizes beyond the prior or not, its
    rank, or that it was not trained far enough with the preset to try."""
    n = len(board.ranked)
    out = []
    for s in board.ranked + board.set_apart:
        beyond = "localizes beyond the prior" if s.beyond_prior else "does not localize beyond the prior"
        if s.rank is not None:
            place = f"rank {s.rank} of {n}"
            if s.to_next and s.to_next.tied:
                place += f", tied with {_title(s.to_next.other)}"
        else:
            hint = f"; try `--preset {s.next_preset}`" if s.next_preset else ""
            place = f"**not trained far enough** at preset `{preset}`{hint}"
        out.append(
            f"- {_title(s.method)} {LEARNED[s.learned]} ({s.learned_evidence}); it {beyond} (lm_auc {_ci(s)}); {place}."
        )
    return out


def agreement_line(record: RunRecord) -> str | None:
    """Kendall's tau of this run's order against the committed standard record's, when computed."""
    a = record.agreement
    if not a or a.kendall_tau is None:
        return None
    return (
        f"Agreement with the committed `{a.other_preset}` record (`{a.other_path or ''}`, run "
        f"`{a.other_run}`): Kendall's tau {a.kendall_tau:.2f} between the two orders of the "
        f"{len(a.methods)} methods on {a.metric} (1: the same order)"
        + (
            f"; over the {len(a.ranked_methods)} methods this run ranks, {a.ranked_tau:.2f}."
            if a.ranked_methods and a.ranked_tau is not None
            else "."
        )
    )


def verdict_section(record: RunRecord) -> list[str]:
    """The report's verdict: leaderboard per truth, methods set apart, sentences, agreement."""
    boards = record.verdict or {}
    if not boards:
        return []
    preset = record.config["preset"]
    parts = ["## Verdict: who localizes beyond the prior", VERDICT_INTRO]
    for board in boards.values():
        parts.append(f"Against {TRUTHS[board.target]}:")
        parts.append(leaderboard_table(board, record))
        parts += [line for line in (set_apart_line(board),) if line]
    first = next(iter(boards.values()))
    parts += [f"In plain words (against {TRUTHS[first.target]}):", "\n".join(method_sentences(first, preset))]
    parts += [line for line in (agreement_line(record),) if line]
    return parts
