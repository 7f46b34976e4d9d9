"""PILLET-GAN (``pillet``) and its ablation without the spatial attention block (``pillet_nosab``)."""

from methods.pillet.method import Pillet, PilletNoSAB, PilletParams

__all__ = ["Pillet", "PilletNoSAB", "PilletParams"]
