"""CheXNet-CAM and CheXNet-IG maps of the shared classifier (:mod:`bench.classifier`), registered on import."""

from methods.chexnet_cam import method  # noqa: F401  (registers chexnet_cam and chexnet_ig)
