"""Data set loaders: the embedded handwritten digits, MNIST-style IDX files and CIFAR-10; the
saliency data sets and generated scenes are in :mod:`jaxadv.data.saliency`. Classification data
with foreground masks (for foreground/background attacks): the generated segment scenes and
Pascal VOC segmentation, as a ``MaskedDataset``; ``check_masks`` validates masks. Videos
``(n, T, H, W, C)`` as a ``VideoDataset``: the generated moving digits (with their known motion
fields) and UCF-101 frame folders."""

from jaxadv.data._cifar10 import load_cifar10
from jaxadv.data._dataset import Dataset
from jaxadv.data._digits import load_digits
from jaxadv.data._mnist import load_mnist, read_idx
from jaxadv.data import saliency
# data with foreground masks (issue 17, part A: segment scenes, VOC segmentation, mask checks)
from jaxadv._checks import check_masks
from jaxadv.data._masked import MaskedDataset
from jaxadv.data._segment_scenes import (
    SEGMENT_CLASS_NAMES,
    load_segment_scenes,
    make_segment_scenes,
)
from jaxadv.data._voc import VOC_CLASS_NAMES, VOC_VOID, load_voc_segmentation
# videos (issue 16): the record, generated moving digits with known motion, UCF-101 frame folders
from jaxadv.data._moving_digits import (
    MOVING_DIGITS_CLASS_NAMES,
    load_moving_digits,
    make_moving_digits,
)
from jaxadv.data._ucf101 import load_ucf101
from jaxadv.data._something import load_something_something  # issue 16: SSv2 frame folders
from jaxadv.data._video import VideoDataset, check_video_batch

__all__ = [
    "Dataset",
    "load_cifar10",
    "load_digits",
    "load_mnist",
    "read_idx",
    "saliency",
    # data with foreground masks (issue 17, part A)
    "MaskedDataset",
    "SEGMENT_CLASS_NAMES",
    "VOC_CLASS_NAMES",
    "VOC_VOID",
    "check_masks",
    "load_segment_scenes",
    "load_voc_segmentation",
    "make_segment_scenes",
    # videos (issue 16)
    "MOVING_DIGITS_CLASS_NAMES",
    "VideoDataset",
    "check_video_batch",
    "load_moving_digits",
    "load_ucf101",
    "load_something_something",
    "make_moving_digits",
]
