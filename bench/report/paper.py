"""The PILLET-GAN paper's own figures (RSNA, 256 px, 100K iterations; SPEC 3.4), for reference.

They are printed beside a run's figures only when the run used real RSNA data, and always
labelled as the paper's. Keys are registry names; a method the paper did not evaluate is absent.
"""

from __future__ import annotations

ACCURACY = {  # % of translated images classified Healthy: P->H, H->H, P+H->H
    "vagan": (75.34, 98.56, 86.82),
    "stargan": (85.31, 99.55, 94.01),
    "fixedpoint": (88.42, 99.44, 95.15),
    "pillet_nosab": (88.42, 99.66, 95.29),
    "pillet": (87.56, 98.12, 94.01),
}
CHANGE_RATE = {  # pixel change rate: P->H, H->H, P+H->H
    "vagan": (0.7639, 0.6995, 0.7247),
    "stargan": (0.6212, 0.3958, 0.4836),
    "fixedpoint": (0.5226, 0.2425, 0.3515),
    "pillet_nosab": (0.2391, 0.1474, 0.1831),
    "pillet": (0.2612, 0.1061, 0.1664),
}
LOCALIZATION_AUC = {"pillet": 0.83}  # the paper reports PILLET's as the highest of the methods
SPLIT = {"train": 13386, "test": 1487, "pneumonia": (5443, 579), "healthy": (7943, 908)}
