"""Motion maps and the Motion-Excited Sampler (issue 16): the warp against bilinear interpolation
in numpy (identity, integer and sub-pixel shifts, the code's absolute coordinates), optical flow
recovering a known sub-pixel translation, the frame-difference map on a static video, the sparked
noise against a numpy transcription, one oracle call against the published update, exact query
counts, the single sampler = the sparked one on a zero motion field, success on a tiny video
victim, and bad input."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxadv import attacks
from jaxadv.image import frame_difference_motion, optical_flow
from jaxadv.image import warp as _warp

from registry import ATTACKS, VICTIMS

VIDEO = (4, 8, 8, 1)  # (T, H, W, C): the tiny video victim's input

# one compilation per shape instead of one per primitive (eager dispatch is slow on a busy CPU)
warp = jax.jit(_warp, static_argnames="coordinates")
RNG = np.random.default_rng  # test data from numpy: no compilations for it


# -- numpy transcriptions --------------------------------------------------------------------------


def bilinear_np(image, px, py):
    """``image`` (H, W, C) at positions (px, py), bilinear, positions clamped to the image."""
    h, w = image.shape[:2]
    px, py = np.clip(px, 0, w - 1), np.clip(py, 0, h - 1)
    out = np.zeros(px.shape + image.shape[2:])
    for idx in np.ndindex(px.shape):
        x, y = px[idx], py[idx]
        x0, y0 = int(np.floor(x)), int(np.floor(y))
        x1, y1 = min(x0 + 1, w - 1), min(y0 + 1, h - 1)
        ax, ay = x - x0, y - y0
        out[idx] = ((1 - ay) * ((1 - ax) * image[y0, x0] + ax * image[y0, x1])
                    + ay * ((1 - ax) * image[y1, x0] + ax * image[y1, x1]))
    return out


def warp_np(image, flow):
    h, w = image.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    return bilinear_np(image, xs + flow[..., 0], ys + flow[..., 1])


def smooth_video(shift, frames, size, phase=0.0):
    """Frames of a smooth textured pattern translated by ``shift`` (x, y) pixels per frame."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)

    def f(x, y):
        return 0.5 + 0.2 * np.sin(0.5 * x + 0.2 * y + phase) + 0.2 * np.cos(0.3 * x - 0.55 * y)

    return np.stack([f(xs - t * shift[0], ys - t * shift[1]) for t in range(frames)])[..., None]


# -- the warp --------------------------------------------------------------------------------------


def test_warp_zero_flow_is_identity_and_integer_shift_moves_exactly():
    image = jnp.asarray(RNG(0).uniform(size=(6, 7, 2)), jnp.float32)
    assert np.array_equal(np.asarray(warp(image, jnp.zeros((6, 7, 2)))), np.asarray(image))
    a, b = 2, -1  # out[y, x] = image[y + b, x + a] inside the image
    shifted = np.asarray(warp(image, jnp.broadcast_to(jnp.array([a, b], jnp.float32), (6, 7, 2))))
    np.testing.assert_array_equal(shifted[1:, : 7 - a], np.asarray(image)[:-1, a:])
    # border clamped: the last columns repeat the border column
    np.testing.assert_array_equal(shifted[1:, -1], np.asarray(image)[:-1, -1])


def test_warp_subpixel_matches_numpy_bilinear():
    rng = RNG(1)
    image = jnp.asarray(rng.uniform(size=(5, 6, 3)), jnp.float32)
    flow = jnp.asarray(2.5 * rng.normal(size=(5, 6, 2)), jnp.float32)  # some fall outside
    want = warp_np(np.asarray(image, np.float64), np.asarray(flow, np.float64))
    np.testing.assert_allclose(np.asarray(warp(image, flow)), want, atol=1e-6)
    const = jnp.broadcast_to(jnp.array([0.3, -0.7]), (5, 6, 2))
    want = warp_np(np.asarray(image, np.float64), np.asarray(const, np.float64))
    np.testing.assert_allclose(np.asarray(warp(image, const)), want, atol=1e-6)


def test_warp_absolute_coordinates_follow_the_code_mapping():
    """The code's reading: each channel rescaled to [−1, 1] over the field, then grid_sample's
    align_corners=False pixel positions ((g + 1)·size − 1)/2."""
    rng = RNG(2)
    image = jnp.asarray(rng.uniform(size=(5, 6, 1)), jnp.float32)
    flow = np.asarray(rng.normal(size=(5, 6, 2)), np.float32).astype(np.float64)
    lo, hi = flow.min(axis=(0, 1)), flow.max(axis=(0, 1))
    g = 2 * (flow - lo) / (hi - lo) - 1
    px, py = ((g[..., 0] + 1) * 6 - 1) / 2, ((g[..., 1] + 1) * 5 - 1) / 2
    want = bilinear_np(np.asarray(image, np.float64), px, py)
    got = warp(image, jnp.asarray(flow, jnp.float32), coordinates="absolute")
    np.testing.assert_allclose(np.asarray(got), want, atol=1e-5)


# -- motion maps -----------------------------------------------------------------------------------


def test_optical_flow_recovers_subpixel_translation():
    shift = (0.6, -1.3)
    video = jnp.asarray(smooth_video(shift, 2, 24), jnp.float32)
    flow_of = jax.jit(functools.partial(optical_flow, levels=2, window=7, iterations=5))
    flow = np.asarray(flow_of(video))
    assert flow.shape == (2, 24, 24, 2)
    np.testing.assert_array_equal(flow[1], flow[0])  # the last frame repeats the previous field
    inner = flow[0, 6:-6, 6:-6]  # away from the clamped border
    assert np.abs(inner - np.array(shift)).max() < 0.1
    # a flat video cannot be tracked (Bouguet's eigenvalue test): zero flow, not a blow-up
    np.testing.assert_array_equal(np.asarray(flow_of(jnp.full_like(video, 0.5))), 0.0)


def test_frame_difference_motion_zero_on_static_video_and_follows_motion():
    motion_of = jax.jit(frame_difference_motion)
    static = jnp.asarray(np.repeat(smooth_video((0.0, 0.0), 1, 16), 3, axis=0), jnp.float32)
    np.testing.assert_array_equal(np.asarray(motion_of(static)), 0.0)
    moving = jnp.asarray(smooth_video((0.3, 0.0), 3, 16), jnp.float32)
    m = np.asarray(motion_of(moving))
    # the normal flow is the motion's projection on the gradient: here mostly along +x
    assert m.shape == (3, 16, 16, 2) and np.mean(m[0, 2:-2, 2:-2, 0]) > 0.05


# -- the sampler and the oracle --------------------------------------------------------------------


def test_sparked_noise_is_the_noise_frame_warped_frame_by_frame():
    rng = RNG(3)
    frame = jnp.asarray(rng.normal(size=(5, 6, 2)), jnp.float32)
    motion = jnp.asarray(1.7 * rng.normal(size=(3, 5, 6, 2)), jnp.float32)
    got = np.asarray(jax.jit(attacks.sparked_noise)(frame, motion))
    want = np.stack([warp_np(np.asarray(frame, np.float64), np.asarray(m, np.float64))
                     for m in motion])
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_oracle_call_matches_the_published_update():
    """One call against the code's bandits step: q1,2 = v ± δn, est = (l1−l2)/(ηδ²)·δn,
    v ← v + lr·est, on a linear loss, with the multi-noise draw read back from the oracle."""
    oracle = attacks.MotionBandits(sampler="multi", fd_eta=0.1, exploration=0.1, prior_lr=0.1)
    rng = RNG(4)
    w = jnp.asarray(rng.normal(size=VIDEO), jnp.float32)
    loss_fn = lambda th: (jnp.sum(w * th), None)  # noqa: E731
    theta = jnp.asarray(0.01 * rng.normal(size=VIDEO), jnp.float32)
    prior = jnp.asarray(0.3 * rng.normal(size=VIDEO), jnp.float32)
    key = jax.random.key(7)
    (loss, _), grad, state, queries = jax.jit(
        lambda th, k, v: oracle(loss_fn, th, k, (v, None)))(theta, key, prior)
    n = np.asarray(oracle.noise(key, VIDEO, jnp.float32), np.float64)
    v, th, wn = (np.asarray(a, np.float64) for a in (prior, theta, w))
    q1, q2 = v + 0.1 * n, v - 0.1 * n
    l1 = np.sum(wn * (th + 0.1 * q1 / np.linalg.norm(q1)))
    l2 = np.sum(wn * (th + 0.1 * q2 / np.linalg.norm(q2)))
    want = v + 0.1 * (l1 - l2) / (0.1 * 0.1**2) * (0.1 * n)
    np.testing.assert_allclose(np.asarray(grad), want, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(np.asarray(state[0]), np.asarray(grad))
    assert int(queries) == 3 and abs(float(loss) - np.sum(wn * th)) < 1e-4


def test_losses_match_their_definitions():
    """Table 3.5's losses and the code's "CWLoss", minimised, against numpy."""
    logits = np.array([1.0, 3.0, 2.5, -1.0], np.float32)
    p = np.exp(logits) / np.exp(logits).sum()
    label, target = 1, 3
    hp = attacks.me_sampler().hparams()
    want = {
        ("probability", False): p[1] - p[2],
        ("probability", True): p[1] - p[3],
        ("logits", False): 3.0 - 2.5,
        ("logits", True): 3.0 - (-1.0),
        ("ce", False): np.log(p[1]),
        ("ce", True): -np.log(p[3]),
        ("published", False): 1.0 - p[2],  # 1 − the second-highest probability
    }
    objectives = [attacks.me_sampler(loss=loss, targeted=t).objective for loss, t in want]
    got = jax.jit(lambda z: [f(z, label, target, hp) for f in objectives])(jnp.asarray(logits))
    np.testing.assert_allclose(np.array(got, np.float64), list(want.values()), atol=1e-5)


# -- the attack ------------------------------------------------------------------------------------


def video_victim():
    """The registry's tiny video classifier: score-only, linear on (T=3, 4, 4, 1), 3 classes."""
    return VICTIMS["tiny video classifier"]()


def moving_videos(n, size=4, frames=3):
    """Smooth patterns moving one pixel a frame in different directions (and phases)."""
    shifts = [(1.0, 0.0), (0.0, 1.0), (-1.0, 0.5), (0.5, -1.0)]
    vids = [smooth_video(shifts[i % 4], frames, size, phase=0.7 * i) for i in range(n)]
    return jnp.asarray(np.stack(vids), jnp.float32)


def check_query_counts(queries, steps, success, max_steps):
    """3 queries a step and the final evaluation; the step that finds success is charged its
    evaluation of the current point only, and a success found by the final evaluation (after
    the last step) costs the full 3·steps + 1."""
    during, after = 3 * (steps - 1) + 1, 3 * steps + 1
    found = (queries == during) | ((steps == max_steps) & (queries == after))
    assert np.all(np.where(success, found, queries == after)), (queries, steps, success)


def sparked_attack():
    """The registry's ME-Sampler (frame-difference motion, 13 queries: 4 steps and the final
    evaluation); run here on the conformance batch size (3) so one compilation serves both."""
    return ATTACKS["me-sampler"].make()


def test_query_counts_are_three_per_iteration_plus_the_final_evaluation():
    victim, attack = video_victim(), sparked_attack()
    x = moving_videos(3)
    y = jnp.argmax(victim.batch(x), -1).astype(jnp.int32)
    r = attack.batch(victim, attack.hparams(eps=0.2), x, y, jax.random.key(0))
    q, steps, success = (np.asarray(a) for a in (r.queries, r.steps, r.success))
    check_query_counts(q, steps, success, max_steps=4)
    assert success.all()  # the sparked attack fools the tiny video victim within 13 queries
    # a video that never succeeds spends 3 per step and the final evaluation: 4 steps, 13
    r = attack.batch(victim, attack.hparams(eps=1e-6), x, y, jax.random.key(0))
    assert not np.any(np.asarray(r.success))
    np.testing.assert_array_equal(np.asarray(r.queries), 13)
    np.testing.assert_array_equal(np.asarray(r.steps), 4)


def test_single_sampler_equals_sparked_on_a_zero_motion_field_oracle():
    """The samplers differ only in the noise: on a zero field (warp = identity, bit for bit) the
    sparked noise IS the single-noise draw, key for key (the attack-level run is the slow test
    below; estimates agree up to float contraction, as XLA may fuse ``v ± δn`` differently)."""
    sparked = attacks.MotionBandits().with_motion(jnp.zeros(VIDEO[:3] + (2,)))
    single = attacks.MotionBandits(sampler="single")
    noise = jax.jit(lambda k: [o.noise(k, VIDEO, jnp.float32) for o in (sparked, single)])
    n1, n2 = noise(jax.random.key(9))
    np.testing.assert_array_equal(np.asarray(n1), np.asarray(n2))


@pytest.mark.slow
def test_single_sampler_equals_sparked_on_a_zero_motion_field_attack():
    victim = video_victim()
    x = moving_videos(2)
    y = jnp.argmax(victim.batch(x), -1).astype(jnp.int32)
    zero = lambda video: jnp.zeros(video.shape[:3] + (2,), video.dtype)  # noqa: E731
    sparked = attacks.me_sampler(motion=zero, max_queries=13)
    single = attacks.me_sampler(sampler="single", max_queries=13)
    hp = sparked.hparams(eps=0.1)
    a = sparked.batch(victim, hp, x, y, jax.random.key(5))
    b = single.batch(victim, hp, x, y, jax.random.key(5))
    np.testing.assert_array_equal(np.asarray(a.x_adv), np.asarray(b.x_adv))
    np.testing.assert_array_equal(np.asarray(a.queries), np.asarray(b.queries))


def test_motion_is_computed_once_per_video_per_run_across_compiled_chunks():
    """The motion source runs once per video per run, however many compiled chunks the driver
    runs the attack in (on CPU a host loop over chunks of ``_compile.MAX_CPU_UNROLL`` steps, each
    rebuilding the program): it is computed in the oracle's ``init`` and carried in the state.
    Counted by a host callback in the source, in videos (a batched call counts its batch)."""
    from jaxadv import _compile

    seen = []

    def count(video):  # called with one video (T, H, W, C) or a batch of them
        seen.append(1 if video.ndim == 4 else video.shape[0])

    def counted(video):
        jax.debug.callback(count, video)
        return frame_difference_motion(video)

    steps = 2 * _compile.MAX_CPU_UNROLL + 5  # three chunks on CPU, one scan elsewhere
    attack = attacks.me_sampler(motion=counted, max_queries=3 * steps + 1)
    assert attack.length == steps
    victim, x = video_victim(), moving_videos(3)
    y = jnp.argmax(victim.batch(x), -1).astype(jnp.int32)
    r = attack.batch(victim, attack.hparams(eps=1e-6), x, y, jax.random.key(0))  # never succeeds
    np.testing.assert_array_equal(np.asarray(r.steps), steps)
    assert sum(seen) == 3, seen  # the pre-fix code (flow in `oracle_for`): 15, 5 phases × 3


# -- bad input -------------------------------------------------------------------------------------


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="video"):
        optical_flow(np.zeros((8, 8, 1)))
    with pytest.raises(ValueError, match="at least 2 frames"):
        frame_difference_motion(np.zeros((1, 8, 8, 1)))
    with pytest.raises(ValueError, match="max_queries"):
        attacks.me_sampler(max_queries=0)
    with pytest.raises(ValueError, match="max_queries"):
        attacks.me_sampler(max_queries=3)  # one step (3) and the final evaluation need 4
    with pytest.raises(ValueError, match="sampler"):
        attacks.me_sampler(sampler="pair")
    with pytest.raises(ValueError, match="motion"):
        attacks.me_sampler(motion="mpeg")
    with pytest.raises(ValueError, match="loss"):
        attacks.me_sampler(loss="published", targeted=True)
    with pytest.raises(ValueError, match="flow"):
        _warp(np.zeros((4, 4, 1)), np.zeros((4, 5, 2)))
    with pytest.raises(ValueError, match="window"):
        optical_flow(np.zeros((2, 8, 8, 1)), window=4)
    image_victim = VICTIMS["score-only classifier"]()  # (4, 4, 1) images: not a video
    attack = sparked_attack()
    with pytest.raises(ValueError, match="victim.input_shape"):
        attack.batch(image_victim, attack.hparams(), np.zeros((1, 4, 4, 1)), np.zeros(1, np.int32),
                     jax.random.key(0))


@pytest.mark.slow
def test_sampler_comparison_on_moving_videos():
    """Table 3.3's comparison at toy scale (printed; run with -s): success and mean queries of the
    multi-noise, single-noise and sparked samplers (frame-difference and optical-flow motion) on
    24 moving-pattern videos of the tiny video victim, ε = 0.1, 301 queries, 3 seeds. Asserted:
    every sampler fools most videos and counts its queries exactly."""
    victim = video_victim()
    x = moving_videos(24)
    y = jnp.argmax(victim.batch(x), -1).astype(jnp.int32)
    variants = {"multi": dict(sampler="multi"), "single": dict(sampler="single"),
                "sparked-difference": dict(motion="difference"), "sparked-flow": dict(motion="flow")}
    for name, kw in variants.items():
        attack = attacks.me_sampler(max_queries=301, **kw)
        rates, queries = [], []
        for seed in range(3):
            r = attack.batch(victim, attack.hparams(eps=0.1), x, y, jax.random.key(seed))
            q, steps, ok = (np.asarray(a) for a in (r.queries, r.steps, r.success))
            check_query_counts(q, steps, ok, max_steps=100)
            rates.append(ok.mean())
            queries.append(q.mean())
        print(f"{name}: success {np.mean(rates):.3f}, mean queries {np.mean(queries):.1f}")
        assert np.mean(rates) >= 0.5


@pytest.mark.slow
def test_a_motion_function_of_the_wrong_shape_is_refused():
    flat = attacks.me_sampler(motion=lambda v: jnp.zeros(v.shape[:3]), max_queries=7)
    with pytest.raises(ValueError, match="motion"):
        flat.batch(video_victim(), flat.hparams(), moving_videos(1), jnp.zeros(1, int),
                   jax.random.key(0))


@pytest.mark.slow
def test_targeted_attack_reaches_its_target():
    victim = video_victim()
    x = moving_videos(12)
    y = jnp.argmax(victim.batch(x), -1).astype(jnp.int32)
    target = (y + 1) % 3
    attack = attacks.me_sampler(motion="difference", targeted=True, max_queries=301)
    r = attack.batch(victim, attack.hparams(eps=0.1), x, y, jax.random.key(1), target)
    ok = np.asarray(r.success)
    assert ok.mean() >= 0.5
    hit = np.argmax(np.asarray(victim.batch(r.x_adv)), -1)
    np.testing.assert_array_equal(hit[ok], np.asarray(target)[ok])
    assert np.abs(np.asarray(r.x_adv - x)).max() <= 0.1 + 1e-6
