"""Stand-ins for runs that must train nothing heavy: a translating identity method and a stub evaluator,
used in process (:class:`Identity`, :class:`Judge`) and, as source text (:data:`STUBS`), by the child-process
scripts of the CLI tests; and :func:`record_values`, what two runs of the same work must agree on."""

import inspect
from typing import Any

import numpy as np
import torch

from bench.method import Method


class Identity(Method):
    """Translates nothing away (G(x) = x); the lesion map is the brightness."""

    translates = True

    def fit(self, ctx):
        return []

    def translate(self, x, target):
        return x.clone()

    def localize(self, x):
        return (x[:, 0] + 1) / 2

    def state_dict(self):
        return {"w": torch.zeros(1)}

    def load_state_dict(self, state):
        pass


class Judge:
    """Stub evaluator: P(pneumonia) = 1 for every image, so nothing is judged Healthy."""

    threshold = 0.5

    def probs(self, images):
        return np.ones(len(images))

    def describe(self):
        return {"threshold": self.threshold, "threshold_source": "tune", "test_auc": 0.5}


# a child script imports numpy as np, torch and Method, then runs these definitions
STUBS = "\n" + inspect.getsource(Identity) + "\n\n" + inspect.getsource(Judge)


def record_values(record: dict[str, Any]) -> dict[str, Any]:
    """Every method's status, metrics and learning-curve values of a record (wall-clock seconds left out)."""
    out = {}
    for name, entry in record["methods"].items():
        curves = [{k: v for k, v in p.items() if "seconds" not in k} for p in entry.get("curves", [])]
        out[name] = {"status": entry["status"], "metrics": entry["metrics"], "curves": curves}
    return out
