"""Video data and victims (issue 16): the generated moving digits and their known motion, the
UCF-101 frame-folder loader on a fabricated copy, and the (2+1)D / two-stream victims."""

from __future__ import annotations

import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxadv.data import (
    MOVING_DIGITS_CLASS_NAMES,
    VideoDataset,
    check_video_batch,
    load_moving_digits,
    load_something_something,
    load_ucf101,
    make_moving_digits,
)
from jaxadv import image
from jaxadv.data.saliency import DatasetLayoutError
from jaxadv.models import (
    FrameNet,
    R2Plus1DNet,
    TwoStreamNet,
    from_flax,
    video_classifier,
    video_from_flax,
)
from jaxadv.training import (
    VideoSplits,
    accuracy,
    cached_victim,
    default_video_victim,
    train_classifier,
)


@pytest.fixture(scope="module")
def clips():
    return load_moving_digits("train", 48)


# ---------------------------------------------------------------------------- moving digits


def test_moving_digits_deterministic_and_split(clips):
    again = load_moving_digits("train", 24)
    np.testing.assert_array_equal(again.videos, clips.videos[:24])  # first clips ignore n
    np.testing.assert_array_equal(again.motion, clips.motion[:24])
    test = load_moving_digits("test", 8)
    assert not np.allclose(test.videos, clips.videos[:8])
    other_seed = load_moving_digits("train", 8, seed=1)
    assert not np.allclose(other_seed.videos, clips.videos[:8])
    assert clips.videos.shape == (48, 8, 32, 32, 1) and clips.videos.dtype == np.float32
    assert clips.motion.shape == (48, 8, 32, 32, 2) and clips.motion.dtype == np.float32
    assert 0.0 <= clips.videos.min() and clips.videos.max() <= 1.0
    assert clips.class_names == MOVING_DIGITS_CLASS_NAMES and len(clips.class_names) == 8
    np.testing.assert_array_equal(np.bincount(clips.labels, minlength=8), np.full(8, 6))
    sub = clips.subset([1, 3])
    np.testing.assert_array_equal(sub.motion, clips.motion[[1, 3]])
    assert sub.ids == (clips.ids[1], clips.ids[3]) and sub.video_shape == (8, 32, 32, 1)


def _bilinear(image, y, x):
    """numpy bilinear sampling of ``image[h, w]`` at (y, x), border clamped."""
    h, w = image.shape
    y, x = np.clip(y, 0, h - 1), np.clip(x, 0, w - 1)
    y0, x0 = np.minimum(np.floor(y).astype(int), h - 2), np.minimum(np.floor(x).astype(int), w - 2)
    fy, fx = y - y0, x - x0
    return (
        image[y0, x0] * (1 - fy) * (1 - fx) + image[y0, x0 + 1] * (1 - fy) * fx
        + image[y0 + 1, x0] * fy * (1 - fx) + image[y0 + 1, x0 + 1] * fy * fx
    )


def test_known_motion_moves_the_digit(clips):
    """Frame t at a digit pixel p equals frame t+1 at p + motion[t](p), up to grain (std 0.02)
    and interpolation; without the shift, or with the opposite one, it does not."""
    errors = {"flow": [], "zero": [], "reversed": []}
    for video, motion in zip(clips.videos[..., 0], clips.motion):
        for t in range(video.shape[0] - 1):
            rows, cols = np.nonzero(np.any(motion[t] != 0, axis=-1))
            dx, dy = motion[t, rows, cols, 0], motion[t, rows, cols, 1]
            here = video[t, rows, cols]
            for name, sign in (("flow", 1), ("zero", 0), ("reversed", -1)):
                there = _bilinear(video[t + 1], rows + sign * dy, cols + sign * dx)
                errors[name].append(np.abs(there - here).mean())
    flow, zero, back = (np.mean(errors[k]) for k in ("flow", "zero", "reversed"))
    assert flow < 0.045, flow  # grain alone gives ~0.023
    assert flow < 0.5 * zero and zero < back, (flow, zero, back)
    # The field: one velocity per clip, speed 0.5-1 px/frame, heading within 20° of the label's
    # direction (0° right, 90° down, ...); zero off the digit; the last field repeats.
    np.testing.assert_array_equal(clips.motion[:, -1], clips.motion[:, -2])
    for motion, label in zip(clips.motion, clips.labels):
        moving = motion[np.any(motion != 0, axis=-1)]
        velocity = moving[0]
        np.testing.assert_array_equal(moving, np.broadcast_to(velocity, moving.shape))
        assert 0.5 <= np.hypot(*velocity) <= 1.0
        heading = np.degrees(np.arctan2(velocity[1], velocity[0]))
        off = (heading - 90.0 * (label % 4) + 180.0) % 360.0 - 180.0
        assert abs(off) <= 20.0 + 1e-4, (label, heading)


def test_first_frame_does_not_determine_the_class():
    """Clip 0 with each direction of digit group 0-4 (classes 0..3): frame 0 is identical by
    construction, so only the later frames can tell the classes apart."""
    videos = [make_moving_digits(1, labels=[label], seed=5).videos[0] for label in range(4)]
    for video in videos[1:]:
        np.testing.assert_array_equal(video[0], videos[0][0])
        assert np.abs(video[-1] - videos[0][-1]).max() > 0.3


def test_moving_digits_bad_input():
    with pytest.raises(ValueError, match="`frames`"):
        make_moving_digits(2, frames=1)
    with pytest.raises(ValueError, match="`size`"):
        make_moving_digits(2, size=(20, 32))
    with pytest.raises(ValueError, match="`labels`"):
        make_moving_digits(2, labels=[0, 8])
    with pytest.raises(ValueError, match="`split`"):
        load_moving_digits("val")
    with pytest.raises(ValueError, match="`videos`.*5 axes|`videos`.*shape"):
        check_video_batch("videos", np.zeros((2, 32, 32, 1)))
    with pytest.raises(ValueError, match="at least 2 frames"):
        check_video_batch("videos", np.zeros((2, 1, 32, 32, 1)))
    with pytest.raises(ValueError, match="`motion`"):
        VideoDataset(np.zeros((1, 2, 4, 4, 1), np.float32), np.zeros(1, np.int32),
                     np.zeros((1, 2, 4, 4, 3), np.float32), ("a",), "x")


# ---------------------------------------------------------------------------- UCF-101


def _fabricate_ucf101(root, frames_per_clip):
    """A tiny UCF-101 copy in the real layout: frame k of a clip is flat grey 20 k + class*5."""
    from PIL import Image

    classes = ("ApplyEyeMakeup", "Biking", "YoYo")
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    (lists / "classInd.txt").write_text("".join(f"{i + 1} {c}\n" for i, c in enumerate(classes)))
    train = [("ApplyEyeMakeup", 8, 1), ("Biking", 8, 2), ("YoYo", 9, 1)]
    test = [("Biking", 1, 3)]
    lines = [f"{c}/v_{c}_g{g:02d}_c{k:02d}.avi {classes.index(c) + 1}" for c, g, k in train]
    (lists / "trainlist01.txt").write_text("\r\n".join(lines) + "\r\n")  # the lists use CRLF
    (lists / "testlist01.txt").write_text("".join(f"{c}/v_{c}_g{g:02d}_c{k:02d}.avi\n"
                                                  for c, g, k in test))
    for c, g, k in train + test:
        clip = root / c / f"v_{c}_g{g:02d}_c{k:02d}"
        clip.mkdir(parents=True)
        for f in range(frames_per_clip):
            grey = 20 * f + 5 * classes.index(c)
            Image.new("RGB", (16, 12), (grey, grey, grey)).save(clip / f"frame_{f + 1:05d}.jpg")
    return classes


def test_ucf101_fabricated_copy(tmp_path):
    classes = _fabricate_ucf101(tmp_path, 10)
    train = load_ucf101(tmp_path, "train", frames=4, size=(6, 8))
    assert train.videos.shape == (3, 4, 6, 8, 3) and train.motion is None
    assert train.class_names == classes
    np.testing.assert_array_equal(train.labels, [0, 1, 2])
    assert train.ids[1] == "Biking/v_Biking_g08_c02"
    # 10 frames, T = 4: segment centres floor((k + 0.5) * 10 / 4) = frames 1, 3, 6, 8 (0-based).
    expected = (20 * np.array([1, 3, 6, 8])[None, :] + 5 * np.arange(3)[:, None]) / 255
    np.testing.assert_allclose(train.videos.mean(axis=(2, 3, 4)), expected, atol=2 / 255)
    test = load_ucf101(tmp_path, "test", frames=2, size=(12, 16))
    np.testing.assert_array_equal(test.labels, [1])
    only = load_ucf101(tmp_path, "train", frames=2, size=(6, 8), classes=["YoYo"])
    np.testing.assert_array_equal(only.labels, [2])


def test_ucf101_errors(tmp_path):
    _fabricate_ucf101(tmp_path, 3)
    with pytest.raises(ValueError, match="has 3 .jpg frames"):
        load_ucf101(tmp_path, frames=4, size=(6, 8))
    with pytest.raises(ValueError, match="`classes`"):
        load_ucf101(tmp_path, frames=2, classes=["Surfing"])
    with pytest.raises(ValueError, match="`frames`"):
        load_ucf101(tmp_path, frames=1)
    with pytest.raises(DatasetLayoutError, match="testlist02.txt"):
        load_ucf101(tmp_path, "test", fold=2)
    lists = tmp_path / "ucfTrainTestlist"
    (lists / "testlist01.txt").write_text("Surfing/v_Surfing_g01_c01.avi\n")
    with pytest.raises(ValueError, match="testlist01.txt.*'Surfing'"):
        load_ucf101(tmp_path, "test", frames=2)
    (lists / "testlist01.txt").write_text("YoYo/v_YoYo_g02_c01.avi\n")
    with pytest.raises(DatasetLayoutError, match="YoYo/v_YoYo_g02_c01"):
        load_ucf101(tmp_path, "test", frames=2)
    (lists / "classInd.txt").unlink()
    with pytest.raises(DatasetLayoutError, match="classInd.txt"):
        load_ucf101(tmp_path, frames=2)
    with pytest.raises(DatasetLayoutError, match="does not exist"):
        load_ucf101(tmp_path / "nowhere")


# ---------------------------------------------------------------------------- victims


@pytest.mark.parametrize("net", [R2Plus1DNet, TwoStreamNet])
def test_video_victims_shape_jit_vmap(net, clips):
    module = net(num_classes=8, widths=(4, 4))  # small: the wiring, not the capacity, is tested
    x = jnp.asarray(clips.videos[:3, :5, ::2, ::2])  # 5 frames of 16×16

    @jax.jit  # one compilation: initialisation and the three outputs
    def outputs(key, x):
        variables = module.init(key, x)
        victim = video_from_flax(module, variables, input_shape=(5, 16, 16, 1), num_classes=8)
        return victim.batch(x), jax.vmap(victim)(x), victim.batch(x[:, ::-1])

    batch, per_example, reversed_time = outputs(jax.random.key(0), x)
    assert batch.shape == (3, 8) and bool(jnp.all(jnp.isfinite(batch)))
    np.testing.assert_allclose(per_example, batch, rtol=1e-4, atol=1e-5)
    # Frame order matters: reversing time changes the logits (the model sees motion).
    assert float(jnp.abs(reversed_time - batch).max()) > 1e-6


def test_video_victims_bad_input():
    module = R2Plus1DNet()
    with pytest.raises(ValueError, match="`x` must be a batch of videos"):
        module.init(jax.random.key(0), jnp.zeros((2, 32, 32, 1)))
    with pytest.raises(ValueError, match="at least 2 frames"):
        TwoStreamNet().init(jax.random.key(0), jnp.zeros((1, 1, 8, 8, 1)))
    x = jnp.zeros((2, 3, 16, 16, 1))
    variables = jax.eval_shape(module.init, jax.random.key(0), x)  # shapes only: no compute
    victim = video_from_flax(module, variables, input_shape=(3, 16, 16, 1), num_classes=8)
    with pytest.raises(ValueError, match="`x`"):
        victim(x)  # a batch where one video is expected
    with pytest.raises(ValueError, match="`input_shape`.*at least 2 frames"):
        video_from_flax(module, variables, input_shape=(1, 32, 32, 1), num_classes=8)
    with pytest.raises(ValueError, match="`input_shape` must be the shape"):
        video_from_flax(module, variables, input_shape=(32, 32, 1), num_classes=8)
    with pytest.raises(ValueError, match="`images` must be a batch of images .* or of videos"):
        train_classifier(module, np.zeros((2, 1, 8, 32, 32, 1)), np.zeros(2, int),
                         key=jax.random.key(0))
    with pytest.raises(ValueError, match="`name`"):
        video_classifier("c3d")
    assert isinstance(video_classifier("two_stream"), TwoStreamNet)


def test_cached_victim_trains_on_video_splits_and_refuses_other_data(clips, tmp_path):
    """The video victims go through the image victims' cache (``cached_victim``) with
    ``VideoSplits``, which is not a ``Dataset`` (5-D clips); data without the split fields is
    refused by name."""
    x = np.ascontiguousarray(clips.videos[:4, :2, ::8, ::8])  # 4 clips of 2 × 4 × 4 × 1
    y = np.asarray(clips.labels[:4], np.int32)
    splits = VideoSplits(x, y, x, y, 8)
    module = TwoStreamNet(num_classes=8, widths=(2, 2))
    settings = {"epochs": 1, "batch_size": 4, "learning_rate": 1e-3}
    victim, info = cached_victim("tiny", module, settings, splits, "clips", jax.random.key(0),
                                 tmp_path, False)
    assert victim.input_shape == (2, 4, 4, 1) and not info["restored"]
    with pytest.raises(ValueError, match="`data` must be a jaxadv.data.Dataset.*got dict"):
        cached_victim("tiny", module, settings, {"videos": x}, "clips", jax.random.key(0),
                      tmp_path, False)


# ---------------------------------------------------------------------------- training (slow)

# On the 800 test clips (8 classes, chance 12.5%), measured on the 2-core CPU: r21d 91.3%
# (group 91.4%, direction 99.9%; 254 s of training), two_stream 96.9% (group 96.9%, direction
# 100%; 183 s). The single-frame baseline below: 22.0% (group 89.8%, direction 23.8%).
_STATED = {"r21d": 0.85, "two_stream": 0.90}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["r21d", "two_stream"])
def test_default_video_victim_learns_motion(name, tmp_path):
    victim, info = default_video_victim(name, cache_dir=tmp_path, progress=False)
    assert victim.input_shape == (8, 32, 32, 1) and not info["restored"]
    assert info["test_accuracy"] >= _STATED[name], info
    again, info2 = default_video_victim(name, cache_dir=tmp_path, progress=False)
    assert info2["restored"] and info2["test_accuracy"] == info["test_accuracy"]


@pytest.mark.slow
def test_single_frame_baseline_is_blind_to_direction():
    """A 2-D net trained on frame 0 alone learns the digit group but not the direction."""
    train, test = load_moving_digits("train"), load_moving_digits("test")
    module = FrameNet(8)
    variables = train_classifier(module, train.videos[:, 0], train.labels, key=jax.random.key(0),
                                 epochs=6, batch_size=32, learning_rate=2e-3, progress=False)
    victim = from_flax(module, variables, input_shape=(32, 32, 1), num_classes=8)
    pred = np.argmax(np.asarray(victim.batch(test.videos[:, 0])), axis=-1)
    direction = np.mean(pred % 4 == test.labels % 4)
    assert direction < 0.35, direction  # chance is 0.25
    assert accuracy(victim, test.videos[:, 0], test.labels) < 0.5


# ---------------------------------------------------------------- Something-Something V2


def _fabricate_something(root, frames_per_clip):
    """A tiny SSv2 copy in the real layout (JSON annotations, frame folders named by id): frame
    k of a clip is flat grey 20 k + 5 * its class."""
    import json

    from PIL import Image

    templates = ("Approaching something with your camera", "Putting something on a surface",
                 "Pushing something from left to right")  # fmt: skip
    (root / "labels.json").write_text(json.dumps({t: str(i) for i, t in enumerate(templates)}))

    def entry(clip, label, template, placeholders):
        return dict(id=clip, label=label, template=template, placeholders=placeholders)

    train = [entry("78687", "putting a cup on a table", "Putting [something] on a surface", ["a cup"]),
             entry("42326", "pushing pen from left to right",
                   "Pushing [something] from left to right", ["pen"])]  # fmt: skip
    valid = [entry("1420", "approaching door with your camera",
                   "Approaching [something] with your camera", ["door"])]  # fmt: skip
    (root / "train.json").write_text(json.dumps(train))
    (root / "validation.json").write_text(json.dumps(valid))
    for e in train + valid:
        clip = root / "frames" / e["id"]
        clip.mkdir(parents=True)
        label = next(
            i
            for i, t in enumerate(templates)
            if t == e["template"].replace("[", "").replace("]", "")
        )
        for f in range(frames_per_clip):
            grey = 20 * f + 5 * label
            Image.new("RGB", (16, 12), (grey, grey, grey)).save(clip / f"{f + 1:06d}.jpg")
    return templates


def test_something_something_fabricated_copy(tmp_path):
    templates = _fabricate_something(tmp_path, 10)
    train = load_something_something(tmp_path, "train", frames=4, size=(6, 8))
    assert train.videos.shape == (2, 4, 6, 8, 3) and train.motion is None
    assert train.class_names == templates and train.ids == ("78687", "42326")
    np.testing.assert_array_equal(train.labels, [1, 2])  # from the templates, brackets removed
    expected = (20 * np.array([1, 3, 6, 8])[None, :] + 5 * np.array([1, 2])[:, None]) / 255
    np.testing.assert_allclose(train.videos.mean(axis=(2, 3, 4)), expected, atol=2 / 255)
    valid = load_something_something(tmp_path, "validation", frames=2, size=(12, 16))
    np.testing.assert_array_equal(valid.labels, [0])
    assert load_something_something(tmp_path, frames=2, size=(6, 8), limit=1).ids == ("78687",)


def test_something_something_errors(tmp_path):
    _fabricate_something(tmp_path, 3)
    with pytest.raises(ValueError, match="has 3 .jpg frames"):
        load_something_something(tmp_path, frames=4, size=(6, 8))
    with pytest.raises(ValueError, match="`split`"):
        load_something_something(tmp_path, "test")
    # A clip present only as a video: a clear error naming the file and the extraction.
    shutil.rmtree(tmp_path / "frames" / "42326")
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "42326.webm").write_bytes(b"")
    if image.have_pyav():  # it tries to decode the (empty) file, and says which
        with pytest.raises(ValueError, match=r"decode .*42326\.webm"):
            load_something_something(tmp_path, frames=2, size=(6, 8))
    else:
        with pytest.raises(DatasetLayoutError, match=r"42326\.webm.*pip install av.*ffmpeg"):
            load_something_something(tmp_path, frames=2, size=(6, 8))
    (tmp_path / "validation.json").write_text('[{"id": "9", "template": "Dancing [something]"}]')
    with pytest.raises(ValueError, match="labels.json does not list"):
        load_something_something(tmp_path, "validation", frames=2, size=(6, 8))
    (tmp_path / "labels.json").unlink()
    with pytest.raises(DatasetLayoutError, match="labels.json"):
        load_something_something(tmp_path, frames=2)
