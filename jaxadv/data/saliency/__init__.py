"""Saliency data: loaders for SALICON, MIT1003, CAT2000 and DHF1K, generated scenes, photographs."""

from jaxadv.data.saliency._cat2000 import load_cat2000
from jaxadv.data.saliency._dhf1k import load_dhf1k
from jaxadv.data.saliency._files import DatasetLayoutError
from jaxadv.data.saliency._mit1003 import load_mit1003
from jaxadv.data.saliency._photographs import sample_photographs
from jaxadv.data.saliency._record import SaliencyDataset
from jaxadv.data.saliency._salicon import load_salicon
from jaxadv.data.saliency._scenes import load_scenes, make_scenes, scene_center_bias

__all__ = [
    "DatasetLayoutError",
    "SaliencyDataset",
    "load_cat2000",
    "load_dhf1k",
    "load_mit1003",
    "load_salicon",
    "load_scenes",
    "make_scenes",
    "sample_photographs",
    "scene_center_bias",
]
