"""Evaluation, report and run folder, driven by small test methods (no training needed)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import bench.evaluator
import bench.registry as registry
from bench import Method, register_method
from bench.cli import main
from bench.config import Config
from bench.evaluate import Outputs, MethodEval, localization_figures, translation_figures
from bench.pipeline import run_benchmark


class _Identity(Method):
    """Translates nothing away (G(x) = x); the lesion map is the brightness."""

    translates = True

    def fit(self, ctx) -> None:
        pass

    def translate(self, x: torch.Tensor, target) -> torch.Tensor:
        return x.clone()

    def localize(self, x: torch.Tensor) -> torch.Tensor:
        return (x[:, 0] + 1) / 2

    def state_dict(self) -> dict:
        return {"w": torch.zeros(1)}

    def load_state_dict(self, state: dict) -> None:
        pass


class _Broken(_Identity):
    """Fails when evaluated."""

    def localize(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("deliberate failure")


class _Judge:
    """Stub evaluator: P(pneumonia) = 1 for every image, so nothing is judged Healthy."""

    threshold = 0.5

    def probs(self, images: torch.Tensor) -> np.ndarray:
        return np.ones(len(images))

    def describe(self) -> dict:
        return {"threshold": self.threshold, "threshold_source": "tune", "test_auc": 0.5}


@pytest.fixture()
def test_methods(monkeypatch: pytest.MonkeyPatch):
    register_method("t_identity")(_Identity)
    register_method("t_broken")(_Broken)
    monkeypatch.setattr(bench.evaluator, "get_evaluator", lambda cfg, data, progress=True, **kw: _Judge())
    yield
    registry._REGISTRY.pop("t_identity", None)
    registry._REGISTRY.pop("t_broken", None)


def _outputs(maps: np.ndarray, masks: np.ndarray, domains: np.ndarray) -> Outputs:
    ids = [f"id{i}" for i in range(len(maps))]
    return Outputs(ids, domains, maps.astype(np.float32), masks.astype(bool), None)


def test_perfect_map_scores_one(smoke_cfg: Config) -> None:
    rng = np.random.default_rng(0)
    masks = np.zeros((6, 16, 16), bool)
    for i in range(6):
        y, x = rng.integers(0, 10, 2)
        masks[i, y:y + 5, x:x + 4] = True
    out = _outputs(masks.astype(float), masks, np.array([1, 1, 1, 1, 0, 0]))
    res = MethodEval()
    localization_figures(out, smoke_cfg.eval, res)
    for key in ("pooled_auc", "pixel_auc", "hit_rate", "miou", "dice", "energy"):
        assert res.figures[key].value == pytest.approx(1.0), key
    assert res.figures["pooled_auc"].n == 4
    assert set(res.per_image["hit_rate"]) == {"id0", "id1", "id2", "id3"}


def test_constant_map_is_chance(smoke_cfg: Config) -> None:
    masks = np.zeros((3, 8, 8), bool)
    masks[:, 2:5, 2:5] = True
    res = MethodEval()
    localization_figures(_outputs(np.ones((3, 8, 8)), masks, np.ones(3, int)), smoke_cfg.eval, res)
    assert res.figures["pooled_auc"].value == pytest.approx(0.5)
    assert res.figures["hit_rate"].value == 0.0  # first index (0, 0) lies outside the box


def test_translation_figures_known_rates(smoke_cfg: Config) -> None:
    out = _outputs(np.zeros((4, 10, 10)), np.zeros((4, 10, 10)), np.array([1, 1, 0, 0]))
    out.change = {0: np.array([0.1, 0.3, 0.0, 0.2]), 2: np.array([0.0, 0.1, 0.0, 0.0])}
    out.p_translated = np.array([0.9, 0.1, 0.2, 0.7])
    res = MethodEval()
    translation_figures(out, _Judge(), smoke_cfg.eval, res)
    assert res.figures["change_rate_p2h"].value == pytest.approx(0.2)
    assert res.figures["change_rate_h2h"].value == pytest.approx(0.1)
    assert res.figures["change_rate_all2h"].value == pytest.approx(0.15)
    assert res.figures["change_rate_tol2_p2h"].value == pytest.approx(0.05)
    assert res.figures["accuracy_p2h"].value == pytest.approx(0.5)  # 0.1 < 0.5 only
    assert res.figures["accuracy_all2h"].value == pytest.approx(0.5)
    assert res.figures["change_rate_p2h"].direction == "lower"


def test_run_writes_complete_folder_and_survives_a_failure(smoke_cfg: Config, tmp_path: Path, test_methods) -> None:
    result = run_benchmark("t_identity,t_broken", smoke_cfg, runs_root=tmp_path / "runs", progress=False)
    assert not result.ok
    run = result.run_dir
    assert run.parent == tmp_path / "runs" and run.name.startswith("0001_")
    for name in ("record.json", "per_image.csv", "report.md", "roc.png", "qualitative.png", "errors.log"):
        assert (run / name).is_file(), name
    record = json.loads((run / "record.json").read_text())
    ident = record["methods"]["t_identity"]
    assert ident["status"] == "ok"
    # G(x) = x: nothing changes, and the stub judge calls nothing Healthy
    assert ident["metrics"]["change_rate_all2h"]["value"] == 0.0
    assert ident["metrics"]["accuracy_p2h"]["value"] == 0.0
    assert record["evaluator"]["untranslated"]["accuracy_all2h"]["value"] == 0.0  # the stub judges all Pneumonia
    assert 0.0 <= ident["metrics"]["pooled_auc"]["value"] <= 1.0
    assert record["methods"]["t_broken"] == {"status": "failed", "error": "RuntimeError: deliberate failure", "metrics": {}}
    report = (run / "report.md").read_text()
    for heading in ("Table 1", "Table 2", "Table 3", "roc.png", "qualitative.png", "Failures", "Provenance",
                    "real images, not translated"):
        assert heading in report
    assert "paper" not in report.split("## Table 1")[1].split("## Table 2")[0]  # synthetic data: no paper rows
    assert not list((tmp_path / "runs").glob(".*"))  # no temporary folder left behind
    second = run_benchmark("t_identity", smoke_cfg, runs_root=tmp_path / "runs", progress=False)
    assert second.ok and second.run_dir.name.startswith("0002_")


def test_cli_run_exit_codes(smoke_cfg: Config, tmp_path: Path, test_methods, capsys: pytest.CaptureFixture) -> None:
    args = ["run", "--preset", "smoke", "--data", smoke_cfg.data.root, "--out", str(tmp_path / "r"), "--set", "train.device=cpu"]
    assert main(args + ["--methods", "t_identity"]) == 0
    assert main(args + ["--methods", "t_identity,t_broken"]) == 1
    assert "t_broken failed" in capsys.readouterr().err
    assert main(args + ["--methods", "nope"]) == 2


def test_score_external_maps(smoke_cfg: Config, smoke_data, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    val = smoke_data.test
    batch = val.batch(np.arange(len(val)))
    maps = {pid: batch["box_mask"][i, 0].numpy()[::2, ::2].copy() for i, pid in enumerate(val.patient_ids)
            if val.domains[i] == 1}
    first = next(iter(maps))
    maps.pop(first)
    maps["not-a-patient"] = np.zeros((5, 5))
    path = tmp_path / "maps.npz"
    np.savez(path, **maps)
    assert main(["score", "--maps", str(path), "--data", smoke_cfg.data.root, "--preset", "smoke", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_images"] == int((val.domains == 1).sum()) - 1
    assert out["missing"] == 1 and out["ignored"] == 1
    assert out["hit_rate"] == pytest.approx(1.0) and out["pooled_auc"] > 0.95
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"nope")
    assert main(["score", "--maps", str(bad), "--data", smoke_cfg.data.root, "--preset", "smoke"]) == 2
    assert "not a readable .npz" in capsys.readouterr().err


def test_smoke_run_of_every_method(smoke_cfg: Config, tmp_path: Path) -> None:
    """End to end: every registered method trains at smoke and gets every figure it can have."""
    result = run_benchmark("all", smoke_cfg, runs_root=tmp_path / "runs", progress=False)
    assert result.ok, {n: m["error"] for n, m in result.record["methods"].items() if m["error"]}
    methods = result.record["methods"]
    assert {"stargan", "fixedpoint", "pillet", "pillet_nosab", "vagan", "chexnet_cam", "chexnet_ig"} <= set(methods)
    for name, entry in methods.items():
        figures = entry["metrics"]
        for key in ("pooled_auc", "pixel_auc", "hit_rate", "miou", "energy", "mask_pooled_auc"):
            assert figures[key]["value"] is not None and 0.0 <= figures[key]["value"] <= 1.0, (name, key)
        translates = registry.get_method_class(name).translates
        assert ("change_rate_p2h" in figures) == translates, name
        assert ("accuracy_all2h" in figures) == translates, name
    report = (result.run_dir / "report.md").read_text()
    assert "PILLET-GAN w/o SAB" in report and "CheXNet-CAM" in report


def test_seeds_and_paper_figures_in_report(smoke_cfg: Config, tmp_path: Path, test_methods) -> None:
    from bench.report import render

    result = run_benchmark("t_identity", smoke_cfg, n_seeds=2, runs_root=tmp_path / "runs", progress=False)
    assert result.record["seeds"] == [smoke_cfg.train.seed, smoke_cfg.train.seed + 1]
    fig = result.record["methods"]["t_identity"]["metrics"]["pooled_auc"]
    assert fig["seed_std"] is not None
    synthetic = render(result.record)
    assert "(paper)" not in synthetic and "±" in synthetic
    result.record["data"]["synthetic"] = False
    real = render(result.record)
    assert "P→H (paper)" in real and "85.31" in real and "0.83" in real


def test_finished_model_reused_only_for_the_same_settings(smoke_cfg: Config, smoke_data, tmp_path: Path,
                                                          test_methods, monkeypatch: pytest.MonkeyPatch) -> None:
    import copy

    from bench.errors import BenchError
    from bench.runner import train_method

    _, out = train_method("t_identity", smoke_cfg, smoke_data, tmp_path / "m", progress=False)
    assert (out / "final.pt").is_file()

    def no_training(self, ctx) -> None:
        raise AssertionError("a finished model was trained again")

    monkeypatch.setattr(_Identity, "fit", no_training)
    again, _ = train_method("t_identity", smoke_cfg, smoke_data, out, progress=False)
    assert isinstance(again, _Identity)
    other = copy.deepcopy(smoke_cfg)
    other.train.iterations += 1
    with pytest.raises(BenchError, match="trained with other settings"):
        train_method("t_identity", other, smoke_data, out, progress=False)
