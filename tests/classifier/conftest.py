"""Helpers for the classifier tests: every one runs on one thread."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_thread: None) -> None:
    """Every classifier test runs on one thread (``one_thread`` in tests/conftest.py)."""


def no_training(*args: object, **kwargs: object) -> None:
    """Stands in for ``train_classifier`` where the classifier must not be trained."""
    raise AssertionError("the classifier must not be trained here")
