"""CheXNet: the DenseNet-121 classifier, the chexnet_cam and chexnet_ig methods (registered on import)."""
from methods.chexnet_cam import method  # noqa: F401  (registers chexnet_cam and chexnet_ig)
