"""Motion vectors read from a real video codec (PyAV ``export_mvs``), as a dense motion field.

The ME-Sampler (Zhang, Zhu, Zhu & Yang, ECCV 2020; thesis chapter 3) sparks its noise with the
motion vectors of compressed video (MPEG-4, read with coviar in the published code). An encoder
stores, per inter-coded block of a frame ``k``, a vector to the block of a reference frame it was
predicted from (``source < 0``: a past frame, ``> 0``: a future one); FFmpeg's decoders export
them as frame side data when asked (``flags2=+export_mvs``). This reads them with PyAV, an
optional dependency (``pip install av``; nothing here is imported without it), into the form of
:func:`~jaxadv.image.block_motion_vectors`: ``(T, H, W, 2)`` displacements ``(x, y)`` from frame
``t`` to ``t + 1``.

Per vector: the displacement per frame is ``(dst − src) / (−source)`` pixels (FFmpeg's
``motion / motion_scale / source``, sub-pixel), spread over the pixels of its ``w × h`` block
around ``dst``. A vector from the previous frame (``source = −1``, P-frames) goes to field
``k − 1``, one from a later frame to field ``k``. Pixels no vector covers (the first frame,
intra-coded blocks and key frames) are zero; the last field repeats the one before it.
"""

from __future__ import annotations

import io
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxadv import _checks
from jaxadv.image._motion import check_video

CODECS = ("mpeg4", "h264", "libx264", "libvpx", "libvpx-vp9")  # VP8/9: no exported vectors


def _av() -> Any:
    """The ``av`` module (PyAV), or a clear error naming the install command."""
    try:
        import av
    except ImportError as err:  # an optional dependency
        raise ImportError(
            "Reading codec motion vectors needs PyAV: `pip install av` (not a dependency of "
            "jaxadv)."
        ) from err
    return av


def have_pyav() -> bool:
    """Whether PyAV (``import av``) is installed.

    Returns:
      True when the codec readers of this module can run.
    """
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


def _to_uint8(video: np.ndarray) -> np.ndarray:
    """``(T, H, W, C)`` in [0, 1] to RGB ``uint8``, its sides padded to even (yuv420p)."""
    frames = np.clip(np.asarray(video, np.float32), 0.0, 1.0)
    if frames.shape[-1] == 1:
        frames = np.repeat(frames, 3, axis=-1)
    h, w = frames.shape[1:3]
    frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    return np.round(frames * 255).astype(np.uint8)


def encode_video(video, target, *, codec: str = "mpeg4", rate: int = 25, gop: int | None = None):
    """Writes ``video`` with ``codec``, no B-frames (every frame after the first predicted from
    the one before it, until the next key frame).

    Args:
      video: ``(T, H, W, C)`` frames in [0, 1] (C = 1 or 3; odd sides are padded by one row or
        column, repeated).
      target: a path (its suffix names the container, e.g. ``.avi``/``.mp4``) or a writable
        binary buffer (written as AVI).
      codec: ``"mpeg4"`` (MPEG-4 Part 2, the thesis's; default), ``"h264"``/``"libx264"``
        (where the installed FFmpeg has an H.264 encoder), ``"libvpx"``/``"libvpx-vp9"`` (WebM;
        their decoders export no motion vectors).
      rate: frames per second of the stream.
      gop: frames between key frames (None: one key frame, the first).

    Returns:
      ``target``.
    """
    av = _av()
    check_video(video)
    frames = _to_uint8(np.asarray(video))
    _checks.check_choice("codec", codec, CODECS)
    _checks.check_positive_int("rate", rate)
    if gop is not None:
        _checks.check_positive_int("gop", gop)
    options = {} if isinstance(target, (str, os.PathLike)) else {"format": "avi"}
    with av.open(target, "w", **options) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.gop_size = gop or frames.shape[0]
        stream.codec_context.max_b_frames = 0
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return target


def _dense(vectors_per_frame, t: int, h: int, w: int) -> np.ndarray:
    """The ``(T, H, W, 2)`` field of the module docstring from each frame's side data."""
    field = np.zeros((t, h, w, 2), np.float32)
    for k, mvs in enumerate(vectors_per_frame):
        if mvs is None or k >= t:
            continue
        for mv in mvs:
            source = int(mv["source"])
            if source == 0:
                continue
            index = k - 1 if source < 0 else k
            if not 0 <= index < t - 1:
                continue
            scale = float(mv["motion_scale"]) * source
            bw, bh = int(mv["w"]), int(mv["h"])
            x0, y0 = int(mv["dst_x"]) - bw // 2, int(mv["dst_y"]) - bh // 2
            ys = slice(max(y0, 0), max(min(y0 + bh, h), 0))
            xs = slice(max(x0, 0), max(min(x0 + bw, w), 0))
            field[index, ys, xs] = (mv["motion_x"] / scale, mv["motion_y"] / scale)
    if t > 1:
        field[-1] = field[-2]
    return field


def read_codec_motion(source, *, max_frames: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Decodes a video file and the motion vectors its encoder stored (module docstring).

    Args:
      source: a path or a readable binary buffer of a video whose codec exports motion vectors
        (MPEG-1/2/4, H.263, H.264).
      max_frames: read at most this many frames (None: all).

    Returns:
      ``(frames, motion)``: ``float32[T, H, W, 3]`` RGB in [0, 1] and the ``float32[T, H, W,
      2]`` field of displacements ``(x, y)`` from frame ``t`` to ``t + 1``.
    """
    av = _av()
    if max_frames is not None:
        _checks.check_positive_int("max_frames", max_frames)
    frames, vectors = [], []
    with av.open(source) as container:
        stream = container.streams.video[0]
        stream.codec_context.options = {"flags2": "+export_mvs"}
        for frame in container.decode(stream):
            frames.append(frame.to_ndarray(format="rgb24"))
            side = frame.side_data.get("MOTION_VECTORS")
            vectors.append(None if side is None else side.to_ndarray())
            if max_frames is not None and len(frames) == max_frames:
                break
    if not frames:
        raise ValueError(f"`source` must hold at least one video frame; got none in {source!r}.")
    video = np.stack(frames).astype(np.float32) / 255.0
    return video, _dense(vectors, *video.shape[:3])


def read_video(source, *, max_frames: int | None = None) -> np.ndarray:
    """Decodes a video file (any container and codec the installed FFmpeg reads, e.g. WebM).

    Args:
      source: a path or a readable binary buffer.
      max_frames: read at most this many frames (None: all).

    Returns:
      ``float32[T, H, W, 3]`` RGB frames in [0, 1].
    """
    return read_codec_motion(source, max_frames=max_frames)[0]


def _codec_field(video: np.ndarray, codec: str) -> np.ndarray:
    h, w = video.shape[1:3]
    buffer = encode_video(video, io.BytesIO(), codec=codec)
    buffer.seek(0)
    _, field = read_codec_motion(buffer)
    return field[: video.shape[0], :h, :w]


def codec_motion_vectors(video: jax.Array, *, codec: str = "mpeg4") -> jax.Array:
    """The motion vectors a real encoder finds for ``video``: it is encoded with ``codec`` in
    memory (:func:`encode_video`, no B-frames) and the vectors are read back
    (:func:`read_codec_motion`). Jittable: a host callback (sequential under ``vmap``).

    Args:
      video: ``(T, H, W, C)`` frames in [0, 1], ``T ≥ 2``.
      codec: ``"mpeg4"`` (default) or an H.264 encoder name (:func:`encode_video`).

    Returns:
      ``float32[T, H, W, 2]`` displacements ``(x, y)`` from frame ``t`` to ``t + 1``
      (sub-pixel, per codec block; zero where a block is intra-coded).
    """
    _av()
    check_video(video)
    _checks.check_choice("codec", codec, CODECS)
    shape = jax.ShapeDtypeStruct(tuple(video.shape[:3]) + (2,), jnp.float32)
    return jax.pure_callback(
        lambda v: _codec_field(np.asarray(v), codec), shape, video, vmap_method="sequential"
    )
