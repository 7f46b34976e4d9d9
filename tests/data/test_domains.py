"""One convention for domains and RSNA names: bench.data.domains, used by the reader and the generator."""

from __future__ import annotations

from pathlib import Path

import bench
import bench.method
from bench.data import domains, rsna, synth
from bench.data.rsna import read_labels


def test_one_definition() -> None:
    assert (domains.HEALTHY, domains.PNEUMONIA) == (0, 1) and domains.DOMAINS[domains.PNEUMONIA] == "pneumonia"
    for module in (bench, bench.method):
        assert (module.HEALTHY, module.PNEUMONIA, module.DOMAINS) == (0, 1, domains.DOMAINS)
    assert rsna.LABEL_FILES is domains.LABEL_FILES and rsna.CLASSES is domains.CLASSES
    assert synth.LABELS_CSV == domains.LABEL_FILES[0] and synth.MASK_DIR == domains.MASK_DIR


def test_generated_classes_map_to_the_domain_codes(synth_root: Path) -> None:
    labels = read_labels(synth_root)
    by_class = {c: {p.domain for p in labels.patients if p.cls == c} for c in (domains.LUNG_OPACITY, domains.NORMAL)}
    assert by_class == {domains.LUNG_OPACITY: {domains.PNEUMONIA}, domains.NORMAL: {domains.HEALTHY}}
    with_boxes = {p.domain for p in labels.patients if len(p.boxes)}
    assert with_boxes == {domains.PNEUMONIA}
