"""Per-image random parameters of a synthetic radiograph: pose, anatomy and exposure.

Rendering works in a *canonical* frame (``u``, ``v`` in [0, 1], the 1024-px RSNA frame divided by
1024) in which the anatomy is laid out; a per-image :class:`Pose` (scale, rotation, shift) maps it
to the pixels of the written image. :class:`Anatomy` holds the shape of one chest in that frame and
:class:`Exposure` the display curve and degradations of one acquisition. Global variation is drawn
the same way for every class, so the class can only be told from the lesions; 'Not Normal' images
get a variant anatomy (enlarged heart or raised hemidiaphragm).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


def _normal(rng: np.random.Generator, mean: float, std: float) -> float:
    """One normal draw as a Python float (keeps float32 arithmetic in float32)."""
    return float(rng.normal(mean, std))


def draw_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    """One uniform draw as a Python float."""
    return float(rng.uniform(low, high))


@dataclass(frozen=True)
class Pose:
    """Maps canonical coordinates to normalized image coordinates (both in [0, 1])."""

    scale_x: float
    scale_y: float
    angle: float
    shift_x: float
    shift_y: float

    def to_canonical(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Canonical (u, v) of normalized image points (x, y)."""
        a = (x - 0.5 - self.shift_x) / self.scale_x
        b = (y - 0.5 - self.shift_y) / self.scale_y
        c, s = float(np.cos(self.angle)), float(np.sin(self.angle))
        return 0.5 + c * a + s * b, 0.5 - s * a + c * b

    def to_image(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Normalized image (x, y) of canonical points (u, v)."""
        c, s = np.cos(self.angle), np.sin(self.angle)
        a, b = u - 0.5, v - 0.5
        return (
            0.5 + self.shift_x + self.scale_x * (c * a - s * b),
            0.5 + self.shift_y + self.scale_y * (s * a + c * b),
        )


@dataclass(frozen=True)
class Anatomy:
    """Shape parameters of one chest in the canonical frame (distances in units of the width)."""

    mid: float
    apex: tuple[float, float]
    base: tuple[float, float]
    dome: tuple[float, float]
    lateral: tuple[float, float]
    medial: float
    heart: tuple[float, float, float, float]
    body_half_width: float
    shoulder: float
    neck_half_width: float
    clavicle: float
    rib_top: float
    rib_spacing: float
    rib_density: float
    arms: bool
    breast: float
    gastric_bubble: bool


@dataclass(frozen=True)
class Exposure:
    """Display curve and image degradations of one acquisition."""

    attenuation: float
    low: float
    high: float
    gamma: float
    heel: float
    blur: float
    noise: float


def sample_pose(rng: np.random.Generator) -> Pose:
    """Draw a patient position: size, aspect, small rotation and shift."""
    scale = draw_uniform(rng, 0.9, 1.08)
    return Pose(
        scale_x=scale * draw_uniform(rng, 0.95, 1.05),
        scale_y=scale * draw_uniform(rng, 0.95, 1.05),
        angle=float(np.deg2rad(np.clip(_normal(rng, 0.0, 2.0), -5.0, 5.0))),
        shift_x=float(np.clip(_normal(rng, 0.0, 0.02), -0.05, 0.05)),
        shift_y=float(np.clip(_normal(rng, 0.0, 0.025), -0.06, 0.06)),
    )


def sample_anatomy(rng: np.random.Generator) -> Anatomy:
    """Draw the shape of one chest in the canonical frame."""
    apex = _normal(rng, 0.17, 0.015)
    base = _normal(rng, 0.80, 0.03)
    lateral = _normal(rng, 0.355, 0.015)
    mid = 0.5 + _normal(rng, 0.0, 0.008)
    return Anatomy(
        mid=mid,
        apex=(apex + _normal(rng, 0.0, 0.008), apex + _normal(rng, 0.0, 0.008)),
        base=(base + _normal(rng, -0.01, 0.01), base + _normal(rng, 0.01, 0.01)),
        dome=(draw_uniform(rng, 0.1, 0.18), draw_uniform(rng, 0.08, 0.15)),
        lateral=(lateral + _normal(rng, 0.0, 0.008), lateral + _normal(rng, 0.0, 0.008)),
        medial=_normal(rng, 0.06, 0.006),
        heart=(_normal(rng, 0.4, 0.015), _normal(rng, 0.69, 0.02), _normal(rng, 0.095, 0.01), _normal(rng, 0.2, 0.015)),
        body_half_width=draw_uniform(rng, 0.43, 0.5),
        shoulder=_normal(rng, 0.12, 0.02),
        neck_half_width=draw_uniform(rng, 0.085, 0.115),
        clavicle=_normal(rng, 0.17, 0.015),
        rib_top=_normal(rng, 0.115, 0.01),
        rib_spacing=_normal(rng, 0.066, 0.004),
        rib_density=draw_uniform(rng, 0.09, 0.16),
        arms=bool(rng.random() < 0.4),
        breast=draw_uniform(rng, 0.0, 0.15) if rng.random() < 0.4 else 0.0,
        gastric_bubble=bool(rng.random() < 0.5),
    )


def sample_exposure(rng: np.random.Generator, size: int) -> Exposure:
    """Draw the exposure curve, blur (pixels at ``size``) and noise level of one image."""
    return Exposure(
        attenuation=draw_uniform(rng, 1.7, 2.3),
        low=draw_uniform(rng, 0.2, 0.36),
        high=draw_uniform(rng, 0.95, 1.05),
        gamma=draw_uniform(rng, 0.8, 1.25),
        heel=_normal(rng, 0.0, 0.04),
        blur=draw_uniform(rng, 0.35, 0.9) * max(1.0, size / 256) ** 0.5,
        noise=draw_uniform(rng, 0.008, 0.025),
    )


def not_normal_anatomy(rng: np.random.Generator, an: Anatomy) -> Anatomy:
    """Variant anatomy for the 'Not Normal' class: enlarged heart or raised hemidiaphragm."""
    choice = rng.random()
    if choice < 0.4:
        top, bottom, reach_left, reach_right = an.heart
        k = draw_uniform(rng, 1.15, 1.3)
        return _replace(an, heart=(top - 0.02, bottom, reach_left * k, reach_right * k))
    if choice < 0.6:
        side = int(rng.integers(0, 2))
        base = list(an.base)
        base[side] -= draw_uniform(rng, 0.06, 0.12)
        return _replace(an, base=(base[0], base[1]))
    return an


def _replace(an: Anatomy, **changes: object) -> Anatomy:
    """Copy of ``an`` with some fields changed."""
    values = asdict(an)
    values.update(changes)
    return Anatomy(**values)
