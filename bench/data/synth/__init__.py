"""Synthetic chest radiographs with pneumonia opacities, written in the Kaggle RSNA layout.

The suite cannot download RSNA, so this package renders a stand-in data set (SPEC section 1,
"Embedded default data"). One module per job:

- :mod:`~bench.data.synth.draws`: per-image pose, anatomy and exposure parameters;
- :mod:`~bench.data.synth.fields`: smooth noise, ramps and resampling;
- :mod:`~bench.data.synth.anatomy`: the X-ray density of a healthy chest, and 'Not Normal' findings;
- :mod:`~bench.data.synth.boxes`: RSNA-like boxes from the real box statistics, placed on the lungs;
- :mod:`~bench.data.synth.lesions`: the opacity inside each box and the box a reader would write;
- :mod:`~bench.data.synth.render`: one image from its own random stream (image, mask, boxes, lift);
- :mod:`~bench.data.synth.files`: DICOM, PNG and CSV files of the Kaggle layout;
- :mod:`~bench.data.synth.writer`: :func:`generate`, the whole data set in a folder.

Output (``generate``): ``stage_2_train_labels.csv``, ``stage_2_detailed_class_info.csv``,
``stage_2_train_images/<patientId>.dcm``, ``synthetic_masks/<patientId>.png``,
``synthetic_lesion_lift/<patientId>.png`` and ``synthetic.json`` (manifest). 'No Lung Opacity /
Not Normal' images are none by default. 2,000 images of 256 px take about half a minute on one CPU
core.
"""

from bench.data.domains import MASK_DIR
from bench.data.synth.files import (
    CLASS_CSV,
    GENERATOR_NAME,
    GENERATOR_VERSION,
    IMAGE_DIR,
    LABELS_CSV,
    MANIFEST,
)
from bench.data.synth.writer import OutputExistsError, SynthConfig, SynthConfigError, generate

__all__ = [
    "CLASS_CSV",
    "GENERATOR_NAME",
    "GENERATOR_VERSION",
    "IMAGE_DIR",
    "LABELS_CSV",
    "MANIFEST",
    "MASK_DIR",
    "OutputExistsError",
    "SynthConfig",
    "SynthConfigError",
    "generate",
]
