"""Motion maps of a video and the bilinear warp that moves noise along them (issue 16).

Conventions (shared decision 2 of issue 16): an image is ``(H, W, C)``, a video ``(T, H, W, C)``;
a motion field is ``(T, H, W, 2)`` float32 displacements in pixels, channel 0 along x (width),
channel 1 along y (height); ``motion[t]`` is the displacement from frame ``t`` to frame ``t + 1``
(content at ``p`` in frame ``t`` is at ``p + motion[t][p]`` in frame ``t + 1``), and the last frame
repeats the previous field.

* :func:`warp` samples an image at ``p + flow[p]`` (bilinear, border clamped): the backward warp
  used both to align frames (optical flow) and to move the ME-Sampler's noise along the motion.
* :func:`frame_difference_motion`: the cheap hand-crafted map, the *normal flow* of brightness
  constancy computed from one frame difference (definition in its docstring).
* :func:`optical_flow`: pyramidal Lucas–Kanade (Bouguet, "Pyramidal implementation of the affine
  Lucas Kanade feature tracker", Intel 2001), dense, in JAX: compiled, vmapped over frame pairs.

The ME-Sampler paper (Zhang, Zhu, Zhu & Yang, ECCV 2020) compares optical flow with MPEG-4 motion
vectors: :func:`jaxadv.image.block_motion_vectors` computes an encoder's full-search block
matching (``_block_motion.py``); reading a codec's own vectors from a file needs a decoder and is
not done here (a user may pass any ``video -> (T, H, W, 2)`` function to the attack).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

WARP_COORDINATES = ("displacement", "absolute")
# Lucas–Kanade's trackability threshold on the smaller eigenvalue of the window's gradient matrix,
# per window pixel, for intensities in [0, 1] (OpenCV's ``minEigThreshold`` default is 1e-4).
MIN_EIGENVALUE = 1e-4


def check_video(video, *, name: str = "video", min_frames: int = 2) -> None:
    """Raises a ValueError unless ``video`` is ``(T, H, W, C)`` with at least ``min_frames``.

    Args:
      video: the array (or array-like) to check; only its shape is read.
      name: the argument's name, used in the error message.
      min_frames: the fewest frames (axis 0) allowed; 2 by default, as a motion map compares
        frame ``t`` with frame ``t + 1``.

    Raises:
      ValueError: if ``video`` does not have 4 axes or has fewer than ``min_frames`` frames.
    """
    shape = tuple(video.shape) if hasattr(video, "shape") else tuple(jnp.shape(video))
    if len(shape) != 4:
        raise ValueError(
            f"`{name}` must be one video of shape (T, H, W, C) (rank 4); got shape {shape}."
        )
    if shape[0] < min_frames:
        raise ValueError(
            f"`{name}` needs at least {min_frames} frames for a motion map (it compares frame t "
            f"with frame t + 1); got {shape[0]} frame(s) in shape {shape}."
        )


def _check_image_flow(image, flow) -> None:
    if jnp.ndim(image) != 3:
        raise ValueError(f"`image` must be (H, W, C); got shape {tuple(jnp.shape(image))}.")
    want = tuple(jnp.shape(image))[:2] + (2,)
    if tuple(jnp.shape(flow)) != want:
        raise ValueError(
            f"`flow` must be (H, W, 2) = {want} for an image of shape {tuple(jnp.shape(image))}; "
            f"got shape {tuple(jnp.shape(flow))}."
        )


def sample_bilinear(image: jax.Array, px: jax.Array, py: jax.Array) -> jax.Array:
    """``image`` (H, W, C) at pixel positions ``(px, py)`` (each (h, w)), bilinear, border clamped.

    Positions are clamped to ``[0, W − 1] × [0, H − 1]`` (the border pixel repeats). At integer
    positions the result is the pixel itself, bit for bit (the other weights are exactly 0).

    Args:
      image: ``(H, W, C)``.
      px: ``(h, w)`` float positions along x (width, columns), in pixels.
      py: ``(h, w)`` float positions along y (height, rows), in pixels, the shape of ``px``.

    Returns:
      ``(h, w, C)``: ``image`` interpolated at each ``(px, py)``.
    """
    h, w = image.shape[0], image.shape[1]
    px = jnp.clip(px, 0.0, w - 1.0)
    py = jnp.clip(py, 0.0, h - 1.0)
    x0, y0 = jnp.floor(px), jnp.floor(py)
    wx, wy = (px - x0)[..., None], (py - y0)[..., None]
    x0i, y0i = x0.astype(jnp.int32), y0.astype(jnp.int32)
    x1i, y1i = jnp.minimum(x0i + 1, w - 1), jnp.minimum(y0i + 1, h - 1)
    top = image[y0i, x0i] * (1.0 - wx) + image[y0i, x1i] * wx
    bottom = image[y1i, x0i] * (1.0 - wx) + image[y1i, x1i] * wx
    return top * (1.0 - wy) + bottom * wy


def _grid(h: int, w: int, dtype) -> tuple[jax.Array, jax.Array]:
    ys, xs = jnp.meshgrid(jnp.arange(h, dtype=dtype), jnp.arange(w, dtype=dtype), indexing="ij")
    return xs, ys


def _absolute_positions(flow: jax.Array, h: int, w: int) -> tuple[jax.Array, jax.Array]:
    """The published code's mapping: each channel min-shifted and rescaled to [−1, 1] over the
    field, read as ``grid_sample`` coordinates (``align_corners=False``: −1 and 1 are the outer
    edges of the border pixels), converted to pixel positions. A constant channel maps to 0 (the
    centre; the code divides by zero there)."""
    lo = jnp.min(flow, axis=(0, 1))
    span = jnp.max(flow, axis=(0, 1)) - lo
    unit = jnp.where(span > 0, (flow - lo) / jnp.where(span > 0, span, 1.0), 0.5)
    grid = 2.0 * unit - 1.0
    px = ((grid[..., 0] + 1.0) * w - 1.0) / 2.0
    py = ((grid[..., 1] + 1.0) * h - 1.0) / 2.0
    return px, py


def warp(image: jax.Array, flow: jax.Array, *, coordinates: str = "displacement") -> jax.Array:
    """Samples ``image`` (H, W, C) along ``flow`` (H, W, 2): bilinear, border clamped.

    Args:
      image: ``(H, W, C)``.
      flow: ``(H, W, 2)``, channel 0 along x (width), channel 1 along y (height).
      coordinates: ``"displacement"`` (default; the paper's idea of moving by the motion): the
        output at pixel ``(x, y)`` is ``image`` at ``(x + flow_x, y + flow_y)``; a zero flow is
        the identity, bit for bit, and a constant integer flow ``(a, b)`` gives
        ``out[y, x] = image[y + b, x + a]`` wherever that is inside the image. ``"absolute"``: the
        published ME-Sampler code's mapping, which feeds the motion vectors to ``grid_sample`` as
        ABSOLUTE coordinates after min-shifting and rescaling each channel to [−1, 1] over the
        field (so a constant field samples one pixel everywhere); kept for reproduction.

    Returns:
      ``(H, W, C)``, ``image``'s dtype: ``image`` sampled (:func:`sample_bilinear`) at the
      positions ``flow`` gives.

    Raises:
      ValueError: if the shapes are not ``(H, W, C)`` and ``(H, W, 2)``, or ``coordinates`` is
        unknown.
    """
    _check_image_flow(image, flow)
    if coordinates not in WARP_COORDINATES:
        raise ValueError(f"`coordinates` must be one of {WARP_COORDINATES}; got {coordinates!r}.")
    h, w = image.shape[0], image.shape[1]
    flow = flow.astype(image.dtype)
    if coordinates == "absolute":
        px, py = _absolute_positions(flow, h, w)
    else:
        xs, ys = _grid(h, w, image.dtype)
        px, py = xs + flow[..., 0], ys + flow[..., 1]
    return sample_bilinear(image, px, py)


def _gray(video: jax.Array) -> jax.Array:
    return jnp.mean(video.astype(jnp.float32), axis=-1)  # (T, H, W)


def _spatial_gradient(frame: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Central differences of an (H, W) frame, the border replicated (one-sided there, halved)."""
    p = jnp.pad(frame, 1, mode="edge")
    gx = 0.5 * (p[1:-1, 2:] - p[1:-1, :-2])
    gy = 0.5 * (p[2:, 1:-1] - p[:-2, 1:-1])
    return gx, gy


def _repeat_last(pairs: jax.Array) -> jax.Array:
    """(T − 1, H, W, 2) fields of the frame pairs → (T, H, W, 2): the last frame repeats."""
    return jnp.concatenate([pairs, pairs[-1:]], axis=0)


def frame_difference_motion(video: jax.Array, *, eps: float = 1e-2) -> jax.Array:
    """A cheap motion map from frame differences: the regularised normal flow.

    Brightness constancy ``I_x u + I_y v + I_t = 0`` fixes the motion only along the image
    gradient (the aperture problem); its least-norm solution is the *normal flow*
    ``−I_t ∇I / |∇I|²``. Here, per frame pair on the grey level ``I`` (mean over channels)::

        I_t = I[t+1] − I[t]                     the frame difference
        ∇I  = central differences of (I[t] + I[t+1]) / 2
        motion[t] = −I_t ∇I / (|∇I|² + eps)

    ``eps`` keeps flat regions finite: the displacement is at most ``|I_t| / (2√eps)`` pixels
    (``5·|I_t|`` with the default 1e-2, intensities in [0, 1]). A static video gives exactly zero. This
    is the frame-difference map weighted by the gradient, the kind of hand-crafted map the thesis
    compares motion with (Table 3.4).

    Args:
      video: ``(T, H, W, C)`` with ``T ≥ 2``.
      eps: the regulariser (> 0).

    Returns: ``(T, H, W, 2)`` float32 displacements (x, y); the last frame repeats the previous.
    """
    check_video(video)
    if not eps > 0:
        raise ValueError(f"`eps` must be > 0; got {eps}.")
    gray = _gray(video)

    def pair(a, b):
        gx, gy = _spatial_gradient(0.5 * (a + b))
        scale = -(b - a) / (gx * gx + gy * gy + eps)
        return jnp.stack([scale * gx, scale * gy], axis=-1)

    return _repeat_last(jax.vmap(pair)(gray[:-1], gray[1:]))


# -- pyramidal Lucas–Kanade --------------------------------------------------------------------


def _blur(frame: jax.Array) -> jax.Array:
    """The [1, 2, 1]/4 binomial low-pass along both axes, the border replicated (Bouguet's
    anti-aliasing filter before subsampling, to 3 taps)."""
    p = jnp.pad(frame, 1, mode="edge")
    rows = 0.25 * p[:-2] + 0.5 * p[1:-1] + 0.25 * p[2:]
    return 0.25 * rows[:, :-2] + 0.5 * rows[:, 1:-1] + 0.25 * rows[:, 2:]


def _pyramid(frame: jax.Array, levels: int) -> list[jax.Array]:
    out = [frame]
    for _ in range(levels - 1):
        out.append(_blur(out[-1])[::2, ::2])  # coarse pixel i sits on fine pixel 2i
    return out


def _window_sum(a: jax.Array, window: int) -> jax.Array:
    """Sum over the ``window × window`` neighbourhood of each pixel (zero outside)."""
    return jax.lax.reduce_window(a, 0.0, jax.lax.add, (window, window), (1, 1), "SAME")


def _upsample_flow(flow: jax.Array, h: int, w: int) -> jax.Array:
    """A coarse level's flow at the finer level (h, w): sampled at ``p/2``, doubled."""
    xs, ys = _grid(h, w, flow.dtype)
    return 2.0 * sample_bilinear(flow, 0.5 * xs, 0.5 * ys)


def _lk_level(first, second, guess, window: int, iterations: int) -> jax.Array:
    """Iterative Lucas–Kanade at one level: finds ``d`` with ``second(q + guess + d) ≈ first(q)``
    over the window of each pixel, from the 2×2 normal equations; returns ``guess + d``.

    Each pixel's residual is taken over its whole window at ITS OWN displacement (one bilinear
    sample of ``second`` per window offset and pixel); using each neighbour's own displacement
    instead couples the pixels and diverges. Window offsets outside the image weigh 0.
    """
    h, w = first.shape
    r = window // 2
    gx, gy = _spatial_gradient(first)
    gxx, gxy, gyy = (_window_sum(v, window) for v in (gx * gx, gx * gy, gy * gy))
    # Bouguet's (and OpenCV's) trackability test: a window whose smaller eigenvalue of G, per
    # pixel of the window, is under MIN_EIGENVALUE (flat, or an edge: the aperture problem) keeps
    # its guess instead of dividing by a near-singular G.
    half_trace, half_gap = 0.5 * (gxx + gyy), 0.5 * (gxx - gyy)
    min_eig = half_trace - jnp.sqrt(half_gap * half_gap + gxy * gxy)
    trackable = min_eig >= MIN_EIGENVALUE * window * window
    det = jnp.where(trackable, gxx * gyy - gxy * gxy, 1.0)
    # the window of every pixel, as (K, h, w) index arrays (K = window², static)
    oy, ox = (o.reshape(-1, 1, 1) for o in np.mgrid[-r : r + 1, -r : r + 1])
    yy, xx = np.mgrid[0:h, 0:w]
    qy, qx = yy[None] + oy, xx[None] + ox
    inside = jnp.asarray((qy >= 0) & (qy < h) & (qx >= 0) & (qx < w))
    qy_in, qx_in = np.clip(qy, 0, h - 1), np.clip(qx, 0, w - 1)
    i, ix, iy = (jnp.where(inside, a[qy_in, qx_in], 0.0) for a in (first, gx, gy))
    qx, qy = jnp.asarray(qx, first.dtype), jnp.asarray(qy, first.dtype)

    def body(_, flow):
        moved = sample_bilinear(second[..., None], qx + flow[..., 0], qy + flow[..., 1])[..., 0]
        diff = jnp.where(inside, moved - i, 0.0)  # (K, h, w): each window at its pixel's d
        bx, by = jnp.sum(ix * diff, axis=0), jnp.sum(iy * diff, axis=0)
        du = jnp.where(trackable, -(gyy * bx - gxy * by) / det, 0.0)
        dv = jnp.where(trackable, -(gxx * by - gxy * bx) / det, 0.0)
        return flow + jnp.stack([du, dv], axis=-1)

    return jax.lax.fori_loop(0, iterations, body, guess)


def _check_flow_args(levels: int, window: int, iterations: int) -> None:
    for name, value in (("levels", levels), ("window", window), ("iterations", iterations)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"`{name}` must be a positive integer; got {value!r}.")
    if window % 2 == 0:
        raise ValueError(f"`window` must be odd (centred on the pixel); got {window}.")


def pair_flow(
    first: jax.Array, second: jax.Array, *, levels: int = 3, window: int = 7, iterations: int = 5
) -> jax.Array:
    """Dense pyramidal Lucas–Kanade flow ``(H, W, 2)`` from grey frame ``first`` (H, W) to
    ``second``: ``second(p + flow[p]) ≈ first(p)`` (see :func:`optical_flow`)."""
    _check_flow_args(levels, window, iterations)
    firsts, seconds = _pyramid(first, levels), _pyramid(second, levels)
    coarse = firsts[-1]
    flow = jnp.zeros(coarse.shape + (2,), first.dtype)
    for level in range(levels - 1, -1, -1):
        if level < levels - 1:
            flow = _upsample_flow(flow, *firsts[level].shape)
        flow = _lk_level(firsts[level], seconds[level], flow, window, iterations)
    return flow


def optical_flow(
    video: jax.Array, *, levels: int = 3, window: int = 7, iterations: int = 5
) -> jax.Array:
    """Dense optical flow of a video by pyramidal Lucas–Kanade (Bouguet 2001), per frame pair.

    For each pair ``(I, J) = (frame t, frame t + 1)`` (grey levels: mean over channels) the flow
    ``d(p)`` minimises ``Σ_{q ∈ window(p)} (J(q + d) − I(q))²``: from the coarsest level of a
    ``levels``-level pyramid (binomial blur, subsampling by 2) down to the image, each level
    starts from twice the coarser level's flow and takes ``iterations`` Newton steps
    ``G d' = −Σ ∇I (J(q + d) − I(q))`` with ``G = Σ ∇I ∇Iᵀ`` over the window (the gradient of
    the first frame, fixed, as Bouguet's). Compiles to one program, vmapped over the pairs.

    Args:
      video: ``(T, H, W, C)``, ``T ≥ 2``.
      levels: pyramid levels (1: plain iterative Lucas–Kanade). Each level halves the image; the
        coarsest should keep a few pixels a side.
      window: odd side of the square window of the normal equations.
      iterations: Newton steps per level.

    Returns: ``(T, H, W, 2)`` displacements in pixels (x, y) from frame t to frame t + 1; the last
    frame repeats the previous field. Windows that cannot be tracked (smaller eigenvalue of the
    gradient matrix under :data:`MIN_EIGENVALUE` per pixel: flat, or a single edge) keep the
    coarser level's estimate (0 at the coarsest); borders are biased (clamped).
    """
    check_video(video)
    _check_flow_args(levels, window, iterations)
    gray = _gray(video)
    flows = jax.vmap(
        lambda a, b: pair_flow(a, b, levels=levels, window=window, iterations=iterations)
    )(gray[:-1], gray[1:])
    return _repeat_last(flows)


def warp_video(noise: jax.Array, motion: jax.Array, *, coordinates: str = "displacement"):
    """Each frame of ``noise`` (T, H, W, C) warped by its own field of ``motion`` (T, H, W, 2).

    Args:
      noise: ``(T, H, W, C)``, the frames to warp.
      motion: ``(T, H, W, 2)``, one flow per frame, as ``flow`` of :func:`warp`.
      coordinates: ``"displacement"`` (default) or ``"absolute"``, as in :func:`warp`.

    Returns:
      ``(T, H, W, C)``: frame ``t`` is ``warp(noise[t], motion[t], coordinates=coordinates)``.
    """
    return jax.vmap(lambda n, m: warp(n, m, coordinates=coordinates))(noise, motion)
