"""Reading a run's settings, checked once where they are read: preset, TOML file, ``--set`` items and
command-line flags (:func:`load_config`), then the range checks, before any work starts.

Types are checked when a value is set (``bench.config``); this module checks that each value is in
the range the engine can use, and that every method named under ``method.`` exists. Each failure is
one :class:`ConfigError` line naming the key, the value and the allowed range.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.config import Config, apply_overrides, preset, resolve_params, set_value
from bench.errors import ConfigError
from bench.registry import get_method_class, list_methods

# Every built-in network downsamples by powers of two: the image-to-image generators twice (4), the U-Net map
# generator three times and its critic four times (16); DenseNet-121 reduces 32 px to 1 px. A multiple of 16.
SIZE_MULTIPLE = 16
MIN_SIZE = 16
MIN_SYNTH_SIZE = 32  # the synthetic generator's smallest radiograph


@dataclass(frozen=True)
class Rule:
    """One allowed range: a test and the words that describe it."""

    ok: Callable[[Any], bool]
    allowed: str


def at_least(low: int) -> Rule:
    """An integer >= ``low``."""
    return Rule(lambda v: v >= low, f"an integer >= {low}")


def fraction() -> Rule:
    """A number in [0, 1)."""
    return Rule(lambda v: 0.0 <= v < 1.0, "a number >= 0 and < 1")


def size(low: int, multiple: int) -> Rule:
    """A pixel size >= ``low`` that is a multiple of ``multiple``."""
    return Rule(lambda v: v >= low and v % multiple == 0, f"an integer >= {low} and a multiple of {multiple}")


POSITIVE_NUMBER = Rule(lambda v: v > 0, "a number > 0")
NON_NEGATIVE_NUMBER = Rule(lambda v: v >= 0, "a number >= 0")
GREY_LEVEL = Rule(lambda v: 0 <= v <= 255, "integers from 0 to 255")

RULES: dict[str, Rule] = {
    "data.size": size(MIN_SIZE, SIZE_MULTIPLE),
    "data.split_seed": at_least(0),
    "data.val_fraction": fraction(),
    "data.tune_fraction": fraction(),
    "data.synth_pneumonia": at_least(1),
    "data.synth_healthy": at_least(1),
    "data.synth_size": at_least(MIN_SYNTH_SIZE),
    "data.synth_seed": at_least(0),
    "model.width": at_least(1),
    "model.n_res": at_least(0),
    "model.d_layers": at_least(0),
    "train.iterations": at_least(1),
    "train.batch_size": at_least(1),
    "train.seed": at_least(0),
    "train.checkpoint_every": at_least(1),
    "train.log_every": at_least(1),
    "train.num_workers": at_least(0),
    "classifier.size": Rule(lambda v: v >= 32, "an integer >= 32 (DenseNet-121 reduces 32 px to a 1x1 feature map)"),
    "classifier.iterations": at_least(1),
    "classifier.batch_size": Rule(lambda v: v >= 2, "an integer >= 2 (batch normalization needs two images)"),
    "classifier.lr": POSITIVE_NUMBER,
    "classifier.weight_decay": NON_NEGATIVE_NUMBER,
    "classifier.eval_every": at_least(1),
    "classifier.patience": at_least(1),
    "eval.n_bootstrap": at_least(1),
    "eval.bootstrap_seed": at_least(0),
    "eval.tolerances": Rule(
        lambda v: len(v) > 0 and all(0 <= t <= 255 for t in v), "one or more integers from 0 to 255"
    ),
    "eval.batch_size": at_least(1),
    "eval.n_qualitative": at_least(1),
}


def _value(cfg: Config, key: str) -> Any:
    section, _, name = key.partition(".")
    return getattr(getattr(cfg, section), name)


def check_ranges(cfg: Config) -> None:
    """Raise a ConfigError for the first setting outside its allowed range."""
    for key, rule in RULES.items():
        value = _value(cfg, key)
        if not rule.ok(value):
            shown = list(value) if isinstance(value, tuple) else value
            raise ConfigError(f"{key}={shown!r} is out of range; allowed: {rule.allowed}")


def check_method_settings(cfg: Config, names: Iterable[str]) -> None:
    """Every ``method.<name>`` must name a registered method, and its settings its parameters."""
    known = list_methods()
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
            hint = f"did you mean {', '.join(close)}? " if close else ""
            keys = ", ".join(f"method.{name}.{k}" for k in cfg.method.get(name, {})) or f"method.{name}"
            raise ConfigError(f"{keys}: no method named {name!r}; {hint}registered methods: {', '.join(known)}")
        resolve_params(get_method_class(name).Params, cfg.method.get(name, {}), f"method.{name}")


def validate_config(cfg: Config, user_methods: Iterable[str] = ()) -> Config:
    """Check every range, and the ``method.`` settings the user gave (``user_methods``); returns ``cfg``."""
    check_ranges(cfg)
    names = sorted(set(user_methods))
    if names:
        check_method_settings(cfg, names)
    return cfg


def check_method_list(names: list[str]) -> None:
    """Refuse a ``--methods`` list that names a method twice (it would be trained and counted twice)."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ConfigError(f"--methods {','.join(names)}: method {name!r} is named twice")
        seen.add(name)


def load_config(
    preset_name: str = "quick",
    toml_path: str | Path | None = None,
    sets: list[str] | None = None,
    flags: Mapping[str, object] | None = None,
) -> Config:
    """Resolve a configuration: preset, then a TOML file, then ``key=value`` overrides, then the command line's
    own flags (``flags``: dotted key -> value, e.g. ``{"data.root": "/data/rsna"}``), then the range checks of every
    setting and of the ``method.`` settings given: the one place settings are checked."""
    cfg = preset(preset_name)
    user_methods = apply_overrides(cfg, toml_path, sets)
    for key, value in (flags or {}).items():
        set_value(cfg, key, value)
    return validate_config(cfg, user_methods)
