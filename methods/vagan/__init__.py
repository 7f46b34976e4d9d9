"""VA-GAN (registered as ``vagan``)."""

from methods.vagan.method import VAGAN, VAGANParams

__all__ = ["VAGAN", "VAGANParams"]
