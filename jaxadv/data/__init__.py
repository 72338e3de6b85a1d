"""Data set loaders: the embedded handwritten digits, MNIST-style IDX files and CIFAR-10; the
saliency data sets and generated scenes are in :mod:`jaxadv.data.saliency`."""

from jaxadv.data._cifar10 import load_cifar10
from jaxadv.data._dataset import Dataset
from jaxadv.data._digits import load_digits
from jaxadv.data._mnist import load_mnist, read_idx
from jaxadv.data import saliency

__all__ = ["Dataset", "load_cifar10", "load_digits", "load_mnist", "read_idx", "saliency"]
