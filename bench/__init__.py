"""lesionbench: a benchmark for pixel-level lesion localization in chest X-rays."""
import os

# OpenMP threads that spin while waiting make CPU training up to 30x slower when another process
# shares the cores (measured here); sleeping costs little when the cores are idle. Must be set
# before torch starts OpenMP; a user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from bench.config import Config, load_config
from bench.method import DOMAINS, HEALTHY, PNEUMONIA, Method, TrainContext
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
