"""Tests of the record commands of the CLI: ``baseline set``, ``compare``, ``history``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from record_factory import write_runs

from bench.cli.main import build_parser, main
from bench.cli.records import add_record_commands
from bench.errors import BenchError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench")
    add_record_commands(parser.add_subparsers(dest="command", required=True))
    return parser


def _cli(*argv: str) -> int:
    args = _parser().parse_args(list(argv))
    return args.func(args)


def test_cli_handlers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs, baselines = tmp_path / "runs", tmp_path / "baselines"
    _, _, worse = write_runs(runs, [0.80, 0.80, 0.60])
    loc = ["--runs", str(runs), "--baselines", str(baselines)]
    assert _cli("baseline", "set", "0001", "--name", "quick", *loc) == 0
    assert (baselines / "quick.json").is_file()
    assert _cli("compare", "0002", "--fail-on", "pooled_auc:abs=0.02", *loc) == 0
    assert "**PASSED**" in capsys.readouterr().out
    out_md = tmp_path / "cmp.md"
    code = _cli(
        "compare",
        str(worse),
        "--baseline",
        str(baselines / "quick.json"),
        "--fail-on",
        "pooled_auc:abs=0.02",
        "*:rel=50%",
        "--out",
        str(out_md),
        *loc,
    )
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


def test_history_of_empty_runs_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "runs").mkdir()
    assert main(["history", "--runs", str(tmp_path / "runs")]) == 0
    assert capsys.readouterr().out.strip() == f"no runs under {tmp_path / 'runs'}"


def test_cli_help_texts(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["compare", "--help"], ["history", "--help"], ["baseline", "set", "--help"]):
        with pytest.raises(SystemExit) as exc:
            build_parser().parse_args(argv)
        assert exc.value.code == 0
    assert "METRIC:rel=Y%" in capsys.readouterr().out


def test_baseline_set_with_empty_name_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs, baselines = tmp_path / "runs", tmp_path / "baselines"
    write_runs(runs, [0.80, 0.70])
    loc = ["--runs", str(runs), "--baselines", str(baselines)]
    assert main(["baseline", "set", "0001", *loc]) == 0
    quick = (baselines / "quick.json").read_bytes()
    capsys.readouterr()
    assert main(["baseline", "set", "0002", "--name", "", *loc]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: --name is empty; leave the option out for the default (quick)"
    assert (baselines / "quick.json").read_bytes() == quick  # the default baseline is untouched
    assert sorted(p.name for p in baselines.iterdir()) == ["quick.json"]


@pytest.mark.parametrize(
    "argv,flag",
    [
        (["compare", "0002", "--baseline", ""], "--baseline"),
        (["compare", ""], "RUN"),
        (["history", "--metric", " "], "--metric"),
    ],
)
def test_empty_options_do_not_fall_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], flag: str
) -> None:
    runs = tmp_path / "runs"
    write_runs(runs, [0.80, 0.70])
    assert main([*argv, "--runs", str(runs)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {flag} is empty") and len(err.splitlines()) == 1


def test_compare_with_a_string_ci_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = tmp_path / "runs"
    _, second = write_runs(runs, [0.80, 0.70])
    record = second / "record.json"
    rec = json.loads(record.read_text())
    rec["methods"]["pillet"]["metrics"]["pooled_auc"]["ci"] = ["0.68", 0.72]
    record.write_text(json.dumps(rec))
    code = main(["compare", "0002", "--baseline", "0001", "--fail-on", "pooled_auc:abs=0.01", "--runs", str(runs)])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"{record}: not a valid run record" in err and "metric 'pooled_auc': ci" in err and "non-number" in err


ROOT = Path(__file__).resolve().parents[2]


def test_compare_without_rules_gates_the_headline_metrics(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs, baselines = tmp_path / "runs", tmp_path / "baselines"
    write_runs(runs, [0.80, 0.80, 0.70])  # the third run's pooled AUC lies below the baseline's CI [0.78, 0.82]
    loc = ["--runs", str(runs), "--baselines", str(baselines)]
    assert main(["baseline", "set", "0001", "--name", "smoke", *loc]) == 0
    assert "compare uses the default gate" in capsys.readouterr().out
    assert main(["compare", "0002", "--baseline", "smoke", *loc]) == 0
    out = capsys.readouterr().out
    assert "Gate: default gate" in out and "pooled_auc:abs=0.01" in out
    assert out.rstrip().splitlines()[-1].startswith("**PASSED**") and "(rules: pooled_auc:abs=0.01)" in out
    assert main(["compare", "0003", "--baseline", "smoke", *loc]) == 1
    out = capsys.readouterr().out
    assert "Gate: default gate" in out and "**FAILED**: 1 regression(s): pillet/pooled_auc" in out


def test_baseline_rules_are_stored_and_used(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs, baselines = tmp_path / "runs", tmp_path / "baselines"
    first = write_runs(runs, [0.80, 0.80, 0.77])[0]
    loc = ["--runs", str(runs), "--baselines", str(baselines)]
    assert main(["baseline", "set", "0001", "--name", "smoke", "--fail-on", "pooled_auc:abs=0.05", *loc]) == 0
    assert json.loads((baselines / "smoke.rules.json").read_text()) == {"fail_on": ["pooled_auc:abs=0.05"]}
    assert (baselines / "smoke.json").read_bytes() == (first / "record.json").read_bytes()  # the record, untouched
    capsys.readouterr()
    assert main(["compare", "0003", "--baseline", "smoke", *loc]) == 0  # 0.03 worse: within the stored 0.05
    assert "Gate: rules stored with the baseline: pooled_auc:abs=0.05" in capsys.readouterr().out
    assert main(["compare", "0003", "--baseline", "smoke", "--fail-on", "pooled_auc:abs=0.01", *loc]) == 1
    assert "Gate: rules given (--fail-on): pooled_auc:abs=0.01" in capsys.readouterr().out
    assert main(["baseline", "set", "0001", "--name", "smoke", "--fail-on", "dice:abs=0.01", *loc]) == 2
    assert "--fail-on 'dice:abs=0.01' matches no metric of run 0001" in capsys.readouterr().err
    assert (baselines / "smoke.rules.json").is_file()  # the refused command changed nothing
    assert main(["baseline", "set", "0001", "--name", "smoke", *loc]) == 0
    assert not (baselines / "smoke.rules.json").exists()  # a new baseline without rules drops the stale ones
    (baselines / "smoke.rules.json").write_text('{"fail_on": "pooled_auc"}')
    assert main(["compare", "0003", "--baseline", "smoke", *loc]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "smoke.rules.json: not a baseline rules file" in err


def test_quick_run_against_the_standard_baseline_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["compare", str(ROOT / "results" / "quick" / "record.json"), "--baseline", "standard"]
    assert main([*argv, "--baselines", str(ROOT / "results" / "baselines")]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip()
    assert len(err.splitlines()) == 1
    assert "(preset 'quick'," in err and "(preset 'standard'," in err and "not like with like" in err
    assert "--allow-different" in err


@pytest.mark.parametrize("preset", ["smoke", "quick", "standard"])
def test_committed_baselines_pass_the_default_gate_against_themselves(
    preset: str, capsys: pytest.CaptureFixture[str]
) -> None:
    baselines = ROOT / "results" / "baselines"
    argv = ["compare", str(baselines / f"{preset}.json"), "--baseline", preset, "--baselines", str(baselines)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    if (baselines / f"{preset}.rules.json").is_file():  # smoke: the project's own gate (docs/decisions.md)
        assert "Gate: rules stored with the baseline" in out and "ref_prior/lm_auc:abs=0.01" in out
    else:
        assert "Gate: default gate" in out and "pooled_auc:abs=0.01" in out and "accuracy_p2h:abs=0.01" in out


def test_history_by_preset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = tmp_path / "runs"
    write_runs(runs, [0.70, 0.75, 0.80, 0.85], presets=["quick", "smoke", "quick", "smoke"])
    plot = ["--plot", str(tmp_path / "h.png")]
    assert main(["history", "--runs", str(runs), *plot]) == 0
    out = capsys.readouterr().out
    assert out.startswith("runs of preset 'smoke' (the newest run's;")
    assert "| run | created | commit | preset | config | method | pooled_auc | 95% CI |" in out
    assert out.count("| smoke | cfg-smoke | pillet |") == 2 and "| quick |" not in out
    assert main(["history", "--runs", str(runs), "--preset", "quick", *plot]) == 0
    out = capsys.readouterr().out
    assert out.count("| quick | cfg-quick | pillet |") == 2 and "| smoke |" not in out
    assert main(["history", "--runs", str(runs), "--preset", "all", *plot]) == 0
    assert capsys.readouterr().out.count("| pillet |") == 4
    assert main(["history", "--runs", str(runs), "--preset", "paper", *plot]) == 2
    assert capsys.readouterr().err.strip() == f"error: no run under {runs} of preset 'paper' has metric 'pooled_auc'"
