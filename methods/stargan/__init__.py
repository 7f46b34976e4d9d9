"""StarGAN (registered as ``stargan``)."""

from methods.stargan.method import StarGAN, StarGANParams

__all__ = ["StarGAN", "StarGANParams"]
