"""Run configuration: dataclasses, named presets, TOML and ``--set key=value`` overrides applied with type checks.

A configuration is resolved once (preset, then TOML file, then ``--set`` items, in that order)
and saved with every checkpoint and run record, so a result can always be traced to the
exact settings that produced it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from bench.errors import ConfigError


@dataclass
class DataConfig:
    """Where the images come from and how they are preprocessed."""

    root: str | None = None  # None: the built-in synthetic radiographs
    size: int = 64  # working resolution (square), pixels
    include_not_normal: bool = False  # count 'No Lung Opacity / Not Normal' as Healthy
    strict: bool = False  # every data problem is an error instead of a counted skip
    split_seed: int = 0
    val_fraction: float = 0.1  # share of patients in the test split (the paper's validation split)
    tune_fraction: float = 0.1  # share of the remaining patients in the tune split (all choices are made there)
    synth_pneumonia: int = 600
    synth_healthy: int = 900
    synth_size: int = 256
    synth_seed: int = 0


@dataclass
class ModelConfig:
    """Network capacity shared by the GAN methods (SPEC 2)."""

    width: int = 16  # c
    n_res: int = 2  # R
    d_layers: int = 0  # discriminator depth; 0 = down to 4x4 (log2(size / 4))


@dataclass
class TrainConfig:
    """Optimisation schedule shared by all methods."""

    iterations: int = 2500  # GAN: discriminator steps (SPEC 2)
    batch_size: int = 8
    seed: int = 0
    checkpoint_every: int = 500
    log_every: int = 10
    bf16: bool = False  # bf16 autocast
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    num_workers: int = 0
    eval_every: int = 250  # GAN learning curves: a tune-split point every this many iterations (0 = off)
    curve_images: int = 64  # tune images of a learning-curve point (the first of each domain, half and half)
    recipe: str = "paper"  # GAN optimisation recipe: paper (the SPEC's) | fast (TTUR + generator EMA)
    ema_decay: float = 0.999  # decay of the generator's weight average (recipe fast)
    gan_loss: str = "wgan-gp"  # adversarial loss of every GAN: wgan-gp | r1 (non-saturating + R1 penalty)
    r1_gamma: float = 1.0  # weight gamma of the R1 penalty gamma/2 E||grad D(real)||^2 (gan_loss r1)


@dataclass
class ClassifierConfig:
    """The DenseNet-121 classifier (CheXNet-CAM baseline and the evaluator)."""

    size: int = 224  # input size (square), pixels, independent of data.size; CheXNet's 224 gives a 7x7 final map
    iterations: int = 600
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-4
    eval_every: int = 100
    patience: int = 3  # evaluations without validation-AUC improvement before stopping
    weights: str | None = None  # user-supplied weights (.safetensors or torch state dict): skip training
    channels_last: bool = False
    augment: bool = True  # horizontal flips and a small random affine transform


@dataclass
class EvalConfig:
    """Evaluation settings (SPEC 3)."""

    n_bootstrap: int = 1000
    bootstrap_seed: int = 0
    tolerances: tuple[int, ...] = (2, 8)
    batch_size: int = 32
    n_qualitative: int = 4


@dataclass
class Config:
    """The whole resolved configuration of a run."""

    preset: str = "quick"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    # the user's per-method hyper-parameters, e.g. {"<method>": {"<param>": 10.0}}; validated by each
    # method, applied over the method's own preset values (``Method.preset_params``)
    method: dict[str, dict[str, Any]] = field(default_factory=dict)


def _smoke() -> Config:
    return Config(
        preset="smoke",
        data=DataConfig(size=32, synth_pneumonia=24, synth_healthy=24, synth_size=64),
        model=ModelConfig(width=8, n_res=1),
        train=TrainConfig(iterations=12, batch_size=4, checkpoint_every=6, log_every=2),
        classifier=ClassifierConfig(size=32, iterations=20, batch_size=8, eval_every=10, patience=2),
        eval=EvalConfig(n_bootstrap=50, n_qualitative=2),
    )


def _quick() -> Config:
    """Smoke-level comparison on any machine: under 10 minutes for every method on 2 CPU cores."""
    return Config(
        preset="quick",
        train=TrainConfig(iterations=600, batch_size=4, checkpoint_every=200, eval_every=100, recipe="fast"),
        classifier=ClassifierConfig(size=96, iterations=300, eval_every=100),
    )


def _standard() -> Config:
    """The CPU comparison, sized by the learning curves (docs/decisions.md, "Presets"): the quick
    networks at 64 px on twice the data, trained until every GAN's tune-split curve has flattened,
    in at most 90 minutes for every method on 2 CPU cores."""
    return Config(
        preset="standard",
        data=DataConfig(size=64, synth_pneumonia=1200, synth_healthy=1800),
        model=ModelConfig(width=16, n_res=2),
        train=TrainConfig(
            iterations=7000, batch_size=4, checkpoint_every=500, eval_every=500, curve_images=128, recipe="fast"
        ),
        # CheXNet's own 224 px (a 7x7 map) in 600 steps rather than 128 px in 1,000: a few minutes more,
        # CAM's maximum in a box half the time (docs/decisions.md, "The default run's verdict")
        classifier=ClassifierConfig(size=224, iterations=600, eval_every=200),
    )


def _paper() -> Config:
    return Config(
        preset="paper",
        data=DataConfig(size=256, synth_pneumonia=6012, synth_healthy=8851),
        model=ModelConfig(width=64, n_res=6),
        train=TrainConfig(iterations=100_000, batch_size=8, checkpoint_every=5000, log_every=50),
        classifier=ClassifierConfig(size=224, iterations=30_000, batch_size=16, eval_every=1000, patience=5),
    )


PRESETS = {"smoke": _smoke, "quick": _quick, "standard": _standard, "paper": _paper}


def preset(name: str) -> Config:
    """Return a fresh copy of a named preset."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]()


def _parse_value(text: str) -> Any:
    """Parse a ``--set`` value as a TOML value, falling back to a bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Check and convert ``value`` to the dataclass field type ``annotation``."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], key)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            value = [value]
        return tuple(_coerce(v, args[0], key) for v in value)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if annotation is str:
        return str(value)
    return value


def _apply(obj: Any, key: str, value: Any, full_key: str) -> None:
    head, _, rest = key.partition(".")
    if isinstance(obj, dict):
        if rest:
            _apply(obj.setdefault(head, {}), rest, value, full_key)
        else:
            obj[head] = value
        return
    hints = typing.get_type_hints(type(obj))
    if head not in hints:
        names = ", ".join(f.name for f in dataclasses.fields(obj))
        raise ConfigError(f"unknown config key {full_key!r} (fields here: {names})")
    if rest:
        _apply(getattr(obj, head), rest, value, full_key)
    elif dataclasses.is_dataclass(getattr(obj, head)):
        if not isinstance(value, dict):
            raise ConfigError(f"{full_key}: expected a table of settings")
        for k, v in value.items():
            _apply(getattr(obj, head), k, v, f"{full_key}.{k}")
    elif head == "method":
        if not isinstance(value, dict):
            raise ConfigError(f"{full_key}: expected a table of settings")
        for k, v in value.items():
            _apply(obj.method, k, v, f"{full_key}.{k}")
    else:
        setattr(obj, head, _coerce(value, hints[head], full_key))


def _flatten(table: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    items: list[tuple[str, Any]] = []
    for k, v in table.items():
        if isinstance(v, dict):
            items.extend(_flatten(v, f"{prefix}{k}."))
        else:
            items.append((f"{prefix}{k}", v))
    return items


def apply_overrides(cfg: Config, toml_path: str | Path | None = None, sets: list[str] | None = None) -> set[str]:
    """Apply a TOML file, then ``key=value`` overrides, to ``cfg`` in place (types checked as each value is set);
    returns the method names that ``method.`` settings among them refer to."""
    user_methods: set[str] = set()
    if toml_path is not None:
        path = Path(toml_path)
        try:
            table = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc})") from None
        table.pop("preset", None)
        for key, value in _flatten(table):
            _apply(cfg, key, value, key)
            user_methods |= _method_names(key, value)
    for item in sets or []:
        key, eq, text = item.partition("=")
        if not eq or not key.strip():
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. train.iterations=100")
        value = _parse_value(text.strip())
        _apply(cfg, key.strip(), value, key.strip())
        user_methods |= _method_names(key.strip(), value)
    return user_methods


def set_value(cfg: Config, key: str, value: Any) -> None:
    """Set one dotted ``key`` of ``cfg`` (e.g. ``data.root``), its type checked like a ``--set`` value."""
    _apply(cfg, key, value, key)


def _method_names(key: str, value: Any) -> set[str]:
    """The method names a ``method.<name>...`` setting refers to (none for other keys)."""
    parts = key.split(".")
    if parts[0] != "method":
        return set()
    if len(parts) > 1:
        return {parts[1]}
    return set(value) if isinstance(value, dict) else set()


def to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-serialisable dict of a config dataclass."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def from_dict(table: dict[str, Any]) -> Config:
    """Rebuild a Config from :func:`to_dict` output (e.g. a saved checkpoint)."""
    cfg = preset(table.get("preset", "quick"))
    rest = {k: v for k, v in table.items() if k != "preset"}
    cfg.method = {}
    for key, value in _flatten(rest):
        _apply(cfg, key, value, key)
    return cfg


def config_hash(obj: Any) -> str:
    """A short stable hash of a config (or any JSON-serialisable object)."""
    if dataclasses.is_dataclass(obj):
        obj = to_dict(obj)
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def resolve_params(params_type: type, overrides: dict[str, Any], where: str) -> Any:
    """Build a method's hyper-parameter dataclass, rejecting unknown keys."""
    params = params_type()
    for key, value in _flatten(overrides):
        _apply(params, key, value, f"{where}.{key}")
    return params
