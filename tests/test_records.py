"""Tests of bench.records: record files, baselines, compare (tolerance + noise), history, CLI."""
from __future__ import annotations

import argparse
import gzip
import json
import re
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from bench import records as R
from bench.errors import BenchError

N_PATIENTS = 40
COMMIT_A = "a" * 40
COMMIT_B = "b" * 40


def entry(value: float | None, ci: tuple[float, float] | None = None, direction: str = "higher",
          group: str = "localization") -> dict[str, Any]:
    """A metric entry with a CI of +-0.02 unless given."""
    if ci is None and value is not None:
        ci = (value - 0.02, value + 0.02)
    return R.metric_entry(value, ci, N_PATIENTS, direction, group, value, None)


def make_record(run_id: str = "0001_aaaaaaa_20240101T000000Z", metrics: dict[str, dict] | None = None,
                commit: str | None = COMMIT_A, config_hash: str = "cfg1", manifest: str = "data1",
                extra_methods: dict[str, dict] | None = None) -> dict[str, Any]:
    """A complete schema-1 record with one method 'pillet' (and optional others)."""
    metrics = metrics if metrics is not None else {"pooled_auc": entry(0.80), "per_image_auc": entry(0.80)}
    methods = {"pillet": {"status": "ok", "error": None, "metrics": metrics}}
    methods.update(extra_methods or {})
    return {
        "schema": 1, "run_id": run_id, "created": "2024-01-01T00:00:00+00:00", "commit": commit,
        "dirty": False, "config": {"preset": "smoke", "train": {"iterations": 10}},
        "config_hash": config_hash, "seeds": [0], "versions": R.versions(), "device": "cpu (2 threads)",
        "data": {"root": "synthetic", "synthetic": True, "manifest_hash": manifest,
                 "n_val": {"pneumonia": N_PATIENTS, "healthy": N_PATIENTS}},
        "times": {"data": 0.5, "train pillet": 3.0}, "evaluator": {"threshold": 0.5},
        "methods": methods,
    }


def per_image(values: dict[str, np.ndarray], method: str = "pillet") -> pd.DataFrame:
    """Long per-image table for ``method`` from metric -> values over patients p0..pN."""
    rows = [(method, 0, f"p{i}", "pneumonia", metric, float(v))
            for metric, vals in values.items() for i, v in enumerate(vals)]
    return pd.DataFrame(rows, columns=R.PER_IMAGE_COLUMNS)


def base_values(metric: str = "per_image_auc", centre: float = 0.80) -> np.ndarray:
    """Reproducible per-image values around ``centre``."""
    return centre + np.random.default_rng(1).normal(0, 0.05, N_PATIENTS)


def noisy_shift(base: np.ndarray, shift: float, sd: float) -> np.ndarray:
    """``base`` plus zero-mean noise of ``sd`` plus exactly ``shift`` on average."""
    noise = np.random.default_rng(2).normal(0, sd, base.size)
    return base + noise - noise.mean() + shift


# Environment helpers
# --------------------------------------------------------------------------------------------


def test_next_run_dir_numbering(tmp_path: Path) -> None:
    now = datetime(2024, 5, 1, 12, 30, 5, tzinfo=timezone.utc)
    first = R.next_run_dir(tmp_path / "runs", COMMIT_A, False, now)
    assert first.name == "0001_aaaaaaa_20240501T123005Z"
    first.mkdir(parents=True)
    (tmp_path / "runs" / "0007_bbbbbbb_20240101T000000Z").mkdir()
    (tmp_path / "runs" / ".0009_tmp").mkdir()  # hidden temporary folders do not count
    second = R.next_run_dir(tmp_path / "runs", None, True, datetime(2024, 5, 1, 14, 30, 5))
    assert second.name == "0008_nogit-dirty_20240501T143005Z"


def test_git_state_outside_and_inside_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert R.git_state(tmp_path) == (None, False)
    if shutil.which("git") is None:
        pytest.skip("git not installed")
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q"], check=True)
    (tmp_path / "f.txt").write_text("1")
    subprocess.run([*git, "add", "f.txt"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "x"], check=True)
    commit, dirty = R.git_state(tmp_path)
    assert commit is not None and len(commit) == 40 and not dirty
    (tmp_path / "f.txt").write_text("2")
    assert R.git_state(tmp_path) == (commit, True)


def test_versions_and_device() -> None:
    v = R.versions()
    assert set(v) == {"python", *R.VERSION_PACKAGES}
    assert v["numpy"] == np.__version__
    assert R.device_description("cpu").startswith("cpu (")


# Record files
# --------------------------------------------------------------------------------------------


def test_write_load_round_trip(tmp_path: Path) -> None:
    rec = make_record()
    rec["methods"]["pillet"]["metrics"]["dice"] = {**entry(0.5), "value": np.float32(np.nan), "n": np.int64(3)}
    run_dir = tmp_path / "runs" / "0001_aaaaaaa_20240101T000000Z"
    path = R.write_record(run_dir, rec)
    assert path == run_dir / "record.json"
    back = R.load_record(run_dir)
    assert back["methods"]["pillet"]["metrics"]["dice"]["value"] is None  # NaN stored as null
    assert back["methods"]["pillet"]["metrics"]["dice"]["n"] == 3
    assert back["methods"]["pillet"]["metrics"]["pooled_auc"] == rec["methods"]["pillet"]["metrics"]["pooled_auc"]
    assert R.load_record(path) == back
    assert R.load_record("0001", runs_root=tmp_path / "runs") == back
    assert R.load_record("1", runs_root=tmp_path / "runs") == back
    assert R.load_record("latest", runs_root=tmp_path / "runs") == back
    assert R.load_record(run_dir.name, runs_root=tmp_path / "runs") == back
    frame = per_image({"per_image_auc": base_values()})
    R.write_per_image(run_dir, frame)
    loaded = R.load_per_image(run_dir)
    pd.testing.assert_frame_equal(loaded, frame)


def test_load_record_errors_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="nope"):
        R.load_record(tmp_path / "nope")
    run_dir = tmp_path / "0001_x"
    run_dir.mkdir()
    with pytest.raises(BenchError, match="record.json: run record not found"):
        R.load_record(run_dir)
    (run_dir / "record.json").write_text("{not json")
    with pytest.raises(BenchError, match=r"0001_x/record.json: not a valid run record \(bad JSON"):
        R.load_record(run_dir)
    rec = make_record()
    del rec["config_hash"]
    (run_dir / "record.json").write_text(json.dumps(rec))
    with pytest.raises(BenchError, match="missing key.*config_hash"):
        R.load_record(run_dir)
    (run_dir / "record.json").write_text(json.dumps({**make_record(), "schema": 2}))
    with pytest.raises(BenchError, match="schema 2"):
        R.load_record(run_dir / "record.json")
    with pytest.raises(BenchError, match="refusing"):
        R.write_record(run_dir, {"schema": 1})


def test_set_baseline_writes_both_files(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "0001_aaaaaaa_20240101T000000Z"
    R.write_record(run_dir, make_record())
    R.write_per_image(run_dir, per_image({"per_image_auc": base_values()}))
    dest = R.set_baseline(run_dir, "quick", tmp_path / "baselines")
    assert dest == tmp_path / "baselines" / "quick.json"
    assert R.load_record(dest) == R.load_record(run_dir)
    gz = tmp_path / "baselines" / "quick.per_image.csv.gz"
    assert gzip.decompress(gz.read_bytes()) == (run_dir / "per_image.csv").read_bytes()
    pd.testing.assert_frame_equal(R.load_per_image(dest), R.load_per_image(run_dir))
    with pytest.raises(BenchError, match="baseline name"):
        R.set_baseline(run_dir, "bad name!", tmp_path / "baselines")


# Compare
# --------------------------------------------------------------------------------------------


def _compare(base_metrics: dict, run_metrics: dict, base_pi: dict | None, run_pi: dict | None,
             rules: list[str], **kw: Any) -> R.CompareResult:
    base = make_record(metrics=base_metrics)
    run = make_record("0002_bbbbbbb_20240102T000000Z", metrics=run_metrics, commit=COMMIT_B, **kw)
    return R.compare(run, base, per_image(run_pi) if run_pi else None,
                     per_image(base_pi) if base_pi else None, rules)


RULES = ["pooled_auc:abs=0.02", "per_image_auc:abs=0.02"]


def test_identical_record_passes() -> None:
    rec = make_record()
    pi = per_image({"per_image_auc": base_values()})
    result = R.compare(rec, rec, pi, pi, RULES)
    assert not result.failed and result.regressions == []
    assert any("same commit" in w for w in result.warnings)
    text = R.format_compare(result)
    assert "| method | metric | baseline | run | delta | change | status |" in text
    assert "= same" in text and "**PASSED**" in text


def test_worse_record_fails() -> None:
    base = base_values()
    result = _compare({"pooled_auc": entry(0.80), "per_image_auc": entry(0.80)},
                      {"pooled_auc": entry(0.60), "per_image_auc": entry(0.60)},
                      {"per_image_auc": base}, {"per_image_auc": noisy_shift(base, -0.2, 0.02)}, RULES)
    assert result.failed
    assert {(r.method, r.metric) for r in result.regressions} == {("pillet", "pooled_auc"), ("pillet", "per_image_auc")}
    by_metric = {r.metric: r for r in result.rows}
    assert "paired" in by_metric["per_image_auc"].status
    assert "outside baseline CI" in by_metric["pooled_auc"].status
    assert by_metric["pooled_auc"].change == "▼ worse"
    text = R.format_compare(result)
    assert "**FAILED**" in text and "-0.2000 (-25.0%)" in text


def test_worsening_within_tolerance_passes() -> None:
    base = base_values()
    result = _compare({"pooled_auc": entry(0.80), "per_image_auc": entry(0.80)},
                      {"pooled_auc": entry(0.79), "per_image_auc": entry(0.78)},
                      {"per_image_auc": base}, {"per_image_auc": noisy_shift(base, -0.02, 0.001)}, RULES)
    assert not result.failed
    assert all("within tolerance" in r.status for r in result.rows)


def test_worsening_within_noise_passes() -> None:
    base = base_values()
    result = _compare({"pooled_auc": entry(0.80, (0.70, 0.90)), "per_image_auc": entry(0.80)},
                      {"pooled_auc": entry(0.75), "per_image_auc": entry(0.77)},
                      {"per_image_auc": base}, {"per_image_auc": noisy_shift(base, -0.03, 0.3)}, RULES)
    assert not result.failed
    by_metric = {r.metric: r for r in result.rows}
    assert "within noise" in by_metric["per_image_auc"].status and "paired" in by_metric["per_image_auc"].status
    assert "inside baseline CI" in by_metric["pooled_auc"].status


def test_improvement_passes() -> None:
    base = base_values()
    result = _compare({"pooled_auc": entry(0.60), "per_image_auc": entry(0.60)},
                      {"pooled_auc": entry(0.80), "per_image_auc": entry(0.80)},
                      {"per_image_auc": base}, {"per_image_auc": noisy_shift(base, 0.2, 0.02)}, RULES)
    assert not result.failed
    assert all(r.change == "▲ better" and r.status == "ok" for r in result.rows)


def test_lower_is_better_metric_fails_when_it_rises() -> None:
    base = base_values(centre=0.2)
    worse = _compare({"change_rate": entry(0.20, direction="lower")}, {"change_rate": entry(0.30, direction="lower")},
                     {"change_rate": base}, {"change_rate": noisy_shift(base, 0.1, 0.02)}, ["change_rate:abs=0.01"])
    assert worse.failed and worse.rows[0].change == "▼ worse"
    better = _compare({"change_rate": entry(0.30, direction="lower")}, {"change_rate": entry(0.20, direction="lower")},
                      {"change_rate": base}, {"change_rate": noisy_shift(base, -0.1, 0.02)}, ["change_rate:abs=0.01"])
    assert not better.failed and better.rows[0].change == "▲ better"


def test_direction_none_and_ungated_metrics_never_fail() -> None:
    result = _compare({"seconds": entry(10.0, direction="none"), "dice": entry(0.5)},
                      {"seconds": entry(50.0, direction="none"), "dice": entry(0.1)},
                      None, None, ["seconds:abs=1"])
    assert not result.failed
    by_metric = {r.metric: r for r in result.rows}
    assert by_metric["seconds"].status == "not judged" and by_metric["seconds"].change == "↑"
    assert by_metric["dice"].status == "not gated" and by_metric["dice"].change == "▼ worse"


def test_relative_wildcard_rule() -> None:
    small = _compare({"pooled_auc": entry(0.80)}, {"pooled_auc": entry(0.78)}, None, None, ["*:rel=5%"])
    assert not small.failed  # 2.5% worse
    large = _compare({"pooled_auc": entry(0.80)}, {"pooled_auc": entry(0.70)}, None, None, ["*:rel=5%"])
    assert large.failed and "rel 5%" in large.rows[0].status  # 12.5% worse, outside the CI
    other = _compare({"pooled_auc": entry(0.80)}, {"pooled_auc": entry(0.70)}, None, None, ["stargan/pooled_auc:abs=0"])
    assert not other.failed  # the rule names another method
    assert any("matches no metric" in w for w in other.warnings)
    mine = _compare({"pooled_auc": entry(0.80)}, {"pooled_auc": entry(0.70)}, None, None,
                    ["*:abs=0.5", "pillet/pooled_auc:abs=0.01"])
    assert mine.failed  # the method-specific rule wins over the wildcard


def test_missing_or_failed_method_fails() -> None:
    stargan = {"stargan": {"status": "ok", "error": None, "metrics": {"pooled_auc": entry(0.7)}}}
    base = make_record(extra_methods=stargan)
    missing = make_record("0002_bbbbbbb_20240102T000000Z", commit=COMMIT_B)
    result = R.compare(missing, base, None, None, ["*:abs=0.02"])
    assert result.failed and result.regressions[0].method == "stargan"
    assert "missing in run" in result.regressions[0].status
    assert not R.compare(missing, base, None, None, ["pillet/*:abs=0.02"]).failed  # no rule covers stargan
    failed = make_record("0002_bbbbbbb_20240102T000000Z", commit=COMMIT_B,
                         extra_methods={"stargan": {"status": "failed", "error": "RuntimeError: boom", "metrics": {}}})
    result = R.compare(failed, base, None, None, ["pooled_auc:abs=0.02"])
    assert result.failed and "RuntimeError: boom" in result.regressions[0].status


def test_warnings_on_different_config_and_data() -> None:
    result = _compare({"pooled_auc": entry(0.8)}, {"pooled_auc": entry(0.8)}, None, None, [],
                      config_hash="cfg2", manifest="data2")
    assert not result.failed
    assert any(w.startswith("warning: config differs") for w in result.warnings)
    assert any(w.startswith("warning: data differs") for w in result.warnings)
    assert not any("same commit" in w for w in result.warnings)
    assert all(w.startswith("warning:") for w in result.warnings)


@pytest.mark.parametrize("text", ["pooled_auc", "pooled_auc:abs=x", "pooled_auc:rel=5", "pooled_auc:abs=2%",
                                  ":abs=1", "a/b/c:abs=1", "pooled_auc:abs=-1", "pooled_auc:max=1"])
def test_bad_rule_text(text: str) -> None:
    with pytest.raises(BenchError, match="--fail-on"):
        R.parse_rule(text)
    with pytest.raises(BenchError, match=re.escape(text)):
        R.compare(make_record(), make_record(), None, None, [text])


def test_rule_parsing() -> None:
    rules = R.parse_rules(["pooled_auc:abs=0.02,*:rel=5%", "pillet/dice:abs=1e-3"])
    assert [(r.method, r.metric, r.kind, r.amount) for r in rules] == [
        (None, "pooled_auc", "abs", 0.02), (None, "*", "rel", 0.05), ("pillet", "dice", "abs", 0.001)]


def test_per_image_alias_hit_rate() -> None:
    base = (np.arange(N_PATIENTS) % 2).astype(float)
    run = np.zeros(N_PATIENTS)
    result = _compare({"hit_rate": entry(0.5)}, {"hit_rate": entry(0.0)}, {"hit": base}, {"hit": run},
                      ["hit_rate:abs=0.1"])
    assert result.failed and "paired" in result.rows[0].status


# History
# --------------------------------------------------------------------------------------------


def _write_runs(runs: Path, values: list[float]) -> list[Path]:
    out = []
    for i, v in enumerate(values):
        run_dir = R.next_run_dir(runs, COMMIT_A, i == 1, datetime(2024, 1, 1 + i, tzinfo=timezone.utc))
        rec = make_record(run_dir.name, metrics={"pooled_auc": entry(v)})
        rec["dirty"] = i == 1
        R.write_record(run_dir, rec)
        out.append(run_dir)
    return out


def test_history_three_runs_and_plot(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    _write_runs(runs, [0.70, 0.75, 0.80])
    broken = runs / "0004_ccccccc_20240105T000000Z"
    broken.mkdir()
    (broken / "record.json").write_text("[")
    df = R.history(runs, "pooled_auc", "pillet")
    assert list(df["value"]) == pytest.approx([0.70, 0.75, 0.80])
    assert list(df["run_id"].str[:4]) == ["0001", "0002", "0003"]
    assert list(df["commit"]) == ["aaaaaaa", "aaaaaaa-dirty", "aaaaaaa"]
    assert list(df["ci_lo"]) == pytest.approx([0.68, 0.73, 0.78])
    assert len(df.attrs["warnings"]) == 1 and df.attrs["warnings"][0].startswith("warning: skipped 0004")
    table = R.format_history(df)
    assert table.count("\n") == 4 and "| 0.7500 | [0.7300, 0.7700] |" in table
    png = R.plot_history(df, tmp_path / "hist.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# Command line
# --------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench")
    R.add_record_commands(parser.add_subparsers(dest="command", required=True))
    return parser


def _cli(*argv: str) -> int:
    args = _parser().parse_args(list(argv))
    return args.func(args)


def test_cli_handlers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs, baselines = tmp_path / "runs", tmp_path / "baselines"
    first, _, worse = _write_runs(runs, [0.80, 0.80, 0.60])
    loc = ["--runs", str(runs), "--baselines", str(baselines)]
    assert _cli("baseline", "set", "0001", "--name", "quick", *loc) == 0
    assert (baselines / "quick.json").is_file()
    assert _cli("compare", "0002", "--fail-on", "pooled_auc:abs=0.02", *loc) == 0
    assert "**PASSED**" in capsys.readouterr().out
    out_md = tmp_path / "cmp.md"
    code = _cli("compare", str(worse), "--baseline", str(baselines / "quick.json"),
                "--fail-on", "pooled_auc:abs=0.02", "*:rel=50%", "--out", str(out_md), *loc)
    assert code == 1
    assert "**FAILED**" in capsys.readouterr().out and "**FAILED**" in out_md.read_text()
    with pytest.raises(BenchError, match="oops"):
        _cli("compare", "0002", "--fail-on", "oops", *loc)
    with pytest.raises(BenchError, match="no baseline 'nightly'"):
        _cli("compare", "0002", "--baseline", "nightly", *loc)
    assert _cli("history", "--runs", str(runs), "--method", "pillet", "--plot", str(tmp_path / "h.png")) == 0
    out = capsys.readouterr().out
    assert out.count("| pillet |") == 3 and (tmp_path / "h.png").is_file()
    with pytest.raises(BenchError, match="no run .* has metric 'nope'"):
        _cli("history", "--runs", str(runs), "--metric", "nope")


def test_cli_help_texts(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["compare", "--help"], ["history", "--help"], ["baseline", "set", "--help"]):
        with pytest.raises(SystemExit) as exc:
            _parser().parse_args(argv)
        assert exc.value.code == 0
    assert "METRIC:rel=Y%" in capsys.readouterr().out
