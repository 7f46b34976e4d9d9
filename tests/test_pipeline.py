"""Evaluation, report and run folder, driven by small test methods (no training needed)."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from stub_run import Identity, Judge

import bench.evaluate.judge
import bench.registry as registry
from bench import Method, register_method
from bench.cli import exits
from bench.cli.main import main
from bench.config import Config
from bench.errors import BenchError
from bench.evaluate.figure import MetricId
from bench.evaluate.protocol import (
    MethodEval,
    Outputs,
    localization_figures,
    translation_figures,
)
from bench.pipeline import run_benchmark

K = MetricId.from_key


class _Identity(Identity):
    """The shared identity stand-in, registered here as ``t_identity``."""


class _Broken(_Identity):
    """Fails when evaluated."""

    def localize(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("deliberate failure")


@pytest.fixture()
def test_methods(monkeypatch: pytest.MonkeyPatch):
    register_method("t_identity")(_Identity)
    register_method("t_broken")(_Broken)
    monkeypatch.setattr(bench.evaluate.judge, "get_evaluator", lambda cfg, data, progress=True, **kw: Judge())
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
        masks[i, y : y + 5, x : x + 4] = True
    out = _outputs(masks.astype(float), masks, np.array([1, 1, 1, 1, 0, 0]))
    res = MethodEval()
    localization_figures(out, smoke_cfg.eval, res)
    for key in ("pooled_auc", "pixel_auc", "hit_rate", "miou", "dice", "energy"):
        assert res.figures[K(key)].value == pytest.approx(1.0), key
    assert res.figures[K("pooled_auc")].n == 4
    assert set(res.per_image[K("hit_rate")]) == {"id0", "id1", "id2", "id3"}
    assert set(res.per_image) <= set(res.figures)  # per-image values are stored under the summary names


def test_constant_map_is_chance(smoke_cfg: Config) -> None:
    masks = np.zeros((3, 8, 8), bool)
    masks[:, 2:5, 2:5] = True
    res = MethodEval()
    localization_figures(_outputs(np.ones((3, 8, 8)), masks, np.ones(3, int)), smoke_cfg.eval, res)
    assert res.figures[K("pooled_auc")].value == pytest.approx(0.5)
    # ties count as the expected hit under uniform tie-breaking: exactly the box area fraction
    assert res.figures[K("hit_rate")].value == pytest.approx(9 / 64)
    assert res.figures[K("pooled_ap")].value == pytest.approx(9 / 64)  # AP of a constant score = prevalence


def test_translation_figures_known_rates(smoke_cfg: Config) -> None:
    out = _outputs(np.zeros((4, 10, 10)), np.zeros((4, 10, 10)), np.array([1, 1, 0, 0]))
    out.change = {0: np.array([0.1, 0.3, 0.0, 0.2]), 2: np.array([0.0, 0.1, 0.0, 0.0])}
    out.p_translated = np.array([0.9, 0.1, 0.2, 0.7])
    res = MethodEval()
    translation_figures(out, Judge(), smoke_cfg.eval, res)
    assert res.figures[K("change_rate_p2h")].value == pytest.approx(0.2)
    assert res.figures[K("change_rate_h2h")].value == pytest.approx(0.1)
    assert res.figures[K("change_rate_all2h")].value == pytest.approx(0.15)
    assert res.figures[K("change_rate_tol2_p2h")].value == pytest.approx(0.05)
    assert res.figures[K("accuracy_p2h")].value == pytest.approx(0.5)  # 0.1 < 0.5 only
    assert res.figures[K("accuracy_all2h")].value == pytest.approx(0.5)
    assert res.figures[K("change_rate_p2h")].direction == "lower"


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
    assert record["methods"]["t_broken"] == {
        "status": "failed",
        "error": "RuntimeError: deliberate failure",
        "metrics": {},
    }
    report = (run / "report.md").read_text()
    for heading in (
        "Table 1",
        "Table 2",
        "Table 3",
        "roc.png",
        "qualitative.png",
        "Failures",
        "Provenance",
        "real images, not translated",
    ):
        assert heading in report
    assert "paper" not in report.split("## Table 1")[1].split("## Table 2")[0]  # synthetic data: no paper rows
    assert not list((tmp_path / "runs").glob(".*"))  # no temporary folder left behind
    second = run_benchmark("t_identity", smoke_cfg, runs_root=tmp_path / "runs", progress=False)
    assert second.ok and second.run_dir.name.startswith("0002_")


def test_cli_run_exit_codes(smoke_cfg: Config, tmp_path: Path, test_methods, capsys: pytest.CaptureFixture) -> None:
    args = [
        "run",
        "--preset",
        "smoke",
        "--data",
        smoke_cfg.data.root,
        "--out",
        str(tmp_path / "r"),
        "--set",
        "train.device=cpu",
    ]
    assert main(args + ["--methods", "t_identity"]) == 0
    assert main(args + ["--methods", "t_identity,t_broken"]) == exits.METHOD_FAILED
    assert "t_broken failed" in capsys.readouterr().err
    assert main(args + ["--methods", "nope"]) == 2


def test_score_external_maps(smoke_cfg: Config, smoke_data, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    val = smoke_data.test
    batch = val.batch(np.arange(len(val)))
    maps = {
        pid: batch["box_mask"][i, 0].numpy()[::2, ::2].copy()
        for i, pid in enumerate(val.patient_ids)
        if val.domains[i] == 1
    }
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
    # every GAN brings its learning curve (judged by the run's evaluator) and the report draws them
    for name in ("stargan", "fixedpoint", "pillet", "pillet_nosab", "vagan"):
        points = methods[name]["curves"]
        assert [p["iteration"] for p in points] == [0, smoke_cfg.train.iterations], name
        assert {"seconds", "eval_seconds", "pooled_auc", "accuracy_p2h"} <= set(points[-1]), name
        assert methods[name]["curve_eval_seconds"] == pytest.approx(sum(p["eval_seconds"] for p in points))
    assert "curves" not in methods["chexnet_cam"]
    assert (result.run_dir / "learning_curves.png").stat().st_size > 0
    assert "## Learning curves" in report and "GAN recipe `paper`" in report


def test_seeds_and_paper_figures_in_report(smoke_cfg: Config, tmp_path: Path, test_methods) -> None:
    from bench.report.document import render

    result = run_benchmark("t_identity", smoke_cfg, n_seeds=2, runs_root=tmp_path / "runs", progress=False)
    assert result.record["seeds"] == [smoke_cfg.train.seed, smoke_cfg.train.seed + 1]
    fig = result.record["methods"]["t_identity"]["metrics"]["pooled_auc"]
    assert fig["seed_std"] is not None
    synthetic = render(result.run_record)
    assert "(paper)" not in synthetic and "±" in synthetic
    result.run_record.data["synthetic"] = False
    real = render(result.run_record)
    assert "P→H (paper)" in real and "85.31" in real and "0.83" in real


def test_finished_model_reused_only_for_the_same_settings(
    smoke_cfg: Config, smoke_data, tmp_path: Path, test_methods, monkeypatch: pytest.MonkeyPatch
) -> None:

    from bench.errors import BenchError
    from bench.train.runner import train_method

    out = train_method("t_identity", smoke_cfg, smoke_data, tmp_path / "m", progress=False).out_dir
    assert (out / "final.pt").is_file()

    def no_training(self, ctx) -> None:
        raise AssertionError("a finished model was trained again")

    monkeypatch.setattr(_Identity, "fit", no_training)
    again = train_method("t_identity", smoke_cfg, smoke_data, out, progress=False).method
    assert isinstance(again, _Identity)
    other = copy.deepcopy(smoke_cfg)
    other.train.iterations += 1
    with pytest.raises(BenchError, match="trained with other settings"):
        train_method("t_identity", other, smoke_data, out, progress=False)


# ---- reference maps and the model-randomization check ---------------------------------------


class _EdgeRef(Method):
    """Reference map for tests: horizontal gradient magnitude. Claims a randomized copy, which a
    reference must not get a randomization figure for."""

    reference = True

    def fit(self, ctx) -> None:
        pass

    def localize(self, x: torch.Tensor) -> torch.Tensor:
        return (x[:, 0] - torch.roll(x[:, 0], 1, dims=-1)).abs()

    def randomized(self, seed: int) -> Method:
        return type(self)(self.cfg, self.device)

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class _MaskRef(_EdgeRef):
    """A reference needing the exact lesion masks (the synthetic data has them)."""

    needs = frozenset({"lesion_mask"})


class _UnmetRef(_EdgeRef):
    """A reference needing an input no data set provides."""

    needs = frozenset({"t_input_nobody_has"})


FAKE_REFERENCES = {"t_ref_edge": _EdgeRef, "t_ref_masks": _MaskRef, "t_ref_unmet": _UnmetRef}


@pytest.fixture()
def fake_references():
    for name, cls in FAKE_REFERENCES.items():
        register_method(name)(cls)
    yield
    for name in FAKE_REFERENCES:
        registry._REGISTRY.pop(name, None)


def _fresh_gan(monkeypatch: pytest.MonkeyPatch, cls: type) -> None:
    """Until the GAN methods implement ``randomized``: the same method untrained, seeded."""
    if cls.randomized is not Method.randomized:
        return

    def randomized(self, seed: int) -> Method:
        return type(self)(dataclasses.replace(self.settings, seed=seed))

    monkeypatch.setattr(cls, "randomized", randomized)


def test_resolve_methods_and_references(smoke_data, fake_references) -> None:
    from bench.pipeline import check_needs, resolve_methods, with_references

    everything = resolve_methods("all")
    assert not set(FAKE_REFERENCES) & set(everything) and "stargan" in everything
    names = with_references(["stargan"], smoke_data)
    assert names[0] == "stargan" and {"t_ref_edge", "t_ref_masks"} <= set(names) and "t_ref_unmet" not in names
    assert with_references(["t_ref_edge", "stargan"], smoke_data).count("t_ref_edge") == 1
    check_needs(["t_ref_masks"], smoke_data)
    with pytest.raises(BenchError, match="'t_ref_unmet' needs t_input_nobody_has"):
        check_needs(["t_ref_unmet"], smoke_data)


def test_randomization_rho_known_answers(smoke_cfg: Config, smoke_data, test_methods) -> None:
    from bench.evaluate.protocol import collect_outputs, randomization_figure

    method = _Identity.from_config(smoke_cfg, "cpu")
    out = collect_outputs(method, smoke_data.test, None, smoke_cfg.eval, progress=False)
    pneu = [pid for pid, d in zip(out.patient_ids, out.domains) if d == 1]

    same = MethodEval()  # a randomized copy whose map ignores the weights: rho = 1 on every image
    method.randomized = lambda seed: _Identity.from_config(smoke_cfg, "cpu")
    randomization_figure(method, smoke_data.test, out, smoke_cfg.eval, same)
    fig = same.figures[K("randomization_rho")]
    assert fig.value == pytest.approx(1.0) and fig.direction == "lower" and fig.n == len(pneu)
    assert set(same.per_image[K("randomization_rho")]) == set(pneu)

    class _Noise(_Identity):
        def localize(self, x: torch.Tensor) -> torch.Tensor:
            return torch.rand(x.shape[0], *x.shape[2:], generator=torch.Generator().manual_seed(7))

    noise = MethodEval()  # a map of pure noise does not follow the trained map
    method.randomized = lambda seed: _Noise.from_config(smoke_cfg, "cpu")
    randomization_figure(method, smoke_data.test, out, smoke_cfg.eval, noise)
    assert abs(noise.figures[K("randomization_rho")].value) < 0.2

    none = MethodEval()  # nothing learned, nothing to randomize
    randomization_figure(_EdgeRef.from_config(smoke_cfg, "cpu"), smoke_data.test, out, smoke_cfg.eval, none)
    assert not none.figures and not none.per_image


def test_references_by_default_not_with_flag(
    smoke_cfg: Config, tmp_path: Path, test_methods, fake_references, monkeypatch: pytest.MonkeyPatch
) -> None:
    from methods.stargan.method import StarGAN

    _fresh_gan(monkeypatch, StarGAN)
    result = run_benchmark("stargan", smoke_cfg, runs_root=tmp_path / "runs", progress=False)
    assert result.ok
    methods = result.record["methods"]
    assert {"stargan", "t_ref_edge", "t_ref_masks"} <= set(methods) and "t_ref_unmet" not in methods
    assert methods["ref_supervised"]["status"] == "ok" and methods["ref_supervised"]["reference"] is True
    assert methods["t_ref_edge"]["reference"] is True and "reference" not in methods["stargan"]
    gan, ref = methods["stargan"]["metrics"], methods["t_ref_edge"]["metrics"]
    assert -1.0 <= gan["randomization_rho"]["value"] <= 1.0 and "randomization_rho" not in ref
    assert "mask_pooled_auc" in ref and "change_rate_p2h" not in ref
    # every figure carries the direction of the table of metric kinds
    expected = {
        "pooled_auc": "higher",
        "mask_pooled_auc": "higher",
        "detection_auc": "higher",
        "hit_rate": "higher",
        "miou": "higher",
        "energy": "higher",
        "accuracy_p2h": "higher",
        "accuracy05_all2h": "higher",
        "change_rate_p2h": "lower",
        "change_rate_tol2_h2h": "lower",
        "randomization_rho": "lower",
    }
    assert {k: gan[k]["direction"] for k in expected} == expected
    assert {f["direction"] for f in result.record["evaluator"]["untranslated"].values()} == {"none"}
    frame = pd.read_csv(result.run_dir / "per_image.csv")
    rho = frame[frame.metric == "randomization_rho"]
    assert set(rho.method) == {"stargan"} and set(rho.domain) == {"pneumonia"}
    report = (result.run_dir / "report.md").read_text()
    table1 = report.split("## Table 1")[1].split("## Table 3")[0]
    assert "t_ref_edge" not in table1  # references do not translate
    assert "Reference maps" in report and "best such reference is" in report

    out = tmp_path / "no_refs"
    args = [
        "run",
        "--methods",
        "stargan",
        "--no-references",
        "--preset",
        "smoke",
        "--data",
        smoke_cfg.data.root,
        "--out",
        str(out),
        "--set",
        "train.device=cpu",
    ]
    assert main(args) == 0
    (run_dir,) = out.iterdir()
    record = json.loads((run_dir / "record.json").read_text())
    assert set(record["methods"]) == {"stargan"}
    assert "Reference maps" not in (run_dir / "report.md").read_text()


def test_seed_mean_ci_resamples_the_same_images(smoke_cfg: Config) -> None:
    """With several seeds the CI is that of the seed mean: resample r draws the same images for every
    seed, so two seeds whose values differ by a constant give the single-seed CI shifted by half of it
    (averaging the seeds' own bounds would give the same here, so the anti-correlated case follows)."""
    from bench.evaluate.protocol import _add
    from bench.records.build import MethodRun, summarize

    rng = np.random.default_rng(0)
    values = rng.random(40)
    out = _outputs(np.zeros((40, 4, 4)), np.zeros((40, 4, 4), bool), np.ones(40, int))
    sel = np.ones(40, bool)

    miou = MetricId("miou", target="boxes")

    def run_of(*per_seed: np.ndarray) -> dict:
        evals = []
        for v in per_seed:
            ev = MethodEval()
            _add(ev, miou, v, sel, out, smoke_cfg.eval)
            evals.append(ev)
        return summarize(MethodRun("m", evals)).metrics[miou].as_dict()

    one = run_of(values)
    shifted = run_of(values, values + 0.2)
    assert shifted["value"] == pytest.approx(one["value"] + 0.1)
    assert shifted["ci"] == pytest.approx([one["ci"][0] + 0.1, one["ci"][1] + 0.1])
    # two seeds that err in opposite directions on the same images: their mean is constant, so the CI
    # of the seed mean has zero width, while the mean of their own bounds would be as wide as each
    flipped = run_of(values, 1.0 - values)
    assert flipped["value"] == pytest.approx(0.5)
    assert flipped["ci"] == pytest.approx([0.5, 0.5])
    assert flipped["seed_std"] is not None
