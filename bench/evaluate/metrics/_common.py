"""Shared conventions of the metric functions: image stacks, chunked iteration, per-image normalization."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

POINT_BITS = 20
"""Histogram resolution (top bits of the float32 key) of the pooled AUC point estimate."""

CI_BITS = 16
"""Histogram resolution of the per-image histograms behind the pooled-AUC bootstrap CI."""

CHUNK_PIXELS = 1 << 22
"""Pixels processed at once by the streaming functions (bounds their temporary memory)."""


def _images(x: np.ndarray) -> np.ndarray:
    """Return ``x`` as ``(N, H, W)``, dropping a singleton channel axis of ``(N, 1, H, W)``."""
    x = np.asarray(x)
    if x.ndim == 4 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != 3:
        raise ValueError(f"expected images of shape (N, H, W) or (N, 1, H, W), got {x.shape}")
    return x


def _maps_and_masks(maps: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate a pair of map and mask stacks and return them as ``(N, H, W)``; masks as bool."""
    maps, masks = _images(maps), _images(masks)
    if maps.shape != masks.shape:
        raise ValueError(f"maps {maps.shape} and masks {masks.shape} differ in shape")
    return maps, masks.astype(bool, copy=False)


def _image_chunks(n_images: int, pixels_per_image: int) -> Iterator[slice]:
    """Slices over images holding about :data:`CHUNK_PIXELS` pixels each (at least one image)."""
    step = max(1, CHUNK_PIXELS // max(1, pixels_per_image))
    for start in range(0, n_images, step):
        yield slice(start, min(n_images, start + step))


def _normalized_chunks(maps: np.ndarray, masks: np.ndarray) -> Iterator[tuple[slice, np.ndarray, np.ndarray]]:
    """Yield ``(image slice, normalized maps, bool masks)`` chunk by chunk, in image order."""
    maps, masks = _maps_and_masks(maps, masks)
    for sl in _image_chunks(maps.shape[0], maps.shape[1] * maps.shape[2]):
        yield sl, normalize_maps(maps[sl]), masks[sl]


def normalize_maps(maps: np.ndarray) -> np.ndarray:
    """Min-max normalize every map to [0, 1]: ``(m - min(m)) / (max(m) - min(m))``.

    Works on ``(N, ...)`` stacks, image by image. A constant map (max == min) becomes all zeros.
    The result is float32 for float32 (or narrower) input and float64 otherwise. NaN is not
    allowed.
    """
    maps = np.asarray(maps)
    m = maps.astype(np.result_type(maps.dtype, np.float32), copy=False)
    axes = tuple(range(1, m.ndim))
    lo = m.min(axis=axes, keepdims=True)
    span = m.max(axis=axes, keepdims=True) - lo
    return (m - lo) / np.where(span > 0, span, 1)
