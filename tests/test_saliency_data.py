"""Tests of jaxadv.data.saliency: loaders on tiny fabricated copies of the real on-disk layouts,
the generated scenes, and the bundled photographs.

The fabricated trees follow the layouts read from the data sets' own code and releases
(see the notes on SALICON, MIT1003, CAT2000 and DHF1K): lossless PNG maps are compared exactly,
JPEG files against an independent decode of the file written, and fixations against the
coordinates written, converted by hand to 0-based (x, y).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image
from scipy.ndimage import gaussian_filter

from jaxadv.data.saliency import (
    DatasetLayoutError,
    SaliencyDataset,
    load_cat2000,
    load_dhf1k,
    load_mit1003,
    load_salicon,
    load_scenes,
    make_scenes,
    sample_photographs,
    scene_center_bias,
)

H, W = 24, 32  # fabricated images: 24 rows, 32 columns (asymmetric, so a transpose shows)

# --------------------------------------------------------------------------------------------
# Fabricators
# --------------------------------------------------------------------------------------------


def rgb(seed: int, h: int = H, w: int = W) -> np.ndarray:
    """A smooth uint8 RGB picture whose three channels differ (JPEG keeps it close)."""
    y, x = np.mgrid[0:h, 0:w]
    phase = seed * 0.7
    planes = [
        128 + 100 * np.sin(x / 5 + phase),
        128 + 100 * np.cos(y / 4 + phase),
        40 + 6 * (x + y),
    ]
    return np.clip(np.stack(planes, -1), 0, 255).astype(np.uint8)


def gray(seed: int, h: int = H, w: int = W) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w), dtype=np.uint8)


def save(path: Path, pixels: np.ndarray, **options) -> np.ndarray:
    """Writes an image file and returns what a decoder reads back from it, divided by 255."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, **options)
    with Image.open(path) as picture:
        return np.asarray(picture.convert("RGB" if pixels.ndim == 3 else "L")) / 255.0


def binary_jpeg(path: Path, points_xy, h: int = H, w: int = W) -> None:
    """A binary fixation map saved as a quality-75 JPEG, as MIT1003's ``_fixPts.jpg``."""
    plane = np.zeros((h, w), np.uint8)
    for x, y in points_xy:
        plane[y, x] = 255
    save(path, plane, quality=75)


# SALICON: per image, fixations of each subject as [x y] 1-based (the .mat convention).
SALICON_STEMS = ["COCO_train2014_000000000009", "COCO_train2014_000000000025"]
SALICON_FIXATIONS = [
    # subject 1: a duplicate; subject 2: none; subject 3: border x = W and y = H, and a 2017-style
    # mouse sample outside the image (x = W + 3, y = 0), which is clipped.
    [[[1, 1], [5, 3], [5, 3]], [], [[W, 10], [7, H], [W + 3, 0]]],
    [[[16, 12]], [[2, 20]]],
]
SALICON_EXPECTED = [  # 0-based (x, y), subjects concatenated in order, duplicates kept
    [[0, 0], [4, 2], [4, 2], [W - 1, 9], [6, H - 1], [W - 1, 0]],
    [[15, 11], [1, 19]],
]


def make_salicon(root: Path, split: str = "train") -> dict:
    written = {"images": [], "maps": []}
    for i, stem in enumerate(SALICON_STEMS):
        stem = stem.replace("train", split)
        written["images"].append(save(root / f"images/{split}/{stem}.jpg", rgb(i), quality=95))
        written["maps"].append(save(root / f"maps/{split}/{stem}.png", gray(i)))
        fields = [("location", "O"), ("timestamp", "O"), ("fixations", "O")]
        gaze = np.empty((len(SALICON_FIXATIONS[i]), 1), fields)  # MATLAB struct array
        for s, points in enumerate(SALICON_FIXATIONS[i]):
            gaze[s, 0]["location"] = np.array([[3.0, 4.0], [5.0, 6.0]])
            gaze[s, 0]["timestamp"] = np.array([[10.0], [20.0]])
            empty = np.zeros((0, 0))  # how MATLAB stores a subject without fixations
            gaze[s, 0]["fixations"] = np.array(points, float).reshape(-1, 2) if points else empty
        (root / f"fixations/{split}").mkdir(parents=True, exist_ok=True)
        mat = {"image": stem, "resolution": np.array([[H, W]]), "gaze": gaze}
        scipy.io.savemat(root / f"fixations/{split}/{stem}.mat", mat)
    return written


def salicon_json(path: Path, split: str = "train") -> Path:
    """The 2015 COCO-style fixation file: one annotation per subject, fixations as (row, col)."""
    images, annotations = [], []
    for i, stem in enumerate(SALICON_STEMS):
        stem = stem.replace("train", split)
        images.append({"id": 100 + i, "file_name": stem + ".jpg", "height": H, "width": W})
        for s, points in enumerate(SALICON_FIXATIONS[i]):
            rows_cols = [[y, x] for x, y in points]
            annotations.append(
                {
                    "id": len(annotations),
                    "image_id": 100 + i,
                    "worker_id": s,
                    "fixations": rows_cols,
                }
            )
    content = {"info": {}, "type": "fixations", "images": images, "annotations": annotations}
    path.write_text(json.dumps(content))
    return path


MIT_SIZES = {"i1000274881": (H, W), "i05june05_static_street": (W, H)}  # (h, w): sizes differ
MIT_POINTS = {
    "i1000274881": [(0, 0), (W - 1, 5), (10, H - 1), (11, H - 1), (17, 12)],  # (x, y), 0-based
    "i05june05_static_street": [(3, 4), (H - 1, W - 1)],
}


def make_mit(root: Path, doubled: bool = False) -> dict:
    stimuli = root / "ALLSTIMULI" / ("ALLSTIMULI" if doubled else "")
    maps = root / "ALLFIXATIONMAPS" / ("ALLFIXATIONMAPS" if doubled else "")
    written = {}
    for i, (stem, (h, w)) in enumerate(MIT_SIZES.items()):
        image = save(stimuli / f"{stem}.jpeg", rgb(i, h, w), quality=95)
        smap = save(maps / f"{stem}_fixMap.jpg", gray(i, h, w), quality=95)
        binary_jpeg(maps / f"{stem}_fixPts.jpg", MIT_POINTS[stem], h, w)
        written[stem] = (image, smap)
    return written


CAT_ITEMS = {"Action": ["001", "002"], "Art": ["001"]}


def make_cat(root: Path) -> dict:
    base = root / "trainSet"
    written = {}
    for c, (category, stems) in enumerate(CAT_ITEMS.items()):
        for s, stem in enumerate(stems):
            seed = 10 * c + s
            image = save(base / f"Stimuli/{category}/{stem}.jpg", rgb(seed), quality=95)
            smap = save(base / f"FIXATIONMAPS/{category}/{stem}.jpg", gray(seed), quality=95)
            locs = np.zeros((H, W), np.uint8)
            points = [(seed % W, 0), (W - 1, H - 1), (5, 7)]
            for x, y in points:
                locs[y, x] = 1
            (base / f"FIXATIONLOCS/{category}").mkdir(parents=True, exist_ok=True)
            scipy.io.savemat(base / f"FIXATIONLOCS/{category}/{stem}.mat", {"fixLocs": locs})
            written[f"{category}/{stem}"] = (
                image,
                smap,
                sorted(points, key=lambda p: (p[1], p[0])),
            )
    # Results folders, inside a category and beside the categories: their images are not stimuli.
    save(base / "Stimuli/Action/Output/001.jpg", rgb(99), quality=95)
    save(base / "Stimuli/Output/001.jpg", rgb(98), quality=95)
    return written


DHF_FRAMES = {"0001": ["0001", "0002", "0003"], "0002": ["0001", "0002"]}


def make_dhf(root: Path, with_mat: bool = True) -> dict:
    written = {}
    for v, (video, frames) in enumerate(DHF_FRAMES.items()):
        base = root / "annotation" / video
        for f, frame in enumerate(frames):
            seed = 10 * v + f
            image = save(base / f"images/{frame}.png", rgb(seed))
            smap = save(base / f"maps/{frame}.png", gray(seed))
            fixated = np.zeros((H, W), bool)
            points = [(f, v), (W - 1, 3), (seed + 2, H - 1)]
            for x, y in points:
                fixated[y, x] = True
            save(base / f"fixation/{frame}.png", fixated.astype(np.uint8) * 255)
            if with_mat:
                (base / "fixation/maps").mkdir(parents=True, exist_ok=True)
                scipy.io.savemat(base / f"fixation/maps/{frame}.mat", {"I": fixated.astype(float)})
            written[f"{video}/{frame}"] = (image, smap, sorted(points, key=lambda p: (p[1], p[0])))
    return written


def close_to(loaded: np.ndarray, decoded: np.ndarray) -> bool:
    return loaded.dtype == np.float32 and np.allclose(loaded, decoded, atol=1e-6)


# --------------------------------------------------------------------------------------------
# SALICON
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("split", ["train", "val"])
def test_salicon_mat_fixations_and_files(tmp_path, split):
    written = make_salicon(tmp_path, split)
    ds = load_salicon(tmp_path, split)
    assert ds.name == "salicon" and not ds.stacked and len(ds) == 2
    assert ds.names == tuple(s.replace("train", split) for s in SALICON_STEMS)
    for i in range(2):
        assert ds.images[i].shape == (H, W, 3) and close_to(ds.images[i], written["images"][i])
        assert close_to(ds.maps[i], written["maps"][i])  # PNG: exact grey levels / 255
        np.testing.assert_array_equal(ds.fixations[i], SALICON_EXPECTED[i])
        assert ds.fixations[i].dtype == np.int32


def test_salicon_json_row_col_order_matches_mat(tmp_path):
    make_salicon(tmp_path)
    shutil.rmtree(tmp_path / "fixations")  # the JSON path must not need the .mat files
    ds = load_salicon(tmp_path, fixations_json=salicon_json(tmp_path / "fixations_train2014.json"))
    for i in range(2):
        np.testing.assert_array_equal(ds.fixations[i], SALICON_EXPECTED[i])


def test_salicon_size_and_limit(tmp_path):
    make_salicon(tmp_path)
    ds = load_salicon(tmp_path, size=(12, 16), limit=1)
    assert ds.stacked and ds.images.shape == (1, 12, 16, 3) and ds.maps.shape == (1, 12, 16)
    # Pixel centres scale by 1/2: x' = floor((x + 0.5) / 2).
    expected = np.floor((np.array(SALICON_EXPECTED[0]) + 0.5) / 2).astype(int)
    np.testing.assert_array_equal(ds.fixations[0], expected)


def test_salicon_json_without_the_image(tmp_path):
    make_salicon(tmp_path)
    path = salicon_json(tmp_path / "f.json")
    content = json.loads(path.read_text())
    content["images"] = content["images"][:1]
    path.write_text(json.dumps(content))
    with pytest.raises(ValueError, match="COCO_train2014_000000000025.jpg"):
        load_salicon(tmp_path, fixations_json=path)


@pytest.mark.parametrize(
    "remove, missing",
    [
        ("images/train", "images/train"),
        ("maps/train", "maps/train"),
        ("fixations/train", "fixations/train"),
        ("maps/train/COCO_train2014_000000000025.png",) * 2,
        ("fixations/train/COCO_train2014_000000000009.mat",) * 2,
    ],
)
def test_salicon_missing_piece(tmp_path, remove, missing):
    make_salicon(tmp_path)
    target = tmp_path / remove
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    with pytest.raises(DatasetLayoutError, match=f"missing '{missing}'") as err:
        load_salicon(tmp_path)
    assert err.value.missing == missing and isinstance(err.value, ValueError)


def test_salicon_mat_without_fixations_field(tmp_path):
    make_salicon(tmp_path)
    stem = SALICON_STEMS[0]
    scipy.io.savemat(tmp_path / f"fixations/train/{stem}.mat", {"gaze": np.zeros((1, 1))})
    with pytest.raises(ValueError, match="field 'fixations'"):
        load_salicon(tmp_path)


# --------------------------------------------------------------------------------------------
# MIT1003
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("doubled", [False, True])
def test_mit1003_thresholds_jpeg_fixation_points(tmp_path, doubled):
    written = make_mit(tmp_path, doubled)
    maps = tmp_path / "ALLFIXATIONMAPS" / ("ALLFIXATIONMAPS" if doubled else "")
    # The JPEG really rings: more than the fixated pixels are non-zero, so the threshold matters.
    ringing = np.asarray(Image.open(maps / "i1000274881_fixPts.jpg")) > 0
    assert ringing.sum() > len(MIT_POINTS["i1000274881"])

    ds = load_mit1003(tmp_path)
    assert ds.names == tuple(sorted(MIT_SIZES)) and ds.name == "mit1003"
    for i, stem in enumerate(ds.names):
        image, smap = written[stem]
        assert ds.images[i].shape == MIT_SIZES[stem] + (3,) and close_to(ds.images[i], image)
        assert close_to(ds.maps[i], smap)
        expected = sorted(MIT_POINTS[stem], key=lambda p: (p[1], p[0]))  # row-major order
        np.testing.assert_array_equal(ds.fixations[i], expected)


def test_mit1003_resizes_mixed_sizes(tmp_path):
    make_mit(tmp_path)
    ds = load_mit1003(tmp_path, size=(8, 8))
    assert ds.images.shape == (2, 8, 8, 3) and ds.maps.shape == (2, 8, 8)
    stem = ds.names[0]  # i05june05_static_street: 32 rows × 24 columns
    scale = np.array([8 / MIT_SIZES[stem][1], 8 / MIT_SIZES[stem][0]])
    points = np.array(sorted(MIT_POINTS[stem], key=lambda p: (p[1], p[0])))
    expected = np.floor((points + 0.5) * scale)
    np.testing.assert_array_equal(ds.fixations[0], expected)


def test_mit1003_missing_pieces(tmp_path):
    with pytest.raises(DatasetLayoutError, match="missing 'ALLSTIMULI'"):
        load_mit1003(tmp_path)
    make_mit(tmp_path)
    (tmp_path / "ALLFIXATIONMAPS/i1000274881_fixPts.jpg").unlink()
    with pytest.raises(
        DatasetLayoutError, match="missing 'ALLFIXATIONMAPS/i1000274881_fixPts.jpg'"
    ):
        load_mit1003(tmp_path)
    shutil.rmtree(tmp_path / "ALLFIXATIONMAPS")
    with pytest.raises(DatasetLayoutError, match="missing 'ALLFIXATIONMAPS'"):
        load_mit1003(tmp_path)


def test_mit1003_map_of_another_size(tmp_path):
    make_mit(tmp_path)
    save(tmp_path / "ALLFIXATIONMAPS/i1000274881_fixMap.jpg", gray(0, 10, 10))
    with pytest.raises(ValueError, match="must have the same size"):
        load_mit1003(tmp_path)


# --------------------------------------------------------------------------------------------
# CAT2000
# --------------------------------------------------------------------------------------------


def test_cat2000_categories_and_output_folder_skipped(tmp_path):
    written = make_cat(tmp_path)
    ds = load_cat2000(tmp_path)
    assert ds.names == ("Action/001", "Action/002", "Art/001")
    assert ds.groups == ("Action", "Action", "Art")
    for i, name in enumerate(ds.names):
        image, smap, points = written[name]
        assert close_to(ds.images[i], image) and close_to(ds.maps[i], smap)
        np.testing.assert_array_equal(ds.fixations[i], points)

    assert load_cat2000(tmp_path, "Art").names == ("Art/001",)
    assert load_cat2000(tmp_path, ["Art", "Action"], limit=2).names == ("Art/001", "Action/001")


def test_cat2000_missing_pieces(tmp_path):
    make_cat(tmp_path)
    with pytest.raises(DatasetLayoutError, match="missing 'trainSet/Stimuli/Sketch'"):
        load_cat2000(tmp_path, ["Art", "Sketch"])
    (tmp_path / "trainSet/FIXATIONLOCS/Art/001.mat").unlink()
    with pytest.raises(DatasetLayoutError, match="missing 'trainSet/FIXATIONLOCS/Art/001.mat'"):
        load_cat2000(tmp_path)
    shutil.rmtree(tmp_path / "trainSet/FIXATIONMAPS")
    with pytest.raises(DatasetLayoutError, match="missing 'trainSet/FIXATIONMAPS'"):
        load_cat2000(tmp_path)
    with pytest.raises(DatasetLayoutError, match="does not exist"):
        load_cat2000(tmp_path / "nowhere")


# --------------------------------------------------------------------------------------------
# DHF1K
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["png", "mat"])
def test_dhf1k_flat_frames_with_video_groups(tmp_path, source):
    written = make_dhf(tmp_path)
    ds = load_dhf1k(tmp_path, fixation_source=source)
    assert ds.names == tuple(written) and ds.groups == ("0001",) * 3 + ("0002",) * 2
    for i, name in enumerate(ds.names):
        image, smap, points = written[name]
        assert close_to(ds.images[i], image) and close_to(ds.maps[i], smap)
        np.testing.assert_array_equal(ds.fixations[i], points)


def test_dhf1k_selection(tmp_path):
    make_dhf(tmp_path, with_mat=False)
    assert load_dhf1k(tmp_path, 2).names == ("0002/0001", "0002/0002")
    assert load_dhf1k(tmp_path, frame_step=2).names == ("0001/0001", "0001/0003", "0002/0001")
    assert load_dhf1k(tmp_path, [2, 1], limit=3).names == ("0002/0001", "0002/0002", "0001/0001")
    ds = load_dhf1k(tmp_path, size=(12, 16))
    video = ds.subset(np.flatnonzero(np.asarray(ds.groups) == "0001"))
    assert video.images.shape == (3, 12, 16, 3) and video.groups == ("0001",) * 3


def test_dhf1k_missing_pieces(tmp_path):
    with pytest.raises(DatasetLayoutError, match="missing 'annotation'"):
        load_dhf1k(tmp_path)
    make_dhf(tmp_path, with_mat=False)
    with pytest.raises(
        DatasetLayoutError, match="missing 'annotation/0001/fixation/maps/0001.mat'"
    ):
        load_dhf1k(tmp_path, fixation_source="mat")
    with pytest.raises(DatasetLayoutError, match="missing 'annotation/0007'"):
        load_dhf1k(tmp_path, [1, 7])
    (tmp_path / "annotation/0002/images/0002.png").unlink()
    with pytest.raises(
        DatasetLayoutError, match="'annotation/0002/images/0002.png'.*generate_frame"
    ):
        load_dhf1k(tmp_path)


# --------------------------------------------------------------------------------------------
# The record
# --------------------------------------------------------------------------------------------


def tiny_dataset(**changes) -> SaliencyDataset:
    fields = dict(
        images=[np.zeros((4, 5, 3), np.float32), np.ones((3, 2, 3), np.float32)],
        maps=[np.zeros((4, 5), np.float32), np.ones((3, 2), np.float32)],
        fixations=(np.array([[4, 3], [4, 3], [0, 1]], np.int32), np.zeros((0, 2), np.int32)),
        names=("a", "b"),
        name="tiny",
    )
    return SaliencyDataset(**{**fields, **changes})


def test_fixation_map_binary_and_counts():
    ds = tiny_dataset()
    binary, counts = ds.fixation_map(0), ds.fixation_map(0, counts=True)
    expected = np.zeros((4, 5), int)
    expected[3, 4], expected[1, 0] = 2, 1  # (x, y) = (4, 3) twice, (0, 1) once
    np.testing.assert_array_equal(counts, expected)
    np.testing.assert_array_equal(binary, expected > 0)
    assert binary.dtype == bool and not ds.fixation_map(1).any()


def test_resized_keeps_linear_ramps_and_rescales_fixations():
    # Bilinear resampling reproduces a linear function at interior pixel centres.
    ramp = (np.arange(16, dtype=np.float32)[None, :] + 0.5) / 16 * np.ones((8, 1), np.float32)
    fixations = np.array([[15, 7], [0, 0], [5, 5]], np.int32)
    image = np.repeat(ramp[..., None], 3, -1)
    ds = tiny_dataset(images=[image], maps=[ramp.copy()], fixations=(fixations,), names=("r",))
    small = ds.resized((4, 8))
    centres = (np.arange(8) + 0.5) / 8
    np.testing.assert_allclose(small.maps[0, :, 1:-1], np.tile(centres[1:-1], (4, 1)), atol=1e-6)
    np.testing.assert_allclose(small.images[0, ..., 2], small.maps[0], atol=1e-6)
    np.testing.assert_array_equal(small.fixations[0], [[7, 3], [0, 0], [2, 2]])
    # A fixation keeps the pixel its centre falls into: x = 5 spans [5, 6) → [1.875, 2.25) at
    # scale 6/16, centre 2.06 → pixel 2 (plain x · scale = 1.875 would give pixel 1); y alike.
    odd = ds.resized((3, 6))
    np.testing.assert_array_equal(odd.fixations[0], [[5, 2], [0, 0], [2, 2]])


_SECOND_MAP, _NO_FIXATIONS = np.ones((3, 2), np.float32), np.zeros((0, 2), np.int32)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"names": ("a",)}, "`names` must have one entry per image"),
        ({"images": [np.zeros((4, 5), np.float32)] * 2}, r"`images\[0\]` must be .* 3 axes"),
        ({"maps": [np.zeros((4, 5)), _SECOND_MAP]}, r"`maps\[0\]` must be float32"),
        ({"maps": [np.zeros((5, 4), np.float32), _SECOND_MAP]}, r"`maps\[0\]` .* size \(4, 5\)"),
        ({"fixations": (np.array([[5, 0]], np.int32), _NO_FIXATIONS)}, "0 <= x < 5"),
        ({"fixations": (np.array([[1, 0]]), _NO_FIXATIONS)}, r"`fixations\[0\]` .* int32"),
        ({"maps": [np.full((4, 5), -1.0, np.float32), _SECOND_MAP]}, r"`maps\[0\]` must be >= 0"),
        (
            {"images": [np.full((4, 5, 3), 2.0, np.float32), np.ones((3, 2, 3), np.float32)]},
            r"`images\[0\]` must lie within the pixel bounds \[0.0, 1.0\]",
        ),
    ],
)
def test_record_rejects_bad_fields(changes, message):
    with pytest.raises(ValueError, match=message):
        tiny_dataset(**changes)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda p: load_salicon(p, "test"), "`split` must be one of 'train', 'val'"),
        (lambda p: load_salicon(p, limit=0), "`limit` must be an integer >= 1"),
        (lambda p: load_mit1003(p, size=(0, 4)), r"`size` must be a pair \(height, width\)"),
        (lambda p: load_dhf1k(p, fixation_source="txt"), "`fixation_source` must be one of"),
        (lambda p: load_dhf1k(p, frame_step=0), "`frame_step`"),
        (lambda p: make_scenes(0), "`n` must be an integer >= 1"),
        (lambda p: make_scenes(2, seed=-1), "`seed` must be a non-negative integer"),
        (lambda p: make_scenes(2, size=(8, 64)), "`size` must be at least 12"),
        (lambda p: load_scenes("val"), "`split` must be one of 'train', 'test'"),
    ],
)
def test_bad_arguments(tmp_path, call, message):
    with pytest.raises(ValueError, match=message):
        call(tmp_path)


# --------------------------------------------------------------------------------------------
# Generated scenes
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scenes() -> SaliencyDataset:
    return load_scenes("train", 150, size=(48, 48))


def test_scenes_are_deterministic_and_prefix_stable():
    a, b = make_scenes(5, size=(24, 32), seed=3), make_scenes(3, size=(24, 32), seed=3)
    np.testing.assert_array_equal(a.images[:3], b.images)
    np.testing.assert_array_equal(a.maps[:3], b.maps)
    for fa, fb in zip(a.fixations, b.fixations):
        np.testing.assert_array_equal(fa, fb)
    assert not np.array_equal(make_scenes(3, size=(24, 32), seed=4).images, b.images)
    train, test = load_scenes("train", 3, size=(24, 32)), load_scenes("test", 3, size=(24, 32))
    assert not np.array_equal(train.images, test.images)
    assert train.names[0] == "train/000000" and test.name == "scenes-test"


def test_scene_shapes_dtypes_and_ranges(scenes):
    assert scenes.images.shape == (150, 48, 48, 3) and scenes.images.dtype == np.float32
    assert scenes.maps.shape == (150, 48, 48) and scenes.maps.dtype == np.float32
    assert 0.0 <= scenes.images.min() and scenes.images.max() <= 1.0
    assert scenes.maps.min() > 0  # the uniform component keeps every pixel possible
    np.testing.assert_allclose(scenes.maps.sum(axis=(1, 2)), 1.0, atol=1e-5)
    assert all(xy.shape == (32, 2) and xy.dtype == np.int32 for xy in scenes.fixations)
    assert scenes.object_masks.dtype == bool and scenes.object_masks.any(axis=(1, 2)).all()


def test_scene_fixations_follow_the_density(scenes):
    maps, masks = scenes.maps.astype(np.float64), scenes.object_masks
    hit_density = np.concatenate([m[xy[:, 1], xy[:, 0]] for m, xy in zip(maps, scenes.fixations)])
    # For draws from p, E[p(fixation)] = Σ p²; uniform draws would give 1 / (h w).
    expected = np.mean(np.sum(maps**2, axis=(1, 2)))
    assert abs(hit_density.mean() / expected - 1) < 0.1
    assert expected > 3 / maps[0].size
    # Objects cover a small share of the image but attract most fixations.
    on_objects = np.mean([m[xy[:, 1], xy[:, 0]].mean() for m, xy in zip(masks, scenes.fixations)])
    area = masks.mean()
    assert area < 0.2 and on_objects > 0.45 and on_objects > 3 * area
    # The density's mass on objects matches the fixation share it generates.
    mass = np.mean(np.sum(maps * masks, axis=(1, 2)))
    assert abs(on_objects - mass) < 0.05


def test_true_density_beats_center_bias_on_cc_and_nss(scenes):
    center = scene_center_bias((48, 48)).astype(np.float64)
    assert np.isclose(center.sum(), 1.0, atol=1e-6)
    peak = np.unravel_index(center.argmax(), center.shape)
    assert peak in {(23, 23), (23, 24), (24, 23), (24, 24)}

    def cc(a, b):  # Pearson correlation of two maps
        a, b = a - a.mean(), b - b.mean()
        return np.sum(a * b) / np.sqrt(np.sum(a * a) * np.sum(b * b))

    def nss(smap, xy):  # mean z-score (std with N-1, MIT) at the fixated pixels, duplicates kept
        z = (smap - smap.mean()) / smap.std(ddof=1)
        return z[xy[:, 1], xy[:, 0]].mean()

    scores = []
    for i in range(len(scenes)):
        truth = scenes.maps[i].astype(np.float64)
        empirical = gaussian_filter(scenes.fixation_map(i, counts=True).astype(float), 2.0)
        xy = scenes.fixations[i]
        scores.append(
            [cc(truth, empirical), cc(center, empirical), nss(truth, xy), nss(center, xy)]
        )
    cc_true, cc_center, nss_true, nss_center = np.mean(scores, axis=0)
    assert cc_true > cc_center + 0.3 and nss_true > 2 * nss_center and nss_true > 1.0


def test_off_center_scenes_defeat_the_center_bias():
    # issue 18: no object in the centre cell, no centre-bias component in the density.
    off = load_scenes("test", 40, size=(24, 24), off_center=True)
    assert off.name == "scenes-test-off-center"
    assert not off.object_masks[:, 8:16, 8:16].any()  # the centre cell of the 3x3 grid
    assert off.object_masks.any(axis=(1, 2)).all()
    np.testing.assert_allclose(off.maps.sum(axis=(1, 2)), 1.0, atol=1e-5)
    # No centre component: the image centre is below the map's mean in every scene (it is
    # above it in most default scenes, where the centre bias adds mass there).
    assert np.all(off.maps[:, 12, 12] < off.maps.mean(axis=(1, 2)))
    center = scene_center_bias((24, 24)).ravel()
    cc = [np.corrcoef(center, m.ravel())[0, 1] for m in off.maps]
    default = load_scenes("test", 40, size=(24, 24))
    cc_default = [np.corrcoef(center, m.ravel())[0, 1] for m in default.maps]
    assert np.mean(cc) < 0.0 < np.mean(cc_default)
    # The same images' background colours: only the object layout and the density change.
    assert not np.array_equal(off.images, default.images)
    with pytest.raises(ValueError, match="`off_center` must be True or False"):
        make_scenes(2, size=(24, 24), off_center="yes")


# --------------------------------------------------------------------------------------------
# Photographs
# --------------------------------------------------------------------------------------------


def test_sample_photographs():
    full = sample_photographs()
    assert sorted(full) == ["china", "flower"]
    for picture in full.values():
        assert picture.shape == (427, 640, 3) and picture.dtype == np.float32
        assert 0.0 <= picture.min() and picture.max() <= 1.0 and picture.std() > 0.1
    small = sample_photographs(size=(32, 48))
    for name, picture in small.items():
        assert picture.shape == (32, 48, 3) and picture.dtype == np.float32
        # Same picture: the channel means survive antialiased shrinking.
        np.testing.assert_allclose(picture.mean((0, 1)), full[name].mean((0, 1)), atol=0.02)


def test_transformed_scenes_move_objects_and_keep_the_centre_bias():
    plain = make_scenes(2, size=(24, 32), seed=3)
    same = make_scenes(2, size=(24, 32), seed=3, transformation="Reference")
    np.testing.assert_array_equal(same.images, plain.images)
    np.testing.assert_allclose(same.maps, plain.maps, atol=1e-6)
    mirrored = make_scenes(2, size=(24, 32), seed=3, transformation="Mirroring")
    np.testing.assert_array_equal(mirrored.images, plain.images[:, :, ::-1])
    np.testing.assert_array_equal(mirrored.object_masks, plain.object_masks[:, :, ::-1])
    # the centre bias is symmetric about the screen's centre, so the whole density mirrors too
    np.testing.assert_allclose(mirrored.maps, plain.maps[:, :, ::-1], atol=1e-6)
    rotated = make_scenes(2, size=(24, 32), seed=3, transformation="Rotation1")
    np.testing.assert_allclose(rotated.maps.sum(axis=(1, 2)), 1.0, atol=1e-5)
    assert rotated.maps.min() > 0 and 0.0 <= rotated.images.min() and rotated.images.max() <= 1.0
    for xy in rotated.fixations:
        assert xy.min() >= 0 and (xy[:, 0] < 32).all() and (xy[:, 1] < 24).all()
    with pytest.raises(ValueError, match="transformation"):
        make_scenes(2, size=(24, 32), transformation="Blur")
