"""Evaluation (SPEC 3): the protocol, the classifier as judge, the metrics, the verdict, external maps."""
