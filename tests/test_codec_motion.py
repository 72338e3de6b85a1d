"""Real codec motion vectors (PyAV, optional): a textured scene translated by a known shift per
frame, encoded here with MPEG-4, read back as a dense field that matches the shift on most
blocks; the same through the jittable in-memory path; skipped cleanly without PyAV."""

from __future__ import annotations

import numpy as np
import pytest

from jaxadv import image

av = pytest.importorskip("av")

T, H, W, SHIFT = 5, 48, 64, (3, -2)  # content moves 3 px right and 2 px up per frame


def translated_video():
    """Frames cut from a smooth random canvas, the window moving against ``SHIFT``."""
    rng = np.random.default_rng(0)
    canvas = rng.uniform(size=(H + 24, W + 24, 3))
    for axis in (0, 1):  # smooth it: a box blur of 5 pixels, twice
        for _ in range(2):
            canvas = sum(np.roll(canvas, s, axis) for s in range(-2, 3)) / 5
    canvas = (canvas - canvas.min()) / (canvas.max() - canvas.min())
    dx, dy = SHIFT
    return np.stack(
        [canvas[12 - t * dy : 12 - t * dy + H, 12 - t * dx : 12 - t * dx + W] for t in range(T)]
    ).astype(np.float32)


def _matches(field):
    assert field.shape == (T, H, W, 2)
    hits = np.all(np.abs(field[:-1] - np.asarray(SHIFT, np.float32)) <= 0.5, axis=-1)
    assert hits.mean() >= 0.8, hits.mean()  # most blocks (the border ones may differ)
    np.testing.assert_array_equal(field[-1], field[-2])  # the last field repeats


@pytest.mark.parametrize("codec,suffix", [("mpeg4", "avi"), ("libx264", "mp4")])
def test_codec_vectors_of_a_known_translation(tmp_path, codec, suffix):
    if codec not in av.codecs_available:
        pytest.skip(f"this FFmpeg has no {codec} encoder")
    video = translated_video()
    path = image.encode_video(video, str(tmp_path / f"shift.{suffix}"), codec=codec)
    frames, field = image.read_codec_motion(path)
    assert frames.shape == (T, H, W, 3)
    error = np.abs(frames - video).mean()  # lossy (4:2:0 chroma), but the same frames
    assert error < 0.05 < np.abs(frames - video[::-1]).mean(), error
    _matches(field)
    assert image.read_video(path, max_frames=2).shape == (2, H, W, 3)


def test_in_memory_path_under_jit_and_vmap_and_the_me_sampler_source():
    import jax

    from jaxadv.attacks._me_sampler import motion_function

    video = translated_video()
    field = np.asarray(jax.jit(image.codec_motion_vectors)(video))
    _matches(field)
    both = np.asarray(jax.vmap(image.codec_motion_vectors)(np.stack([video, video[:, ::-1]])))
    np.testing.assert_array_equal(both[0], field)
    assert motion_function("codec") is image.codec_motion_vectors


def test_something_something_decodes_a_webm_clip(tmp_path):
    if "libvpx" not in av.codecs_available:
        pytest.skip("this FFmpeg has no VP8 encoder")
    import shutil

    from jaxadv.data import load_something_something
    from test_video_data import _fabricate_something

    _fabricate_something(tmp_path, 6)
    folders = load_something_something(tmp_path, frames=3, size=(12, 16))
    shutil.rmtree(tmp_path / "frames" / "42326")
    (tmp_path / "videos").mkdir()
    frames = np.stack([np.full((12, 16, 3), 20 * f + 10) for f in range(6)]) / 255.0
    image.encode_video(frames, str(tmp_path / "videos" / "42326.webm"), codec="libvpx")
    webm = load_something_something(tmp_path, frames=3, size=(12, 16))
    assert webm.ids == folders.ids
    np.testing.assert_allclose(webm.videos[1], folders.videos[1], atol=6 / 255)
    np.testing.assert_array_equal(webm.videos[0], folders.videos[0])
