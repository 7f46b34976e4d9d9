"""Image-size checks the GAN methods' networks share."""

from __future__ import annotations

from bench.errors import ConfigError


def check_size(size: int, multiple: int, what: str) -> None:
    """Raise a ConfigError unless ``size`` is a positive multiple of ``multiple``."""
    if size <= 0 or size % multiple:
        raise ConfigError(f"data.size={size}: {what} needs a multiple of {multiple}")
