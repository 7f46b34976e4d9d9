"""Location-matched AUC (SPEC 3.3): the pooled pixel AUC restricted to pairs at the same location.

For every pixel location l, a positive is a Pneumonia image's pixel at l inside that image's
truth, a negative another image's pixel at l outside its truth (``lm_auc``), or also any Healthy
image's pixel at l (``lm_auc_all``). Pairs are counted over all locations, ties one half. A map
that does not look at the image (a constant, the location prior, any fixed pattern) ties every
pair at every location and scores exactly 0.5; the ideal map scores 1.

Scores are the per-image normalized maps (:func:`bench.evaluate.metrics.normalize_maps`). The point
estimate ranks the images along the image axis, one block of locations at a time. The bootstrap
uses the matrix of pair counts between images (row: the Pneumonia image holding the positive,
column: the image holding the negative), so that every resample is a quadratic form in the
images' multiplicities, drawn exactly like every other figure's.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

from bench.evaluate.metrics._common import _images, _maps_and_masks

BLOCK_CELLS = 1 << 22
"""Elements (images x locations, or image pairs x locations) held at once: bounds the memory."""


@dataclass(frozen=True)
class LocationPairs:
    """Pair counts between images at matched locations, Pneumonia images first, then Healthy ones.

    ``wins2[i, j]`` is twice the number of locations where image i's positive pixel outscores image
    j's negative pixel (a tie counts one); ``pairs[i, j]`` the number of such location pairs. Rows
    are the P Pneumonia images, columns the P Pneumonia images followed by the H Healthy images.
    """

    wins2: np.ndarray  # (P, P + H) int64
    pairs: np.ndarray  # (P, P + H) int64
    n_pneumonia: int

    def auc(self, healthy: bool = False) -> float:
        """lm_auc (Pneumonia negatives only) or, with ``healthy``, lm_auc_all; NaN without pairs."""
        cols = slice(None) if healthy else slice(0, self.n_pneumonia)
        pairs = int(self.pairs[:, cols].sum())
        return float("nan") if pairs == 0 else int(self.wins2[:, cols].sum()) / (2 * pairs)

    def resampled(self, counts_p: np.ndarray, counts_h: np.ndarray | None = None) -> np.ndarray:
        """The AUC of every bootstrap resample, given each image's multiplicity per resample
        (``(R, P)``; with ``counts_h`` ``(R, H)`` the Healthy columns count too): NaN without pairs."""
        w_cols = counts_p if counts_h is None else np.concatenate([counts_p, counts_h], axis=1)
        cols = slice(0, w_cols.shape[1])
        wp, wc = counts_p.astype(np.float64), w_cols.astype(np.float64)
        num = np.einsum("ri,ri->r", wp @ self.wins2[:, cols].astype(np.float64), wc)
        den = np.einsum("ri,ri->r", wp @ self.pairs[:, cols].astype(np.float64), wc)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, num / (2 * den), np.nan)


def _flat(x: np.ndarray) -> np.ndarray:
    x = _images(x)
    return x.reshape(x.shape[0], -1)


def _span(maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-image minimum and span of ``normalize_maps`` (a constant map gets span 1), as columns."""
    m = maps.astype(np.result_type(maps.dtype, np.float32), copy=False)
    lo = m.min(axis=1, keepdims=True)
    span = m.max(axis=1, keepdims=True) - lo
    return lo, np.where(span > 0, span, 1)


class _Stack:
    """Maps of several image groups, normalized per image block by block of locations."""

    def __init__(self, maps: list[np.ndarray]) -> None:
        self.maps = [_flat(m) for m in maps if m is not None and len(m)]
        self.norm = [_span(m) for m in self.maps]

    def block(self, cols: slice | np.ndarray) -> np.ndarray:
        """Normalized scores ``(images, locations)`` of the locations ``cols``, exactly as
        ``normalize_maps`` computes them (the same elementwise float operations)."""
        parts = []
        for m, (lo, span) in zip(self.maps, self.norm):
            parts.append((m[:, cols].astype(lo.dtype, copy=False) - lo) / span)
        return np.concatenate(parts, axis=0)


def _blocks(n_locations: int, per_location: int) -> Iterator[slice]:
    step = max(1, BLOCK_CELLS // max(1, per_location))
    for start in range(0, n_locations, step):
        yield slice(start, min(n_locations, start + step))


def _inputs(
    maps: np.ndarray, masks: np.ndarray, healthy_maps: np.ndarray | None
) -> tuple[_Stack, np.ndarray, int, int]:
    maps, masks = _maps_and_masks(maps, masks)
    if healthy_maps is not None:
        healthy_maps = _images(healthy_maps)
        if healthy_maps.shape[1:] != maps.shape[1:]:
            raise ValueError(f"healthy maps {healthy_maps.shape} and maps {maps.shape} differ in image size")
    n_h = 0 if healthy_maps is None else healthy_maps.shape[0]
    return _Stack([maps, healthy_maps]), masks.reshape(masks.shape[0], -1), maps.shape[0], n_h


def lm_auc(maps: np.ndarray, masks: np.ndarray, healthy_maps: np.ndarray | None = None) -> float:
    """Location-matched AUC of Pneumonia ``maps`` against their ``masks`` (``lm_auc``); with
    ``healthy_maps`` their pixels are negatives too (``lm_auc_all``). NaN without any pair.

    Per location, the Mann-Whitney count of the positives among all images' scores there, from
    average ranks along the image axis (twice the ranks are integers, so the sums are exact).
    """
    stack, pos_all, n_p, n_h = _inputs(maps, masks, healthy_maps)
    n = n_p + n_h
    wins2 = pairs = 0
    for cols in _blocks(pos_all.shape[1], n):
        pos = pos_all[:, cols]
        n_pos = pos.sum(axis=0, dtype=np.int64)
        if not n_pos.any():
            continue
        ranks2 = np.rint(2 * rankdata(stack.block(cols), axis=0)).astype(np.int64)
        wins2 += int((ranks2[:n_p] * pos).sum() - (n_pos * (n_pos + 1)).sum())
        pairs += int((n_pos * (n - n_pos)).sum())
    return float("nan") if pairs == 0 else wins2 / (2 * pairs)


def location_pairs(maps: np.ndarray, masks: np.ndarray, healthy_maps: np.ndarray | None = None) -> LocationPairs:
    """The pair-count matrices behind :func:`lm_auc` and its bootstrap (see :class:`LocationPairs`).

    Only locations holding a positive somewhere contribute. Cost: P * (P + H) comparisons per such
    location, in blocks of at most :data:`BLOCK_CELLS` elements.
    """
    stack, pos_all, n_p, n_h = _inputs(maps, masks, healthy_maps)
    n = n_p + n_h
    wins2 = np.zeros((n_p, n), np.int64)
    pairs = np.zeros((n_p, n), np.int64)
    active = np.flatnonzero(pos_all.any(axis=0))
    neg_h = np.ones((n_h, 1), bool)
    for sl in _blocks(active.size, n_p * n):
        cols = active[sl]
        pos = pos_all[:, cols]
        neg = np.concatenate([~pos, np.broadcast_to(neg_h, (n_h, cols.size))], axis=0)
        s = stack.block(cols)
        pos_f, neg_f = pos.astype(np.float32), neg.astype(np.float32)
        sign = np.sign(s[:n_p, None, :] - s[None, :, :], dtype=np.float32)
        sign *= neg_f[None, :, :]
        # per block, every sum is an integer below 2^24: exact in float32
        block_pairs = np.rint(pos_f @ neg_f.T).astype(np.int64)
        pairs += block_pairs
        wins2 += block_pairs + np.rint(np.matmul(sign, pos_f[:, :, None])[..., 0]).astype(np.int64)
    return LocationPairs(wins2, pairs, n_p)
