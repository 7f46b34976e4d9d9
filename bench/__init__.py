"""lesionbench: a benchmark for pixel-level lesion localization in chest X-rays.

The method API (``Method``, ``register_method``, ``load_config``, ...) is imported on first use, so that importing
a torch-free part of the engine (the DICOM decoding workers of ``bench.data.cache``) stays small.
"""

from __future__ import annotations

import importlib
from typing import Any

from bench.config import Config
from bench.data.domains import DOMAINS, HEALTHY, PNEUMONIA

_LAZY = {
    "Method": "bench.method",
    "TrainContext": "bench.method",
    "create_method": "bench.registry",
    "get_method_class": "bench.registry",
    "list_methods": "bench.registry",
    "load_config": "bench.settings",
    "register_method": "bench.registry",
}

__all__ = ["Config", "DOMAINS", "HEALTHY", "PNEUMONIA", *_LAZY]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """Import the method API (which needs torch) when it is first asked for."""
    if name not in _LAZY:
        raise AttributeError(f"module 'bench' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
