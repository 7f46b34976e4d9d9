"""Box statistics of the real RSNA Pneumonia Detection Challenge labels, as literal numbers.

Derived once from ``stage_2_train_labels.csv`` (stage 2, 30,227 rows, 26,684 patients; 6,012
'Lung Opacity' patients with 9,555 boxes), so that the synthetic generator can sample realistic
boxes without the real CSV at run time. All coordinates are pixels of the 1024 x 1024 original.

How the numbers were obtained (a throwaway script, not part of the suite):

* boxes were grouped by patientId over the ``Target == 1`` rows;
* a box is on the *image-left* side (the patient's right lung) when its centre x is < 512,
  otherwise on the *image-right* side;
* a box is described by the feature vector ``(cx, cy, log w, log h)`` (centre and log size);
  means and covariances (numpy ``np.cov``, ddof 1) were taken over
  - single-box patients, per side (``SINGLE_BOX_GAUSSIAN``),
  - all boxes, per side (``ANY_BOX_GAUSSIAN``),
  - two-box patients with one box per side, as one 8-vector (image-left box first)
    (``OPPOSITE_PAIR_GAUSSIAN``; the two boxes of a patient are strongly correlated:
    corr(cy_left, cy_right) = 0.71, corr(log h_left, log h_right) = 0.76);
* ``SIDE_CLIP`` holds the 1 % and 99 % quantiles of cx, cy, w, h per side (all boxes);
* ``QUANTILES`` holds 5/25/50/75/95 % quantiles over all boxes, for checks and documentation.

Same-side box pairs (219 of them) practically never overlap (IoU median 0, maximum 0.055).
"""

from __future__ import annotations

ORIGINAL_SIZE = 1024
"""Rows = Columns of the real RSNA DICOMs; all numbers below are in these pixels."""

N_LUNG_OPACITY_PATIENTS = 6012
N_BOXES = 9555

BOXES_PER_PATIENT: dict[int, int] = {1: 2614, 2: 3266, 3: 119, 4: 13}
"""Number of 'Lung Opacity' patients with 1, 2, 3 and 4 boxes."""

SIDE_SPLIT: dict[tuple[int, int], int] = {
    (1, 0): 996,
    (1, 1): 1618,
    (2, 0): 29,
    (2, 1): 3196,
    (2, 2): 41,
    (3, 1): 45,
    (3, 2): 73,
    (3, 3): 1,
    (4, 1): 2,
    (4, 2): 11,
}
"""Patients counted by (number of boxes, number of boxes with centre x < 512)."""

FRACTION_IMAGE_LEFT = 0.5352
"""Share of all boxes whose centre x is < 512 (5,114 of 9,555)."""

FRACTION_OPPOSITE_SIDES_TWO_BOXES = 0.9786
"""Share of two-box patients whose boxes lie on opposite sides (3,196 of 3,266)."""

FEATURES = ("cx", "cy", "log_w", "log_h")

SINGLE_BOX_GAUSSIAN: dict[str, tuple[list[float], list[list[float]]]] = {
    "left": (
        [319.059, 542.0065, 5.2548, 5.3823],
        [
            [3590.0418, -975.9849, -2.6346, 0.7566],
            [-975.9849, 15067.3353, 0.3896, -6.9952],
            [-2.6346, 0.3896, 0.0865, 0.0759],
            [0.7566, -6.9952, 0.0759, 0.2239],
        ],
    ),
    "right": (
        [715.6867, 539.6903, 5.3223, 5.473],
        [
            [3351.6138, 899.1378, 0.5285, 1.3824],
            [899.1378, 13774.266, 3.2723, -4.7205],
            [0.5285, 3.2723, 0.1063, 0.0999],
            [1.3824, -4.7205, 0.0999, 0.25],
        ],
    ),
}
"""Mean and covariance of (cx, cy, log w, log h) of the box of single-box patients, per side."""

ANY_BOX_GAUSSIAN: dict[str, tuple[list[float], list[list[float]]]] = {
    "left": (
        [320.7826, 529.0954, 5.3217, 5.6253],
        [
            [3701.1674, -992.8523, -3.0688, -0.0183],
            [-992.8523, 13517.333, 0.311, -11.2502],
            [-3.0688, 0.311, 0.0812, 0.0888],
            [-0.0183, -11.2502, 0.0888, 0.2696],
        ],
    ),
    "right": (
        [713.4409, 534.2139, 5.3756, 5.7297],
        [
            [3613.2352, 1009.4272, 1.6187, 0.4267],
            [1009.4272, 12912.4667, 1.8852, -6.3531],
            [1.6187, 1.8852, 0.0873, 0.0913],
            [0.4267, -6.3531, 0.0913, 0.2515],
        ],
    ),
}
"""Mean and covariance of (cx, cy, log w, log h) over all boxes (5,114 left, 4,441 right)."""

OPPOSITE_PAIR_GAUSSIAN: tuple[list[float], list[list[float]]] = (
    [321.3672, 525.3015, 5.3753, 5.7889, 713.0684, 534.084, 5.4105, 5.8386],
    [
        [3699.2421, -844.0427, -3.3373, -0.4415, 2011.4726, -532.4075, -1.434, -0.3561],
        [-844.0427, 11575.9261, -0.698, -13.4113, 782.0342, 8230.4884, -0.3582, -9.5183],
        [-3.3373, -0.698, 0.0687, 0.0718, 1.0452, -0.073, 0.0444, 0.0634],
        [-0.4415, -13.4113, 0.0718, 0.2275, -1.1609, -6.7898, 0.0632, 0.1674],
        [2011.4726, 782.0342, 1.0452, -1.1609, 3517.3312, 903.7551, 1.7853, 0.1055],
        [-532.4075, 8230.4884, -0.073, -6.7898, 903.7551, 11660.9966, 0.566, -7.5248],
        [-1.434, -0.3582, 0.0444, 0.0632, 1.7853, 0.566, 0.0751, 0.0756],
        [-0.3561, -9.5183, 0.0634, 0.1674, 0.1055, -7.5248, 0.0756, 0.213],
    ],
)
"""(cx, cy, log w, log h) of the image-left box then the image-right box, 3,196 two-box patients."""

SIDE_CLIP: dict[str, dict[str, tuple[float, float]]] = {
    "left": {"cx": (176.0, 467.0), "cy": (248.6, 788.5), "w": (96.0, 350.0), "h": (77.1, 695.9)},
    "right": {"cx": (567.4, 853.4), "cy": (258.2, 792.3), "w": (94.0, 371.0), "h": (88.0, 740.0)},
}
"""1 % and 99 % quantiles of box centre and size per side (all boxes)."""

QUANTILES: dict[str, list[float]] = {
    "levels": [0.05, 0.25, 0.5, 0.75, 0.95],
    "w": [124.0, 177.0, 217.0, 259.0, 317.0],
    "h": [121.0, 203.0, 298.0, 438.0, 623.0],
    "cy": [342.35, 455.0, 531.0, 609.0, 720.0],
    "cx_left": [220.0, 281.5, 319.0, 360.0, 424.7],
    "cx_right": [614.5, 675.0, 714.0, 753.0, 811.5],
}
"""Quantiles of width, height and centre over all boxes (cx per side)."""
