"""Test helper: one synthetic radiograph rendered with or without its lesions (same random draws)."""

from __future__ import annotations

import numpy as np

from bench.data.domains import LUNG_OPACITY
from bench.data.synth.boxes import Box
from bench.data.synth.render import render_pair


def render_case(
    rng: np.random.Generator, size: int, label: str = LUNG_OPACITY, with_lesions: bool = True
) -> tuple[np.ndarray, np.ndarray, list[Box]]:
    """Render one radiograph of class ``label``: (uint8 image, bool lesion mask, boxes x y w h).

    ``with_lesions=False`` renders the same pneumonia case with the opacities left out (same
    random draws), which shows exactly what the lesions add.
    """
    grey, twin, mask, boxes = render_pair(rng, size, label)
    return np.round(grey if with_lesions else twin).astype(np.uint8), mask, boxes
