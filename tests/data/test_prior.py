"""``data prior``: the labels-only location prior, on a folder holding only the two CSVs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from bench.config import DataConfig, EvalConfig
from bench.data.domains import PNEUMONIA
from bench.data.prior import box_masks, labels_prior
from bench.data.rsna import read_labels, splits_for


def write_csvs(root: Path, n: int = 200, seed: int = 0) -> None:
    """Half Pneumonia patients with one or two boxes in 1024 px frames, half healthy."""
    rng = np.random.default_rng(seed)
    rows, classes = ["patientId,x,y,width,height,Target"], ["patientId,class"]
    for i in range(n):
        pid = f"p{i:04d}"
        if i % 2:
            classes.append(f"{pid},Lung Opacity")
            for _ in range(1 + i % 3 // 2):
                x, y = rng.integers(100, 600, 2)
                rows.append(f"{pid},{x},{y},{rng.integers(100, 300)},{rng.integers(100, 400)},1")
        else:
            classes.append(f"{pid},Normal")
            rows.append(f"{pid},,,,,0")
    root.mkdir(parents=True, exist_ok=True)
    (root / "stage_2_train_labels.csv").write_text("\n".join(rows) + "\n")
    (root / "stage_2_detailed_class_info.csv").write_text("\n".join(classes) + "\n")


def test_prior_matches_sklearn_and_scores_one_half(tmp_path: Path) -> None:
    write_csvs(tmp_path)
    cfg, ev = DataConfig(root=str(tmp_path), size=32), EvalConfig(n_bootstrap=100)
    figures, counts = labels_prior(tmp_path, cfg, ev)
    parts = splits_for(read_labels(tmp_path), cfg)
    train = [p for p in parts["train"] if p.domain == PNEUMONIA]
    test = [p for p in parts["test"] if p.domain == PNEUMONIA]
    assert (counts["train"], counts["test"], counts["image_size"]) == (len(train), len(test), 1024)
    prior = box_masks(train, 1024, 32).mean(axis=0)
    truth = box_masks(test, 1024, 32)
    expected = roc_auc_score(truth.reshape(-1), np.broadcast_to(prior, truth.shape).reshape(-1))
    assert figures["pooled_auc"].value == pytest.approx(expected, abs=1e-6)
    assert figures["pooled_auc"].ci[0] <= figures["pooled_auc"].value <= figures["pooled_auc"].ci[1]
    assert figures["lm_auc"].value == 0.5


def test_cli_json_on_a_folder_without_images(tmp_path: Path) -> None:
    write_csvs(tmp_path)
    out = subprocess.run(
        [sys.executable, "-m", "bench", "data", "prior", "--data", str(tmp_path), "--size", "32", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    obj = json.loads(out.stdout)
    assert {"pooled_auc", "pooled_ap", "pixel_auc", "hit_rate", "lm_auc"} <= set(obj)
    assert set(obj["lm_auc"]) == {"value", "ci", "n", "direction", "group"} and obj["lm_auc"]["value"] == 0.5


def test_no_pneumonia_in_test_is_one_line(tmp_path: Path) -> None:
    write_csvs(tmp_path, n=4)
    out = subprocess.run(
        [sys.executable, "-m", "bench", "data", "prior", "--data", str(tmp_path)], capture_output=True, text=True
    )
    assert out.returncode == 2 and "need Pneumonia patients with boxes" in out.stderr
    assert "Traceback" not in out.stderr
