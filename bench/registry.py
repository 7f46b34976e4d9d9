"""Method registry: built-in methods under ``methods/`` and third-party entry points.

Built-in methods register themselves on import (every sub-package of ``methods`` is imported
once); third-party packages expose methods through the entry-point group
``lesionbench.methods`` (an entry point may name a Method subclass or a module that registers
on import).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import pkgutil
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import torch

from bench.config import Config
from bench.errors import BenchError
from bench.method import Method

ENTRY_POINT_GROUP = "lesionbench.methods"
_REGISTRY: dict[str, type[Method]] = {}
_discovered = False

M = TypeVar("M", bound=type[Method])


def register_method(name: str) -> Callable[[M], M]:
    """Class decorator registering a :class:`Method` subclass under ``name``."""

    def wrap(cls: M) -> M:
        if not (isinstance(cls, type) and issubclass(cls, Method)):
            raise TypeError(f"@register_method({name!r}) needs a subclass of bench.Method")
        existing = _REGISTRY.get(name)
        if existing is not None and existing is not cls:
            if (existing.__module__, existing.__qualname__) != (cls.__module__, cls.__qualname__):
                raise ValueError(f"method name {name!r} is already registered by {existing.__module__}")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return wrap


def _import_builtins() -> None:
    import methods

    for info in pkgutil.iter_modules(methods.__path__, prefix="methods."):
        importlib.import_module(info.name)


def _load_entry_points() -> None:
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
        except Exception as exc:  # a broken plugin must not break the suite
            warnings.warn(f"entry point {ep.name!r} ({ep.value}) failed to load: {exc}", stacklevel=2)
            continue
        if isinstance(obj, type) and issubclass(obj, Method) and ep.name not in _REGISTRY:
            register_method(ep.name)(obj)


def discover(refresh: bool = False) -> None:
    """Import built-in methods and entry-point plugins (once, unless ``refresh``)."""
    global _discovered
    if _discovered and not refresh:
        return
    _import_builtins()
    _load_entry_points()
    _discovered = True


def list_methods() -> list[str]:
    """Names of all registered methods, sorted."""
    discover()
    return sorted(_REGISTRY)


def get_method_class(name: str) -> type[Method]:
    """The class registered under ``name``; unknown names give a clear error."""
    discover()
    if name not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise BenchError(f"unknown method {name!r}; registered methods: {known}")
    return _REGISTRY[name]


def method_title(name: str) -> str:
    """Display name of a registered method (its class's ``title``, else its registry name); the name itself
    for a method of an old record that is no longer installed."""
    try:
        return getattr(get_method_class(name), "title", "") or name
    except Exception:  # a method of a record that is no longer installed
        return name


def create_method(name: str, cfg: Config, device: str | torch.device | None = None) -> Method:
    """Instantiate the method registered under ``name``, built from configuration ``cfg``
    (:meth:`~bench.method.Method.settings_from`)."""
    return get_method_class(name).from_config(cfg, device)


def method_params(name: str, cfg: Config) -> dict[str, Any]:
    """The effective hyper-parameters of method ``name`` under ``cfg`` (defaults, preset values,
    then the user's settings), as a plain dict for records and identities."""
    return dataclasses.asdict(get_method_class(name).effective_params(cfg))
