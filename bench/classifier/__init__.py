"""The shared CheXNet classifier (DenseNet-121, one Pneumonia logit), used by the classifier-based
methods and, as the Table 1 evaluator, by the engine.

- :mod:`bench.classifier.model`: the network, building it, logits and AUC.
- :mod:`bench.classifier.weights`: export, user weights (``weights_only=True`` / safetensors, 2-class
  heads) and :func:`load_classifier`.
- :mod:`bench.classifier.train`: the trainer (balanced sampling, augmentation, early stopping on tune).
- :mod:`bench.classifier.shared`: one trained classifier per key, shared by all its users.

The classifier as Table 1's judge is :mod:`bench.evaluate.judge`.
"""

from bench.classifier.model import (
    ARCH,
    DenseNetClassifier,
    auc_or_nan,
    build_classifier,
    dataset_logits,
    predict_logits,
)
from bench.classifier.shared import ClassifierBundle, classifier_store, obtain_classifier
from bench.classifier.train import (
    ClassifierTrainer,
    TrainOutcome,
    classifier_key,
    train_classifier,
)
from bench.classifier.weights import (
    export_weights,
    load_classifier,
    load_user_classifier,
    load_weights,
)

__all__ = [
    "ARCH",
    "ClassifierBundle",
    "ClassifierTrainer",
    "DenseNetClassifier",
    "TrainOutcome",
    "auc_or_nan",
    "build_classifier",
    "classifier_key",
    "classifier_store",
    "dataset_logits",
    "export_weights",
    "load_classifier",
    "load_user_classifier",
    "load_weights",
    "obtain_classifier",
    "predict_logits",
    "train_classifier",
]
