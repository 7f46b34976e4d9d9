"""The report lists skipped and missing images (issue 11, 5): count, first names, reason."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from stub_run import Identity, Judge

import bench.evaluate.judge
from bench import register_method, registry
from bench.cli.main import main
from bench.data.rsna import read_labels, split_patients


class _Identity(Identity):
    """The shared identity stand-in, registered here as ``t_report_identity``."""


@pytest.fixture()
def identity(monkeypatch: pytest.MonkeyPatch):
    register_method("t_report_identity")(_Identity)
    monkeypatch.setattr(bench.evaluate.judge, "get_evaluator", lambda cfg, data, progress=True, **kw: Judge())
    yield
    registry._REGISTRY.pop("t_report_identity", None)


def test_nan_width_row_and_missing_image_are_in_the_report(
    synth_root: Path, tmp_path: Path, identity, capsys: pytest.CaptureFixture
) -> None:
    """A NaN-width row used to leave report.md silent (only record.json had data.skipped: 1)."""
    root = tmp_path / "rsna"
    shutil.copytree(synth_root, root)
    csv = root / "stage_2_train_labels.csv"
    lines = csv.read_text().splitlines()
    row = next(i for i, line in enumerate(lines) if line.endswith(",1"))
    pid, x, y, _, h, t = lines[row].split(",")
    lines[row] = f"{pid},{x},{y},,{h},{t}"
    csv.write_text("\n".join(lines) + "\n")
    train = split_patients(read_labels(root).patients, 0.1, 0)["train"]
    gone = next(p.patient_id for p in train if p.domain == 0)
    (root / "stage_2_train_images" / f"{gone}.dcm").unlink()

    out = tmp_path / "runs"
    assert (
        main(
            [
                "run",
                "--preset",
                "smoke",
                "--methods",
                "t_report_identity",
                "--data",
                str(root),
                "--out",
                str(out),
                "--set",
                "train.device='cpu'",
            ]
        )
        == 0
    )
    run = next(out.iterdir())
    record = json.loads((run / "record.json").read_text())
    assert record["data"]["skipped"] == 1 and record["data"]["missing"] == 1
    assert record["data"]["problems"] == [
        {"file": str(csv), "row": row + 1, "reason": "Target is 1 but the box has an empty or NaN value"}
    ]
    assert record["data"]["missing_images"] == [f"{gone}.dcm"]
    report = (run / "report.md").read_text()
    section = report.split("## Data problems")[1].split("## Provenance")[0]
    assert "1 item(s) skipped and 1 image(s) missing" in section
    assert f"- `{csv}`, row {row + 1}: Target is 1 but the box has an empty or NaN value" in section
    assert f"Missing: `{gone}.dcm`" in section


def test_section_lists_the_first_ten_and_says_so() -> None:
    from bench.data.problems import data_problems_section

    problems = [{"file": "a.csv", "row": i, "reason": "bad"} for i in range(2, 22)]
    record = {"data": {"skipped": 25, "missing": 0, "problems": problems, "missing_images": []}}
    text = data_problems_section(record)
    assert "25 item(s) skipped and 0 image(s) missing" in text
    assert "Skipped (first 10):" in text and text.count("- `a.csv`, row") == 10
    assert "Missing" not in text.split("missing;")[1]
    assert data_problems_section({"data": {"skipped": 0, "missing": 0}}) == ""
