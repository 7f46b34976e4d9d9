"""The supervised ceiling ``ref_supervised``: loss, training on the tune boxes, determinism, resume, caching."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from bench.config import Config
from bench.errors import BenchError, ConfigError
from bench.evaluate.metrics import pooled_auc
from bench.records.record import MethodResult
from bench.registry import create_method
from bench.report.document import beats_references, is_ceiling, oracle_sentence
from bench.settings import load_config
from bench.train.runner import train_context
from methods.supervised.losses import box_bce
from methods.supervised.method import SupervisedCeiling, draw

NAME = "ref_supervised"


@dataclass
class SquareSplit:
    """A hand-made tune split: dark noisy images; Pneumonia ones (every other) hold a bright square,
    which is also their box. Quacks like RSNADataset where the method reads it."""

    n: int = 24
    size: int = 16
    seed: int = 0
    boxes: bool = True
    cache: SimpleNamespace = field(default_factory=lambda: SimpleNamespace(content_hash="squares"))

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        self.images = rng.uniform(-1.0, 0.0, (self.n, 1, self.size, self.size)).astype(np.float32)
        self.masks = np.zeros_like(self.images)
        for i in range(1, self.n, 2):
            r, c = rng.integers(0, self.size - 5, 2)
            self.images[i, 0, r : r + 5, c : c + 5] += 1.0
            self.masks[i, 0, r : r + 5, c : c + 5] = 1.0 if self.boxes else 0.0

    def __len__(self) -> int:
        return self.n

    def batch(self, idx: np.ndarray) -> dict:
        idx = np.asarray(idx)
        return {"image": torch.from_numpy(self.images[idx]), "box_mask": torch.from_numpy(self.masks[idx])}


def _cfg(seed: int = 0, **params: object) -> Config:
    cfg = load_config("smoke", sets=["train.device='cpu'", "data.size=16", f"train.seed={seed}"])
    cfg.method[NAME] = {"width": 4, "batch_size": 8, "lr": 1e-2, **params}
    return cfg


def _fit(cfg: Config, split: SquareSplit, out: Path, resume: bool = False) -> SupervisedCeiling:
    method = create_method(NAME, cfg)
    assert method.fit(train_context(NAME, cfg, split, split, out, resume=resume, progress=False)) == []
    return method


def _weights(method: SupervisedCeiling) -> list[torch.Tensor]:
    return [t.clone() for t in method.state_dict()["net"].values()]


def test_box_bce_known_answers() -> None:
    mask = torch.tensor([0.0, 1.0]).view(1, 1, 1, 2)
    assert box_bce(torch.zeros(1, 1, 1, 2), mask).item() == pytest.approx(math.log(2))
    assert box_bce(torch.tensor([-20.0, 20.0]).view(1, 1, 1, 2), mask).item() < 1e-8
    with pytest.raises(ValueError, match="differ in shape"):
        box_bce(torch.zeros(1, 1, 2, 2), mask)


def test_a_ceiling_reference_labelled_with_boxes(smoke_data) -> None:
    from bench.pipeline import with_references

    method = create_method(NAME, _cfg())
    assert method.reference and method.ceiling and not method.translates and method.randomized(0) is None
    assert "boxes" in method.title and "|" not in method.title
    assert NAME in with_references(["stargan"], smoke_data)  # real data has boxes too: nothing needed beyond them
    assert not method.needs


def test_training_lowers_the_loss_and_separates_box_pixels(tmp_path: Path) -> None:
    split = SquareSplit()
    method = _fit(_cfg(iterations=80), split, tmp_path)
    losses = np.array(method.losses)
    assert len(losses) == 80 and losses[-10:].mean() < 0.5 * losses[:5].mean()
    maps = method.localize(torch.from_numpy(split.images)).numpy()
    assert maps.shape == (split.n, split.size, split.size) and ((maps > 0) & (maps < 1)).all()
    boxes = split.masks[:, 0] > 0
    assert pooled_auc(maps, boxes) > 0.95  # chance is 0.5
    assert maps[boxes].mean() > 0.5 > maps[~boxes].mean()
    with pytest.raises(BenchError, match="trained at 16 px"):
        method.localize(torch.zeros(1, 1, 32, 32))


def test_deterministic_under_the_seed_and_resumes_exactly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    split, cfg = SquareSplit(), _cfg(iterations=12, checkpoint_every=5)
    whole = _weights(_fit(cfg, split, tmp_path / "a"))
    assert all(torch.equal(a, b) for a, b in zip(whole, _weights(_fit(cfg, split, tmp_path / "b"))))
    other = _weights(_fit(_cfg(seed=1, iterations=12, checkpoint_every=5), split, tmp_path / "c"))
    assert not all(torch.equal(a, b) for a, b in zip(whole, other))

    step = SupervisedCeiling._step

    def crash(self, net, opt, data, seed, k):  # killed during step 7, after the checkpoint of step 5
        if k == 7:
            raise KeyboardInterrupt
        return step(self, net, opt, data, seed, k)

    monkeypatch.setattr(SupervisedCeiling, "_step", crash)
    with pytest.raises(KeyboardInterrupt):
        _fit(cfg, split, tmp_path / "d")
    monkeypatch.setattr(SupervisedCeiling, "_step", step)
    resumed = _fit(cfg, split, tmp_path / "d", resume=True)
    assert len(resumed.losses) == 12 - 5
    assert all(torch.equal(a, b) for a, b in zip(whole, _weights(resumed)))
    with pytest.raises(BenchError, match="other settings or data"):
        _fit(_cfg(iterations=12, checkpoint_every=5, lr=1e-3), split, tmp_path / "d", resume=True)


def test_draws_depend_on_seed_and_step_only() -> None:
    idx, flip = draw(0, 3, 10, 4, True)
    again, flip_again = draw(0, 3, 10, 4, True)
    assert np.array_equal(idx, again) and np.array_equal(flip, flip_again) and len(set(idx)) == 4
    assert not draw(0, 3, 10, 4, False)[1].any()
    assert len(draw(0, 0, 3, 8, True)[0]) == 3  # a split smaller than the batch is drawn whole


def test_a_tune_split_without_boxes_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match=r"tune split \(24 images\) holds no lesion box"):
        _fit(_cfg(), SquareSplit(boxes=False), tmp_path)
    with pytest.raises(ConfigError, match="method.ref_supervised: iterations"):
        create_method(NAME, _cfg(iterations=0))


def test_left_out_of_a_run_whose_tune_split_has_no_box() -> None:
    from bench.pipeline import unavailable_references, with_references

    no_box = SimpleNamespace(tune=SimpleNamespace(n_boxes=np.zeros(5, np.int64)), test=SimpleNamespace(keys=set()))
    assert SupervisedCeiling.cannot_run(no_box) == "the tune split holds no lesion box to train on"
    assert NAME not in with_references([], no_box)
    assert unavailable_references(no_box) == {NAME: "the tune split holds no lesion box to train on"}
    with_box = SimpleNamespace(tune=SimpleNamespace(n_boxes=np.array([0, 2])), test=SimpleNamespace(keys=set()))
    assert SupervisedCeiling.cannot_run(with_box) is None and NAME in with_references([], with_box)


def test_trained_once_then_reused_from_the_cache(
    smoke_cfg: Config, smoke_data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bench.train.runner import train_method

    first = train_method(NAME, smoke_cfg, smoke_data, progress=False)
    x = smoke_data.test.batch(np.arange(len(smoke_data.test)))["image"]

    def refuse(self, ctx) -> None:
        raise AssertionError("trained again instead of loading the cached checkpoint")

    monkeypatch.setattr(SupervisedCeiling, "fit", refuse)
    again = train_method(NAME, smoke_cfg, smoke_data, progress=False)
    assert again.out_dir == first.out_dir and torch.equal(first.method.localize(x), again.method.localize(x))
    assert first.curves == again.curves == []
    smoke_cfg.method[NAME] = {"iterations": 7}  # other settings: another identity, trained anew
    with pytest.raises(AssertionError, match="trained again"):
        train_method(NAME, smoke_cfg, smoke_data, progress=False)


def test_runs_on_real_data_with_boxes_only(rsna_dir: Path, tmp_path: Path) -> None:
    """The real sample (6 readable patients, no lesion masks) with half its patients in the tune split."""
    from bench.data import open_data

    root = tmp_path / "real"
    root.mkdir()
    for f in (rsna_dir / "labels").glob("*.csv"):
        (root / f.name).symlink_to(f)
    (root / "stage_2_train_images").mkdir()
    for f in (rsna_dir / "dicom").glob("*.dcm"):
        (root / "stage_2_train_images" / f.name).symlink_to(f)
    cfg = load_config("smoke", sets=[f"data.root={str(root)!r}", "data.size=64", "data.tune_fraction=0.5"])
    data = open_data(cfg.data, progress=False)
    assert "lesion_mask" not in data.tune.keys and data.tune.n_boxes.any()
    method = create_method(NAME, cfg)
    method.fit(train_context(NAME, cfg, data.train, data.tune, tmp_path / "out", progress=False))
    maps = method.localize(data.test.batch(np.arange(len(data.test)))["image"])
    assert maps.shape == (len(data.test), 64, 64) and np.isfinite(maps.numpy()).all()
    assert method.losses[-1] < method.losses[0]


def _fig(value: float, lo: float, hi: float) -> dict:
    return {"value": value, "ci": [lo, hi]}


def test_a_ceiling_is_not_the_bar_a_method_must_beat() -> None:
    def ref(value: float) -> dict:
        fig = _fig(value, value - 0.02, value + 0.02)
        return {"status": "ok", "reference": True, "metrics": {"pooled_auc": fig, "lm_auc": fig}}

    fig = _fig(0.80, 0.78, 0.82)
    entries = {
        "stargan": {"status": "ok", "metrics": {"pooled_auc": fig, "lm_auc": fig}},
        "ref_edge": ref(0.60),
        "ref_oracle": ref(0.85),
        NAME: ref(0.95),
    }
    methods = {name: MethodResult.from_json(entry) for name, entry in entries.items()}
    assert is_ceiling(NAME) and is_ceiling("ref_oracle") and not is_ceiling("ref_edge")
    sentence = beats_references(methods)
    assert "Methods that beat every reference" in sentence and "best such reference is Sobel" in sentence
    assert "scores above it" not in oracle_sentence(methods)


def test_trained_in_the_run_process_with_the_same_threads_whatever_jobs(smoke_cfg: Config) -> None:
    """``run --jobs N`` trains only non-reference methods in workers; the run's own process, which
    trains this reference, has the same thread count for any N, so its record does not depend on N."""
    from bench.pipeline import Stopwatch, train_side_by_side
    from bench.train.parallel import Layout, plan

    assert train_side_by_side([NAME], smoke_cfg, [0, 1], Layout(2, 1, 2), Stopwatch(), progress=False) == {}
    cpu = torch.device("cpu")
    assert {plan(jobs, None, 3, cpu).eval_threads for jobs in (1, 2, 3)} == {plan(1, None, 3, cpu).eval_threads}
