"""The record commands of the CLI: ``baseline set``, ``compare`` and ``history`` (SPEC 4)."""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path
from typing import Any

from bench import records
from bench.atomic import atomic_write_text
from bench.errors import BenchError


def _text(args: argparse.Namespace, attr: str, flag: str, default: str | None = None) -> str | None:
    """``args.<attr>``, or ``default`` when the namespace lacks it; an empty value is a BenchError.

    An empty option must not fall back to the default: ``--name ""`` would overwrite the default
    baseline.
    """
    value = getattr(args, attr, None)
    if value is None:
        return default
    if not str(value).strip():
        raise BenchError(
            f"{flag} is empty" + (f"; leave the option out for the default ({default})" if default else "")
        )
    return str(value)


def _folders(args: argparse.Namespace) -> tuple[Path, Path]:
    """The --runs and --baselines folders of a record command."""
    return (
        Path(_text(args, "runs", "--runs", str(records.DEFAULT_RUNS))),
        Path(_text(args, "baselines", "--baselines", str(records.DEFAULT_BASELINES))),
    )


def cmd_baseline_set(args: argparse.Namespace) -> int:
    """``baseline set RUN [--name NAME] [--fail-on RULE ...]``: copy a run's record and per-image values
    to a baseline, with the gate rules compare uses when given none."""
    run, name = _text(args, "run", "RUN"), _text(args, "name", "--name", "quick")
    runs_root, baselines = _folders(args)
    fail_on = getattr(args, "fail_on", None)
    dest = records.set_baseline(run, name, baselines, runs_root, fail_on)
    per_image = records.per_image_path(dest)
    extra = f" and {per_image}" if per_image.is_file() else " (the run has no per-image values)"
    print(f"baseline {name!r}: wrote {dest}{extra}")
    stored = records.stored_rules(dest)
    if stored:
        print(f"gate rules stored in {records.rules_path(dest)}: {', '.join(stored)}")
    else:
        print("no gate rules stored: compare uses the default gate (headline metrics) unless given --fail-on")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """``compare RUN [--baseline NAME] [--fail-on RULE ...] [--allow-different]``: print the diff under
    the gate in force; 1 on regression, 2 when the gate cannot judge (unlike runs, no metric covered)."""
    rules = records.parse_rules(getattr(args, "fail_on", None) or [])
    runs_root, baselines = _folders(args)
    run_path = records.resolve_run(_text(args, "run", "RUN"), runs_root)
    base_path = records.resolve_baseline(_text(args, "baseline", "--baseline", "quick"), baselines, runs_root)
    run_record, base_record = records.load_record(run_path), records.load_record(base_path)
    result = records.compare(
        run_record,
        base_record,
        records.load_per_image(run_path, missing_ok=True),
        records.load_per_image(base_path, missing_ok=True),
        rules,
        baseline_rules=None if rules else records.stored_rules(base_path),
        allow_different=bool(getattr(args, "allow_different", False)),
    )
    text = records.format_compare(result)
    print(text)
    out = _text(args, "out", "--out")
    if out is not None:
        atomic_write_text(out, text + "\n")
    return 1 if result.failed else 0


def cmd_history(args: argparse.Namespace) -> int:
    """``history [--metric M] [--method NAME] [--preset P] [--runs DIR] [--plot FILE.png]``: a metric over
    the runs of one preset."""
    metric = _text(args, "metric", "--metric", "pooled_auc")
    method = _text(args, "method", "--method")
    preset = _text(args, "preset", "--preset")
    runs_root = Path(_text(args, "runs", "--runs", str(records.DEFAULT_RUNS)))
    df = records.history(runs_root, metric, method, preset)
    for line in df.attrs.get("warnings", []):
        print(line, file=sys.stderr)
    if df.empty:
        if not df.attrs.get("n_runs"):
            print(f"no runs under {runs_root}")
            return 0
        shown = df.attrs.get("preset")
        raise BenchError(
            f"no run under {runs_root}"
            + (f" of preset {shown!r}" if shown != records.ALL_PRESETS else "")
            + f" has metric {metric!r}"
            + (f" for method {method!r}" if method else "")
        )
    shown = df.attrs["preset"]
    if shown == records.ALL_PRESETS:
        print("runs of every preset (not comparable with each other)")
    else:
        why = "" if preset else " (the newest run's; --preset NAME or --preset all for others)"
        print(f"runs of preset {shown!r}{why}")
    print(records.format_history(df))
    plot = _text(args, "plot", "--plot") or runs_root / f"history_{metric}.png"
    print(f"wrote {records.plot_history(df, plot)}")
    return 0


_HEADLINE_NAMES = ", ".join(m.key for m in records.HEADLINE_METRICS)
_GATE_HELP = textwrap.fill(
    "the gate: the rules given with --fail-on; else the rules stored with the baseline (baseline set "
    f"--fail-on); else the default gate: the headline metrics ({_HEADLINE_NAMES}) that both "
    f"records hold, of the methods in both records, each with tolerance {records.DEFAULT_TOLERANCE}. The output "
    "names the rules in force. A gate that covers no metric is an error (exit 2).",
    width=88,
    subsequent_indent="  ",
)

_COMPARE_EPILOG = (
    _GATE_HELP
    + """

like with like: a run of another preset or data (manifest) than the baseline is refused
  (exit 2) unless --allow-different; a config that differs in anything but the methods
  run is a warning naming the settings.

tolerance rules (--fail-on, repeatable or comma-separated):
  METRIC:abs=X     fail when METRIC got worse by more than X (absolute)
  METRIC:rel=Y%    fail when METRIC got worse by more than Y% of the baseline value
  METRIC is a metric name, '*' (every metric) or 'method/metric' (one method only).
  "Worse" follows each metric's direction (higher or lower is better); metrics without a
  direction never fail. A move beyond tolerance also has to be beyond noise: the paired
  bootstrap 95% CI of the per-image differences must exclude 0 (for pooled figures without
  per-image values: the run's value must lie outside the baseline's CI). A method of the
  baseline that is missing or failed in the run fails when a rule covers it (the default
  gate covers only methods present in both records). Metrics no rule covers are shown but
  never fail.

exit status: 0 no regression, 1 regression, 2 usage or data error, unlike runs, or a gate
  that covers no metric.
examples: python -m bench compare latest --baseline quick
          python -m bench compare latest --fail-on pooled_auc:abs=0.02 '*:rel=5%'"""
)


def _add_fail_on(p: argparse.ArgumentParser, help_text: str) -> None:
    p.add_argument("--fail-on", dest="fail_on", action="extend", nargs="+", metavar="RULE", help=help_text)


def _add_location_args(p: argparse.ArgumentParser, baselines: bool = True) -> None:
    """--runs (and --baselines) folder options."""
    p.add_argument(
        "--runs",
        default=str(records.DEFAULT_RUNS),
        metavar="DIR",
        help=f"folder of run folders, for run ids (default {records.DEFAULT_RUNS})",
    )
    if baselines:
        p.add_argument(
            "--baselines",
            default=str(records.DEFAULT_BASELINES),
            metavar="DIR",
            help=f"folder of named baselines (default {records.DEFAULT_BASELINES})",
        )


def add_record_commands(sub: Any) -> None:
    """Add the ``baseline set``, ``compare`` and ``history`` commands to an argparse subparsers object."""
    run_help = "run folder, its record.json, a run id or number under --runs (e.g. 0003), or 'latest'"
    baseline = sub.add_parser(
        "baseline",
        help="manage named baselines (committed copies of run records)",
        description="Named baselines are copies of run records in results/baselines/.",
    )
    bsub = baseline.add_subparsers(dest="baseline_command", required=True, metavar="{set}")
    p = bsub.add_parser(
        "set",
        help="make a run the named baseline",
        description="Copy a run's record.json to BASELINES/NAME.json and its per-image "
        "values to BASELINES/NAME.per_image.csv.gz.",
    )
    p.add_argument("run", metavar="RUN", help=run_help)
    p.add_argument("--name", default="quick", help="baseline name: letters, digits, '-', '_' (default quick)")
    _add_fail_on(
        p,
        "gate rules stored with the baseline (NAME.rules.json), used by compare when given none "
        "(rule syntax: compare --help); without them compare uses the default gate",
    )
    _add_location_args(p)
    p.set_defaults(func=cmd_baseline_set)

    p = sub.add_parser(
        "compare",
        help="compare a run against a baseline; exit 1 on regression",
        description="Print a Markdown table of every method x metric of a run against a\n"
        "baseline, with warnings when config or data differ.",
        epilog=_COMPARE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run", metavar="RUN", help=run_help)
    p.add_argument(
        "--baseline", default="quick", metavar="NAME", help="baseline name, record path or run id (default quick)"
    )
    _add_fail_on(
        p,
        "tolerance rule(s), see below; without them the baseline's stored rules or the default gate "
        "(give RUN before --fail-on)",
    )
    p.add_argument(
        "--allow-different",
        dest="allow_different",
        action="store_true",
        help="compare a run of another preset or data than the baseline (a warning instead of an error)",
    )
    p.add_argument("--out", metavar="FILE.md", help="also write the Markdown report to this file")
    _add_location_args(p)
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser(
        "history",
        help="one metric across the runs of a preset, per method",
        description="Table and plot of a metric over the runs of one preset in --runs, oldest first, with 95% CIs,\n"
        "each run's preset and config hash.",
    )
    p.add_argument("--metric", default="pooled_auc", help="metric name (default pooled_auc)")
    p.add_argument("--method", help="only this method (default: every method with the metric)")
    p.add_argument(
        "--preset",
        metavar="NAME",
        help=f"only runs of this preset (default: the newest run's preset; '{records.ALL_PRESETS}': every preset)",
    )
    p.add_argument("--plot", metavar="FILE.png", help="where to draw the plot (default <runs>/history_<metric>.png)")
    _add_location_args(p, baselines=False)
    p.set_defaults(func=cmd_history)
