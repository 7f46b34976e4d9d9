"""The supervised ceiling reference (registered as ``ref_supervised``)."""

from methods.supervised.method import SupervisedCeiling, SupervisedParams

__all__ = ["SupervisedCeiling", "SupervisedParams"]
