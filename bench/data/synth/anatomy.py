"""X-ray density of a healthy chest in the canonical frame, and the findings of 'Not Normal' images.

The anatomy is a sum of X-ray densities: body soft tissue (elliptic cross-section, neck and
shoulders, optional arms), two lung fields (air, with radial vessel markings and hila), heart and
mediastinum, aortic knob, spine with vertebrae, trachea, clavicles, posterior and anterior ribs,
and the abdomen below the diaphragm domes. 'No Lung Opacity / Not Normal' images carry other
findings without opacities: monitoring leads and lines, or small calcified nodules.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from bench.data.synth.draws import Anatomy, draw_uniform
from bench.data.synth.fields import smooth_noise, smoothstep


def _apex_round(q: np.ndarray, reach: float) -> np.ndarray:
    """Quarter-circle profile: 0 at q = 0, 1 from q = reach on."""
    t = np.clip(q / reach, 0.0, 1.0)
    return np.sqrt(1.0 - (1.0 - t) ** 2)


def _heart_reach(v: np.ndarray, an: Anatomy, sign: float) -> np.ndarray:
    """Distance from the midline of the heart border at height v, on the image side ``sign``.

    The border bulges convexly (a parabola) from the top of the heart to its widest point (the
    apex on the image-right side, the right atrium on the image-left side) and keeps that width
    down to the diaphragm on which the heart rests.
    """
    top, bottom, reach_left, reach_right = an.heart
    start = top if sign > 0 else top + 0.08
    reach = reach_right if sign > 0 else reach_left
    t = np.clip((v - start) / (bottom - start), 0.0, 1.0)
    return reach * (1.0 - (1.0 - t) ** 2)


def lung_margin(u: np.ndarray, v: np.ndarray, an: Anatomy) -> np.ndarray:
    """Approximate signed distance to the lung fields (canonical units, positive inside)."""
    margins = []
    for side, sign in ((0, -1.0), (1, 1.0)):
        d = sign * (u - an.mid)
        apex, base = an.apex[side], an.base[side]
        q = (v - apex) / (base - apex)
        d_apex = 0.17
        d_lat = d_apex + (an.lateral[side] - d_apex) * _apex_round(q, 0.5) + 0.015 * q
        d_med = d_apex - (d_apex - an.medial) * _apex_round(q, 0.3)
        d_med = np.maximum(d_med, _heart_reach(v, an, sign))
        if sign > 0:
            d_med = d_med + 0.02 * np.exp(-(((v - an.heart[0] + 0.06) / 0.035) ** 2))
        centre = 0.5 * (an.medial + an.lateral[side]) - 0.01
        half = 0.62 * (an.lateral[side] - an.medial)
        bump = np.clip(1.0 - ((d - centre) / half) ** 2, 0.0, 1.0)
        floor = base - an.dome[side] * (base - apex) * bump
        m = np.minimum(np.minimum(d_lat - d, d - d_med), np.minimum(floor - v, v - apex))
        margins.append(m)
    return np.maximum(margins[0], margins[1])


def _body_density(u: np.ndarray, v: np.ndarray, an: Anatomy, px: float) -> np.ndarray:
    """Soft tissue density: elliptic cross-section of the trunk, neck, shoulders and arms."""
    shoulder = np.sqrt(smoothstep((v - an.shoulder + 0.09) / 0.2))
    half = an.neck_half_width + (an.body_half_width - an.neck_half_width) * shoulder
    half = half * (1.0 - 0.04 * np.clip(v - 0.6, 0.0, None))
    r = np.abs(u - an.mid) / half
    body = np.sqrt(np.clip(1.0 - r * r, 0.0, 1.0)) ** 0.6
    body *= np.clip((1.0 - r) * half / px + 0.5, 0.0, 1.0)
    if an.arms:
        dr = np.abs(u - an.mid) - an.body_half_width - 0.065
        arm = np.sqrt(np.clip(1.0 - (dr / 0.055) ** 2, 0.0, 1.0)) * smoothstep((v - an.shoulder) / 0.08)
        body = np.maximum(body, 0.6 * arm)
    return body


def _shoulder_density(u: np.ndarray, v: np.ndarray, an: Anatomy) -> np.ndarray:
    """Humeral heads at the upper corners of the chest and the lateral edges of the scapulae."""
    d = np.abs(u - an.mid)
    r = np.sqrt(((d - an.body_half_width + 0.01) / 0.065) ** 2 + ((v - an.shoulder - 0.05) / 0.07) ** 2)
    heads = smoothstep((1.0 - r) / 0.15) * (0.7 + 0.3 * np.clip(r, 0.0, 1.0) ** 2)
    edge = an.body_half_width - 0.07 - 0.35 * (v - an.shoulder - 0.08)
    scapula = smoothstep((d - edge) / 0.01) * smoothstep((an.shoulder + 0.38 - v) / 0.1)
    scapula *= (v > an.shoulder + 0.05) * smoothstep((an.body_half_width - d) / 0.03)
    return 0.3 * heads + 0.05 * scapula


def _rib_density(u: np.ndarray, v: np.ndarray, an: Anatomy, lung: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Posterior ribs (arcs falling laterally) and fainter anterior ribs, with bright cortices."""
    d = np.abs(u - an.mid)
    bend = 1.0 + 1.2 * np.clip(v - an.rib_top, 0.0, None)
    w_post = v - 0.9 * bend * ((d - 0.08) ** 2 - 0.0064)
    phase = (w_post - an.rib_top) / an.rib_spacing
    index = np.clip(np.floor(phase).astype(np.int32), 0, 11)
    width = rng.uniform(0.16, 0.22, 12).astype(np.float32)[index]
    offset = rng.normal(0.0, 0.04, 12).astype(np.float32)[index]
    band = np.abs(phase - np.floor(phase) - 0.5 - offset) / width
    cortex = np.exp(-(band**10)) * (0.6 + 0.4 * np.clip(band, 0.0, 1.0) ** 2)
    reach = an.body_half_width - 0.02
    valid = (phase > 0.0) & (phase < 9.6) & (d < reach)
    posterior = cortex * valid * smoothstep((d - 0.03) / 0.03) * smoothstep((reach - d) / 0.05)
    w_ant = v + 0.42 * (d - 0.42)
    phase_a = (w_ant - an.rib_top - 0.06) / (an.rib_spacing * 1.05)
    band_a = np.abs(phase_a - np.floor(phase_a) - 0.5) / 0.16
    anterior = np.exp(-(band_a**6)) * (phase_a > 0.5) * (phase_a < 6.0)
    anterior *= smoothstep((d - 0.12) / 0.12) * (d < reach)
    return an.rib_density * (posterior * (0.45 + 0.55 * lung) + 0.4 * anterior * lung)


def _clavicle_density(u: np.ndarray, v: np.ndarray, an: Anatomy) -> np.ndarray:
    """Two clavicles running from the manubrium up and out to the shoulders."""
    d = np.abs(u - an.mid)
    t = (d - 0.035) / 0.29
    centre = an.clavicle + 0.035 - 0.1 * t + 0.025 * np.sin(np.pi * t)
    thick = 0.017 + 0.006 * np.clip(1.0 - t, 0.0, 1.0)
    band = np.abs(v - centre) / thick
    ends = smoothstep(t / 0.08) * smoothstep((1.0 - t) / 0.06)
    return 0.3 * np.exp(-(band**6)) * (0.75 + 0.25 * np.clip(band, 0.0, 1.0) ** 2) * ends


def _spine_density(u: np.ndarray, v: np.ndarray, an: Anatomy) -> np.ndarray:
    """Vertebral column with brighter end plates and dark disc spaces; trachea as negative density."""
    du = np.abs(u - an.mid)
    column = np.exp(-((du / 0.04) ** 6))
    level = (v - 0.05) / 0.048
    frac = level - np.floor(level)
    plates = 0.8 + 0.2 * np.cos(2.0 * np.pi * frac) - 0.25 * np.exp(-(((frac - 0.5) / 0.06) ** 2))
    pedicles = 0.25 * np.exp(-(((du - 0.028) / 0.008) ** 2)) * np.exp(-(((frac - 0.3) / 0.15) ** 2))
    trachea = np.exp(-((du / 0.016) ** 4)) * smoothstep((0.37 - v) / 0.05)
    return 0.22 * column * plates + 0.15 * pedicles - 0.16 * trachea


def _vessel_density(rng: np.random.Generator, u: np.ndarray, v: np.ndarray, an: Anatomy) -> np.ndarray:
    """Hilar shadows and lung markings streaking radially out from the hila."""
    out = np.zeros_like(u)
    for sign in (-1.0, 1.0):
        hu = an.mid + sign * 0.1
        hv = 0.46
        du, dv = (u - hu) * sign, v - hv
        r = np.sqrt(du * du + dv * dv)
        theta = np.arctan2(dv, du)
        table = rng.random((56, 10)).astype(np.float32)
        table = ndimage.gaussian_filter(table, (0.6, 1.2), mode="wrap")
        angle = (theta + np.pi) * (56 / (2 * np.pi)) + 3.0 * np.sin(r / 0.05)
        streak = np.clip((_polar_lookup(table, angle, r / 0.04) - 0.45) * 4.0, 0.0, 1.0)
        out += 0.12 * streak * np.exp(-r / 0.16) + 0.2 * np.exp(-((r / 0.045) ** 2))
    return out


def _polar_lookup(table: np.ndarray, angle: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """Bilinear lookup in ``table`` (angle rows, periodic; radius columns, clamped)."""
    n_angle, n_radius = table.shape
    a0 = np.floor(angle)
    fa = angle - a0
    i0 = a0.astype(np.int32) % n_angle
    i1 = (i0 + 1) % n_angle
    radius = np.clip(radius, 0.0, n_radius - 1.001)
    j0 = radius.astype(np.int32)
    fr = radius - j0
    flat = table.ravel()
    k0, k1 = i0 * n_radius + j0, i1 * n_radius + j0
    top = np.take(flat, k0) * (1 - fr) + np.take(flat, k0 + 1) * fr
    bottom = np.take(flat, k1) * (1 - fr) + np.take(flat, k1 + 1) * fr
    return top * (1 - fa) + bottom * fa


def render_anatomy(
    rng: np.random.Generator, u: np.ndarray, v: np.ndarray, an: Anatomy, px: float
) -> tuple[np.ndarray, np.ndarray]:
    """Density of a healthy chest and the signed distance to its lungs at canonical coordinates.

    ``px`` is the width of one pixel in canonical units.
    """
    margin = lung_margin(u, v, an)
    depth = np.clip(margin / px + 0.5, 0.0, 1.0) * (0.45 + 0.55 * np.clip(margin / 0.07, 0.0, 1.0) ** 0.6)
    body = _body_density(u, v, an, px)
    du = u - an.mid
    heart = smoothstep((np.where(du > 0, _heart_reach(v, an, 1.0), _heart_reach(v, an, -1.0)) - np.abs(du)) / 0.04)
    density = 0.95 * body + 0.06 * heart
    density -= 0.66 * depth * body
    density += _vessel_density(rng, u, v, an) * depth
    size = u.shape[0]
    density += 0.035 * smooth_noise(rng, u.shape, (6, 6)) * body
    density += 0.025 * smooth_noise(rng, u.shape, (size // 6, size // 6)) * depth
    density += _rib_density(u, v, an, depth, rng) * body
    density += _clavicle_density(u, v, an) + _spine_density(u, v, an) * body
    density += _shoulder_density(u, v, an) * body
    if an.breast > 0:
        for sign in (-1.0, 1.0):
            r = ((u - an.mid - sign * 0.25) / 0.2) ** 2 + ((v - 0.78) / 0.14) ** 2
            density += an.breast * smoothstep((1.0 - r) / 0.3) * body
    if an.gastric_bubble:
        r = ((u - an.mid - 0.2) / 0.05) ** 2 + ((v - an.base[1] - 0.02) / 0.03) ** 2
        density -= 0.18 * smoothstep((1.0 - r) / 0.5) * (margin < 0)
    return density.astype(np.float32), margin.astype(np.float32)


def add_findings(
    rng: np.random.Generator, u: np.ndarray, v: np.ndarray, an: Anatomy, lung_mask: np.ndarray, px: float
) -> np.ndarray:
    """Extra density of non-pneumonia findings: leads and lines, calcified nodules."""
    out = np.zeros_like(u)
    if rng.random() < 0.6:
        for _ in range(rng.integers(2, 5)):
            cu, cv = draw_uniform(rng, 0.15, 0.85), draw_uniform(rng, 0.15, 0.6)
            r = np.sqrt((u - cu) ** 2 + (v - cv) ** 2)
            out += 0.5 * np.exp(-(((r - 0.018) / max(0.004, px)) ** 2))
        a, b, c = draw_uniform(rng, -1.5, 1.5), draw_uniform(rng, 0.1, 0.9), draw_uniform(rng, 0.02, 0.3)
        curve = b + c * (v - 0.1) + 0.1 * a * (v - 0.4) ** 2
        out += 0.35 * np.exp(-(((u - curve) / max(0.003, px)) ** 2)) * (v < draw_uniform(rng, 0.4, 0.9))
    if rng.random() < 0.5:
        ys, xs = np.nonzero(lung_mask)
        for i in rng.choice(len(ys), size=int(rng.integers(1, 4)), replace=False):
            r = np.sqrt((u - u[ys[i], xs[i]]) ** 2 + (v - v[ys[i], xs[i]]) ** 2)
            out += 0.45 * smoothstep((draw_uniform(rng, 0.006, 0.014) - r) / (2 * px))
    return out
