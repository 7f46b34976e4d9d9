"""lesionbench: a benchmark for pixel-level lesion localization in chest X-rays."""

from bench.config import Config, load_config
from bench.domains import DOMAINS, HEALTHY, PNEUMONIA
from bench.method import Method, TrainContext
from bench.registry import create_method, get_method_class, list_methods, register_method

__all__ = [
    "Config",
    "DOMAINS",
    "HEALTHY",
    "Method",
    "PNEUMONIA",
    "TrainContext",
    "create_method",
    "get_method_class",
    "list_methods",
    "load_config",
    "register_method",
]
__version__ = "0.1.0"
