"""Models: the plain LeNet network and the LightningModule that trains it."""

from advfit.models.classifier import Classifier
from advfit.models.lenet import LeNet

__all__ = ["Classifier", "LeNet"]
