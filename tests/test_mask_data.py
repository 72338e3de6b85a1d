"""Data with foreground masks: the generated segment scenes, the Pascal VOC segmentation loader
(on fabricated copies in the real layout), masks from saliency maps, and the mask check."""

from __future__ import annotations

import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from jaxadv.data import (
    SEGMENT_CLASS_NAMES,
    VOC_CLASS_NAMES,
    MaskedDataset,
    check_masks,
    load_segment_scenes,
    load_voc_segmentation,
    make_segment_scenes,
)
from jaxadv.data.saliency import DatasetLayoutError
from jaxadv.image import foreground_from_saliency

# ---------------------------------------------------------------------------------------------
# Segment scenes


@pytest.fixture(scope="module")
def train():
    return load_segment_scenes("train", 480)


@pytest.fixture(scope="module")
def test_split():
    return load_segment_scenes("test", 240)


def test_segment_scenes_contract(train):
    n = len(train)
    assert train.images.shape == (n, 32, 32, 3) and train.images.dtype == np.float32
    assert train.labels.shape == (n,) and train.labels.dtype == np.int32
    assert train.masks.shape == (n, 32, 32, 1) and train.masks.dtype == np.float32
    assert train.images.min() >= 0.0 and train.images.max() <= 1.0
    assert set(np.unique(train.masks)) == {0.0, 1.0}
    assert train.class_names == SEGMENT_CLASS_NAMES and train.num_classes == 6
    assert np.array_equal(np.bincount(train.labels), [n // 6] * 6)  # balanced
    area = train.masks.sum(axis=(1, 2, 3))
    # Circumradius >= 8 px at 32×32: the smallest object (a triangle) covers ~1.3 R² ≈ 83 px.
    assert area.min() >= 60 and area.max() < 32 * 32 / 2
    assert train.ids[:2] == ("train/000000", "train/000001") and train.name.endswith("train")
    other = make_segment_scenes(7, size=(20, 24), seed=3)
    assert other.images.shape == (7, 20, 24, 3) and other.masks.shape == (7, 20, 24, 1)


def test_segment_scenes_are_deterministic_and_splits_differ(train, test_split):
    again = load_segment_scenes("train", 12)  # a prefix: scene i does not depend on n
    assert np.array_equal(again.images, train.images[:12])
    assert np.array_equal(again.masks, train.masks[:12])
    assert np.array_equal(again.labels, train.labels[:12])
    a, b = make_segment_scenes(6, seed=4), make_segment_scenes(6, seed=4)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.masks, b.masks)
    assert not np.array_equal(make_segment_scenes(6, seed=5).images, a.images)
    flat_train = train.images.reshape(len(train), -1)
    flat_test = test_split.images.reshape(len(test_split), -1)
    assert not np.any((flat_test[:, None, :64] == flat_train[None, :, :64]).all(-1))


def test_mask_covers_the_object_exactly(train):
    for x, m in zip(train.images, train.masks[..., 0] > 0):
        colour = x[m].mean(axis=0)
        # Inside: one flat colour plus grain (std 0.02).
        assert np.sqrt(((x[m] - colour) ** 2).mean(-1)).max() < 0.1
        # The 1-px ring just outside: background, at least 0.25 RMS away on average before
        # texture; a mask one pixel too small or too large would put object pixels here.
        ring = ndimage.binary_dilation(m) & ~m
        distance = np.sqrt(((x[ring] - colour) ** 2).mean(-1))
        assert distance.mean() > 0.15 and (distance < 0.08).mean() < 0.1


def test_each_class_has_its_outline(train):
    masks = train.masks[..., 0] > 0
    holes = np.array([ndimage.binary_fill_holes(m).sum() > m.sum() for m in masks])
    assert np.array_equal(holes, train.labels == SEGMENT_CLASS_NAMES.index("ring"))
    # Convex shapes fill their convex hull; the cross does not. Hull area via its bounding
    # polygon is costly, so compare with the bounding box: a square fills >= 0.8 of it (tilt
    # <= 15°), a disc ~π/4, a diamond/triangle ~1/2, a cross ~0.6.
    fill = np.array([m.sum() / _box_area(m) for m in masks])
    by_class = [np.median(fill[train.labels == k]) for k in range(6)]
    assert by_class[SEGMENT_CLASS_NAMES.index("square")] == max(by_class)
    assert by_class[SEGMENT_CLASS_NAMES.index("disc")] > 0.7


def _box_area(m):
    rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
    return (rows[-1] - rows[0] + 1) * (cols[-1] - cols[0] + 1)


def test_the_class_changes_only_the_foreground():
    # The same scenes drawn with every class: outside the two objects' outlines the pixels are
    # identical, so the background carries no information about the class.
    scenes = [make_segment_scenes(8, seed=11, labels=[k] * 8) for k in range(6)]
    for a in scenes:
        for b in scenes:
            if a is b:
                continue
            outside = (a.masks == 0) & (b.masks == 0)
            assert np.array_equal(np.where(outside, a.images, 0), np.where(outside, b.images, 0))
            assert not np.array_equal(a.masks, b.masks)


def _silhouettes(images, masks, half=13):
    """What a shape classifier sees: the pixels of the mask's colour, cropped around the mask's
    centroid (from the image; the mask gives only where to look and which colour)."""
    out = []
    for x, m in zip(images, masks[..., 0] > 0):
        rows, cols = np.nonzero(m)
        cy, cx = int(round(rows.mean())), int(round(cols.mean()))
        same = np.sqrt(((x - x[m].mean(axis=0)) ** 2).mean(-1)) < 0.08
        out.append(np.pad(same, half)[cy : cy + 2 * half, cx : cx + 2 * half].ravel())
    return np.asarray(out, np.float64)


def _nearest_mean_accuracy(features, labels, test_features, test_labels):
    means = np.stack([features[labels == k].mean(axis=0) for k in range(6)])
    distance = ((test_features[:, None, :] - means[None]) ** 2).sum(-1)
    return float((distance.argmin(1) == test_labels).mean())


def test_a_classifier_on_the_foreground_beats_chance_and_elsewhere_does_not(train, test_split):
    fit = _silhouettes(train.images, train.masks)
    right = _nearest_mean_accuracy(
        fit, train.labels, _silhouettes(test_split.images, test_split.masks), test_split.labels
    )
    # Control: look at a region of the same image that a train object's mask covers but which
    # is disjoint from this image's object (background only): the class is not there.
    flat_test = test_split.masks.reshape(len(test_split), -1)
    overlap = flat_test @ train.masks.reshape(len(train), -1).T
    pick = [(i, int(np.argmax(overlap[i] == 0))) for i in range(len(test_split))]
    pick = [(i, j) for i, j in pick if overlap[i, j] == 0]
    rows, partners = np.array(pick).T
    elsewhere = _nearest_mean_accuracy(
        fit,
        train.labels,
        _silhouettes(test_split.images[rows], train.masks[partners]),
        test_split.labels[rows],
    )
    assert len(rows) >= 40  # 62 of the 240 have a disjoint partner
    assert right > 0.6, right  # chance is 1/6
    assert elsewhere < 0.3, elsewhere


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: make_segment_scenes(0), "`n` must be an integer >= 1"),
        (lambda: make_segment_scenes(2, seed=-1), "`seed` must be a non-negative integer"),
        (lambda: make_segment_scenes(2, size=(8, 32)), "`size` must be a pair"),
        (lambda: make_segment_scenes(2, labels=[0]), "`labels` must be 2 integers"),
        (lambda: make_segment_scenes(2, labels=[0, 6]), "`labels` must lie in [0, 5]"),
        (lambda: load_segment_scenes("val"), "`split` must be one of 'train', 'test'"),
    ],
)
def test_segment_scenes_bad_arguments(call, message):
    with pytest.raises(ValueError, match=_literal(message)):
        call()


def _literal(text):
    import re

    return re.escape(text)


# ---------------------------------------------------------------------------------------------
# Pascal VOC segmentation, on fabricated copies in the published layout

CAT, DOG, PERSON = (VOC_CLASS_NAMES.index(c) + 1 for c in ("cat", "dog", "person"))
H, W = 24, 36


def _label_maps():
    """Index maps (h=24, w=36), regions aligned to 2×2 blocks so halving is exact."""
    a = np.zeros((H, W), np.uint8)
    a[2:16, 4:20] = CAT  # 224 px
    a[18:22, 24:32] = DOG  # 32 px
    a[1, 4:20] = a[16, 4:20] = 255  # void outline above and below the cat
    b = np.zeros((H, W), np.uint8)
    b[4:20, 10:30] = PERSON
    c = np.zeros((H, W), np.uint8)  # background only: always skipped
    d = np.zeros((H, W), np.uint8)  # a tie: 64 px of cat, 64 px of dog
    d[0:8, 0:8], d[10:18, 10:18] = CAT, DOG
    return {"2008_000001": a, "2008_000002": b, "2008_000003": c, "2008_000004": d}


_PALETTE = [v for i in range(256) for v in ((i * 37) % 256, (i * 91) % 256, (i * 53) % 256)]


def _write_voc(root: Path, *, mask_mode="P", image_size=(W, H), bad_index=False, drop=None):
    maps = _label_maps()
    if bad_index:
        maps["2008_000002"][0, 0] = 30
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for image_id, index in maps.items():
        colour = np.zeros((H, W, 3), np.uint8)
        colour[index > 0] = (200, 40, 40)
        colour[index == 0] = (30, 90, 160)
        Image.fromarray(colour).resize(image_size).save(root / f"JPEGImages/{image_id}.jpg")
        png = Image.fromarray(index, mode="P")
        png.putpalette(_PALETTE)
        if mask_mode != "P":
            png = png.convert(mask_mode)
        png.save(root / f"SegmentationClass/{image_id}.png")
    ids = "\n".join(maps) + "\n"
    (root / "ImageSets/Segmentation/train.txt").write_text(ids)
    (root / "ImageSets/Segmentation/val.txt").write_text("2008_000002\n")
    if drop:
        target = root / drop
        if target.is_dir():
            for f in target.iterdir():
                f.unlink()
            target.rmdir()
        else:
            target.unlink()
    return root


@pytest.fixture(scope="module")
def voc(tmp_path_factory):
    return _write_voc(tmp_path_factory.mktemp("voc") / "VOCdevkit" / "VOC2012")


def test_voc_labels_masks_and_void(voc):
    ds = load_voc_segmentation(voc, size=(H, W))
    maps = _label_maps()
    assert isinstance(ds, MaskedDataset) and ds.class_names == VOC_CLASS_NAMES
    assert ds.ids == ("2008_000001", "2008_000002", "2008_000004")  # the empty map is skipped
    assert ds.labels.tolist() == [CAT - 1, PERSON - 1, CAT - 1]  # cat wins the tie: first class
    assert np.array_equal(ds.masks[0, ..., 0], maps["2008_000001"] == CAT)  # void → background
    assert np.array_equal(ds.masks[1, ..., 0], maps["2008_000002"] == PERSON)
    red = np.array([200, 40, 40]) / 255
    inside = ds.images[1][maps["2008_000002"] == PERSON]
    assert np.abs(inside.mean(0) - red).max() < 0.05  # the JPEG is the image of that mask
    void = load_voc_segmentation(voc, size=(H, W), void="foreground")
    a = maps["2008_000001"]
    assert np.array_equal(void.masks[0, ..., 0], (a == CAT) | (a == 255))
    # The parent of VOCdevkit/ works too, and `limit` stops early.
    assert load_voc_segmentation(voc.parents[1], size=(H, W), limit=1).ids == ("2008_000001",)
    assert load_voc_segmentation(voc, "val", size=(H, W)).ids == ("2008_000002",)


def test_voc_class_subset_and_resize(voc):
    ds = load_voc_segmentation(voc, classes=["dog", "person"], size=(H // 2, W // 2))
    assert ds.class_names == ("dog", "person") and ds.images.shape == (3, 12, 18, 3)
    assert ds.labels.tolist() == [0, 1, 0]  # the cat is not a chosen class: the dog labels 1
    maps = _label_maps()
    for mask, image_id, cls in zip(ds.masks[..., 0], ds.ids, (DOG, PERSON, DOG)):
        halved = (maps[image_id] == cls)[::2, ::2]  # regions are 2×2-aligned: exact
        assert np.array_equal(mask, halved)
    assert set(np.unique(ds.masks)) == {0.0, 1.0}
    odd = load_voc_segmentation(voc, classes=["person"], size=(10, 14))  # not a whole factor
    area = (maps["2008_000002"] == PERSON).mean()
    assert set(np.unique(odd.masks)) == {0.0, 1.0} and abs(odd.masks.mean() - area) < 0.05
    assert load_voc_segmentation(voc, classes=["dog", "cat"], size=(H, W)).labels[-1] == 0  # tie
    assert load_voc_segmentation(voc, classes=["person"], size=(H, W)).ids == ("2008_000002",)


@pytest.mark.parametrize(
    "options, call, message",
    [
        ({"drop": "SegmentationClass"}, {}, "missing 'SegmentationClass'"),
        ({"drop": "JPEGImages/2008_000002.jpg"}, {}, "missing 'JPEGImages/2008_000002.jpg'"),
        ({"drop": "ImageSets/Segmentation/val.txt"}, {"split": "val"}, "Segmentation/val.txt'"),
        ({"mask_mode": "RGB"}, {}, "must be a palette (indexed, mode 'P') PNG"),
        ({"mask_mode": "L"}, {}, "got mode 'L'"),
        ({"image_size": (W + 2, H)}, {}, "must have the same size"),
        ({"bad_index": True}, {}, "holds indices [30]"),
        ({}, {"classes": ["cat", "unicorn"]}, "unknown class names ['unicorn']"),
        ({}, {"classes": "cat"}, "`classes` must be a non-empty sequence"),
        ({}, {"classes": ["cat", "cat"]}, "must not repeat a name"),
        ({}, {"classes": ["sheep"]}, "shows any of the classes ['sheep']"),
        ({}, {"void": "ignore"}, "`void` must be one of"),
        ({}, {"split": "test"}, "`split` must be one of"),
    ],
)
def test_voc_bad_input(tmp_path, options, call, message):
    root = _write_voc(tmp_path / "VOC2012", **options)
    with pytest.raises(ValueError, match=_literal(message)) as info:
        load_voc_segmentation(root, **{"size": (H, W), **call})
    if "drop" in options:
        assert isinstance(info.value, DatasetLayoutError) and str(root) in str(info.value)


def test_voc_missing_root(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_voc_segmentation(tmp_path / "nowhere")


# ---------------------------------------------------------------------------------------------
# Masks from saliency maps, and the mask check


# One compiled program for every top_q check: q is traced, vmapped with the maps.
_top_q = jax.jit(jax.vmap(lambda m, q: foreground_from_saliency(m, top_q=q)))


def test_top_q_keeps_exactly_the_fraction_and_the_most_salient():
    qs = np.array([0.0, 0.1, 0.33, 0.40625, 0.5, 1.0, 0.25, 0.25], np.float32)
    maps = np.random.default_rng(0).normal(size=(8, 8, 10)).astype(np.float32)
    maps[-1] = -0.0  # ties: taken in row-major order...
    maps[-1, 7, 9] = 1.0
    maps[-1, 7, 0] = 0.0  # ...and 0.0 ties with -0.0 by position, not by sign
    masks = np.asarray(_top_q(maps, qs))
    assert masks.shape == (8, 8, 10, 1) and masks.dtype == np.float32
    for m, s, q in zip(masks[..., 0] > 0, maps, qs):
        k = math.floor(float(q) * 80 + 0.5)
        assert m.sum() == k
        if 0 < k < 80:
            assert s[m].min() >= s[~m].max()
    ties = np.zeros(80, bool)
    ties[:19] = True  # 20 pixels: the 1.0, then the first 19 zeros in row-major order
    ties[79] = True
    assert np.array_equal(masks[-1, ..., 0].ravel() > 0, ties)


def test_threshold_rule():
    maps = np.random.default_rng(2).uniform(size=(2, 5, 7))
    masks = foreground_from_saliency(maps[..., None], threshold=0.6)  # a trailing channel axis
    assert masks.shape == (2, 5, 7, 1) and masks.dtype == jnp.float32
    assert np.array_equal(np.asarray(masks)[..., 0], (maps >= 0.6).astype(np.float32))


@pytest.mark.parametrize(
    "maps, kwargs, message",
    [
        (np.zeros((4, 4)), {}, "Exactly one of `top_q` and `threshold`"),
        (np.zeros((4, 4)), {"top_q": 0.5, "threshold": 0.1}, "Exactly one of"),
        (np.zeros((4, 4)), {"top_q": 1.5}, "`top_q` must lie in [0, 1]"),
        (np.zeros((4, 4)), {"threshold": np.nan}, "`threshold` must be finite"),
        (np.zeros((4, 4)), {"top_q": np.array([0.1, 0.2])}, "`top_q` must be one number"),
        (np.array([np.nan, 0.0] * 8).reshape(4, 4), {"top_q": 0.5}, "`maps` must be finite"),
        (np.zeros(16), {"top_q": 0.5}, "`maps` must have shape [..., h, w]"),
        (np.zeros((4, 4), bool), {"top_q": 0.5}, "`maps` must hold real numbers"),
    ],
)
def test_foreground_from_saliency_bad_input(maps, kwargs, message):
    with pytest.raises(ValueError, match=_literal(message)):
        foreground_from_saliency(maps, **kwargs)


def test_check_masks_accepts_and_names_the_argument():
    check_masks("masks", np.ones((2, 5, 6, 1), np.float32), (2, 5, 6, 3))
    check_masks("mask", np.zeros((5, 6, 1), bool), (5, 6, 3))
    check_masks("masks", jnp.zeros((2, 5, 6, 1)), (2, 5, 6, 3))
    # Traced values are not checked (shapes are): 0.5 passes inside a trace.
    jax.eval_shape(lambda m: check_masks("masks", m, (5, 6, 3)) or m, jnp.full((5, 6, 1), 0.5))
    bad = [
        (np.ones((2, 5, 6)), "`dual_masks` must have shape (2, 5, 6, 1)", "masks[..., None]"),
        (np.ones((2, 5, 6, 3)), "got (2, 5, 6, 3)", "ONE channel"),
        (np.full((2, 5, 6, 1), 0.5), "only 0 (background) and 1 (foreground)", "[0.5]"),
        (np.full((2, 5, 6, 1), np.inf), "`dual_masks` must be finite", ""),
        (np.ones((2, 5, 6, 1), np.complex64), "must hold real numbers", ""),
    ]
    for masks, first, second in bad:
        with pytest.raises(ValueError, match=_literal(first)) as info:
            check_masks("dual_masks", masks, (2, 5, 6, 3))
        assert second in str(info.value)
    with pytest.raises(ValueError, match=_literal("`masks` must hold only 0")):
        scenes = make_segment_scenes(2)
        MaskedDataset(scenes.images, scenes.labels, scenes.masks * 0.5, ("a",) * 6, "x")
