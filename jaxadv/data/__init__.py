"""Data set loaders: the embedded handwritten digits, MNIST-style IDX files and CIFAR-10."""

from jaxadv.data._cifar10 import load_cifar10
from jaxadv.data._dataset import Dataset
from jaxadv.data._digits import load_digits
from jaxadv.data._mnist import load_mnist, read_idx

__all__ = ["Dataset", "load_cifar10", "load_digits", "load_mnist", "read_idx"]
