"""Models: the plain networks (LeNet, ResNet-18, any torchvision model) and the
LightningModule that trains them.

Names load on first use (``advfit.lazy``): the sweep's up-front attack checks import
``advfit.models.frozen`` (torch only) without the Classifier's Lightning.
"""

from advfit.lazy import exports

_WHERE = {
    "Classifier": "advfit.models.classifier",
    "LeNet": "advfit.models.lenet",
    "ResNet18": "advfit.models.torchvision_nets",
    "TorchvisionNet": "advfit.models.torchvision_nets",
}
__all__ = sorted(_WHERE)
__getattr__, __dir__ = exports(__name__, _WHERE)
