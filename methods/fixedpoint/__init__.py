"""Fixed-Point GAN (registered as ``fixedpoint``)."""

from methods.fixedpoint.method import FixedPoint, FixedPointParams

__all__ = ["FixedPoint", "FixedPointParams"]
