"""Smooth random fields, ramps and resampling shared by the anatomy and lesion renderers."""

from __future__ import annotations

import functools

import numpy as np
from scipy import ndimage


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: tuple[int, int]) -> np.ndarray:
    """Smooth random field of ``shape`` with about ``cells`` blobs per axis, zero mean, unit std.

    White noise on a coarse grid is interpolated with Gaussian weights, one small matrix product
    per axis.
    """
    coarse = rng.standard_normal((cells[0] + 2, cells[1] + 2)).astype(np.float32)
    field = _gauss_interp(shape[0], cells[0]) @ coarse @ _gauss_interp(shape[1], cells[1]).T
    return (field - field.mean()) / (field.std() + 1e-6)


@functools.lru_cache(maxsize=1024)
def _gauss_interp(n: int, cells: int) -> np.ndarray:
    """(n, cells + 2) weights spreading coarse nodes over n pixels, unit norm per pixel."""
    pos = (np.arange(n) + 0.5) / n * cells + 0.5
    w = np.exp(-0.5 * ((pos[:, None] - np.arange(cells + 2)[None, :]) / 0.7) ** 2)
    return (w / np.sqrt((w * w).sum(axis=1, keepdims=True))).astype(np.float32)


def smoothstep(x: np.ndarray) -> np.ndarray:
    """Cubic ramp from 0 (x <= 0) to 1 (x >= 1)."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def upsample(a: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of a square array to size x size, pixel areas aligned, edges clamped."""
    if a.shape[0] == size:
        return a
    if 2 * a.shape[0] != size:
        return ndimage.zoom(a, size / a.shape[0], order=1, mode="nearest", grid_mode=True)
    return np.ascontiguousarray(_double(_double(a, 0), 1))


def _double(a: np.ndarray, axis: int) -> np.ndarray:
    """Bilinear doubling along one axis: output pixel centres at input positions k -/+ 1/4."""
    a = np.moveaxis(a, axis, 0)
    prev = np.concatenate([a[:1], a[:-1]])
    nxt = np.concatenate([a[1:], a[-1:]])
    out = np.empty((2 * a.shape[0],) + a.shape[1:], dtype=a.dtype)
    out[0::2] = 0.75 * a + 0.25 * prev
    out[1::2] = 0.75 * a + 0.25 * nxt
    return np.moveaxis(out, 0, axis)
