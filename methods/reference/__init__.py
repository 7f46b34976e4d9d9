"""Reference maps (registered as ``ref_random``, ``ref_intensity``, ``ref_edge``, ``ref_prior``, ``ref_oracle``)."""

from methods.reference.maps import Edge, Intensity, Oracle, Prior, RandomNoise

__all__ = ["Edge", "Intensity", "Oracle", "Prior", "RandomNoise"]
