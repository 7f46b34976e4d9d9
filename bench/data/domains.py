"""Domain codes and the RSNA file and class names: the one place that defines them.

The benchmark translates between two domains, coded ``HEALTHY = 0`` and ``PNEUMONIA = 1``
everywhere (dataset ``domain`` values, translation targets, classifier labels). RSNA's
'Lung Opacity' class is the Pneumonia domain, 'Normal' the Healthy one; 'No Lung Opacity /
Not Normal' is left out or counted as Healthy (``data.include_not_normal``).
"""

from __future__ import annotations

HEALTHY = 0
PNEUMONIA = 1
DOMAINS = ("healthy", "pneumonia")  # names, indexed by domain code
DOMAIN_CODES = (HEALTHY, PNEUMONIA)
EXCLUDED = -1  # domain of a patient left out of both domains

# RSNA class strings (stage_2_detailed_class_info.csv)
LUNG_OPACITY = "Lung Opacity"
NORMAL = "Normal"
NOT_NORMAL = "No Lung Opacity / Not Normal"
CLASSES = (LUNG_OPACITY, NORMAL, NOT_NORMAL)

# RSNA file and folder names, newest first; the synthetic generator writes the first of each
LABEL_FILES = ("stage_2_train_labels.csv", "stage_1_train_labels.csv")
CLASS_FILES = ("stage_2_detailed_class_info.csv", "stage_1_detailed_class_info.csv")
IMAGE_DIRS = ("stage_2_train_images", "stage_1_train_images")
MASK_DIR = "synthetic_masks"  # pixel-exact lesion masks of the synthetic data
LABEL_COLUMNS = ("patientId", "x", "y", "width", "height", "Target")
CLASS_COLUMNS = ("patientId", "class")
