"""Direct-search attacks (SignHunter, SimBA, SimBA-DCT) against numpy transcriptions of the
published algorithms: a black-box victim that logs every query (a host callback behind
``models.score_only``) shows that the attack queries exactly the transcription's points, in order,
and counts them exactly; the orthonormal DCT-II against ``scipy.fft``; clear errors."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.fft

from jaxadv import attacks, image, models
from jaxadv.models import Victim

_LOG: list = []  # the inputs the logging victim was queried with, in order


def _logging_victim(weights, bias, shape, bounds=(-10.0, 10.0)):
    """An affine classifier ``z = W·vec(x) + b`` computed on the host (no gradient can pass),
    logging each query; seen through ``score_only`` (differentiating would raise)."""
    w, b = np.asarray(weights, np.float32), np.asarray(bias, np.float32)

    def host(x):
        _LOG.append(np.array(x))
        return (np.asarray(x, np.float32).reshape(len(x), -1) @ w.T + b).astype(np.float32)

    def apply_fn(variables, x):
        out = jax.ShapeDtypeStruct((x.shape[0], len(b)), jnp.float32)
        return jax.pure_callback(host, out, x, vmap_method="sequential")

    victim = Victim(variables={}, apply_fn=apply_fn, input_shape=shape, num_classes=len(b),
                    bounds=bounds)  # fmt: skip
    return models.score_only(victim), w, b


def _log_softmax(z):
    z = np.asarray(z, np.float64)
    z = z - z.max()
    return z - np.log(np.sum(np.exp(z)))


# -- the orthonormal DCT-II ------------------------------------------------------------------------


def test_dct_matches_scipy_and_is_orthonormal():
    x = np.random.default_rng(0).normal(size=(5, 7, 3)).astype(np.float32)
    want = scipy.fft.dctn(x.astype(np.float64), type=2, axes=(0, 1), norm="ortho")
    np.testing.assert_allclose(image.dct2(x), want, atol=2e-6)
    np.testing.assert_allclose(image.idct2(want.astype(np.float32)), x, atol=2e-6)
    for n in (1, 4, 7):
        c = np.asarray(image.dct_matrix(n), np.float64)
        np.testing.assert_allclose(c @ c.T, np.eye(n), atol=1e-6)
        np.testing.assert_allclose(c, scipy.fft.dct(np.eye(n), type=2, axis=0, norm="ortho"),
                                   atol=1e-6)  # fmt: skip
    with pytest.raises(ValueError, match=r"`x` must be one image of shape \[h, w, c\]"):
        image.dct2(np.zeros((4, 4)))


# -- SimBA -------------------------------------------------------------------------------------------


def _dct_direction(j, shape):
    """Basis image ``j`` (row-major over ``[h, w, c]`` coefficients) by scipy's inverse DCT."""
    e = np.zeros(int(np.prod(shape)))
    e[j] = 1.0
    return scipy.fft.idctn(e.reshape(shape), type=2, axes=(0, 1), norm="ortho")


def simba_transcription(
    logits_fn, x0, label, directions, eps, budget, bounds, targeted=False, first=1.0
):
    """Algorithm 1 of Guo et al. in float64: for each q, +ε then −ε (``first=-1``: the authors'
    code's order); keep the first that lowers p(label) (targeted: raises p(target)); stop at the
    first fooling query or the budget. Returns the queried points, the result and its accepted
    steps."""
    lo, hi = bounds

    def loss(x):
        lp = _log_softmax(logits_fn(x))
        return -lp[label] if targeted else lp[label]

    def fooled(x):
        top = int(np.argmax(logits_fn(x)))
        return top == label if targeted else top != label

    latent, accepted = np.zeros_like(x0, np.float64), 0
    points = [np.clip(x0 + latent, lo, hi)]
    value = loss(points[0])
    if fooled(points[0]):
        return points, points[0], 0
    for q in directions:
        for sign in (first, -first):
            if len(points) == budget:
                return points, np.clip(x0 + latent, lo, hi), accepted
            trial = latent + sign * eps * q
            x = np.clip(x0 + trial, lo, hi)
            points.append(x)
            if fooled(x):
                return points, x, accepted + 1
            new = loss(x)
            if new < value:
                latent, value, accepted = trial, new, accepted + 1
                break
    return points, np.clip(x0 + latent, lo, hi), accepted


SIMBA_QUERIES = 8  # 7 steps: one compiled chunk on CPU


@functools.lru_cache(maxsize=None)
def _simba_case(basis="dct", targeted=False, negative_first=False):
    """SimBA (SimBA-DCT: freq_dims 2, stride 1) on a 3-class affine victim over 4×4×1 images."""
    shape = (4, 4, 1)
    rng = np.random.default_rng(3)
    victim, w, b = _logging_victim(rng.normal(size=(3, 16)), [1.5, 0.0, 0.0], shape)
    options = dict(freq_dims=2, stride=1) if basis == "dct" else {}
    attack = attacks.simba(basis=basis, max_queries=SIMBA_QUERIES, targeted=targeted,
                           negative_first=negative_first, **options)  # fmt: skip
    return victim, w, b, attack, shape


SLOW = pytest.mark.slow


@pytest.mark.parametrize(
    "basis, targeted, eps, negative_first",
    [("dct", False, 0.4, False), ("dct", False, 1.5, False),
     pytest.param("pixel", False, 0.6, True, marks=SLOW),
     pytest.param("dct", True, 1.5, False, marks=SLOW)],
)  # fmt: skip
def test_simba_queries_the_transcriptions_points(basis, targeted, eps, negative_first):
    victim, w, b, attack, shape = _simba_case(basis, targeted, negative_first)
    hp = attack.hparams(eps=eps)
    logits = lambda x: w @ np.ravel(x) + b  # noqa: E731
    outcomes = set()
    for i in range(3):
        key = jax.random.key(i)
        x0 = np.asarray(jax.random.uniform(jax.random.key(10 + i), shape, minval=-0.5, maxval=0.5))
        label = int(np.argmax(logits(x0)))
        goal = (label + 1) % 3 if targeted else label  # the class whose probability moves
        _LOG.clear()
        r = attack(victim, hp, x0, label, key, target=goal if targeted else None)
        xs = np.concatenate(_LOG)
        assert len(xs) == SIMBA_QUERIES  # every program step is one forward pass

        order = np.asarray(attack.directions(key, shape))
        assert sorted(order) == list(range(16))  # all directions, without replacement
        if basis == "dct":  # the 2×2 low-frequency block first, then bands of width 1
            radius = np.maximum(order // 4, order % 4)
            assert np.all(radius[:4] < 2) and np.all(np.diff(radius[4:]) >= 0)
            directions = [_dct_direction(j, shape) for j in order]
        else:
            directions = [np.eye(16)[j].reshape(shape) for j in order]

        points, x_adv, accepted = simba_transcription(
            logits, x0, goal, directions, eps, SIMBA_QUERIES, victim.bounds, targeted,
            first=-1.0 if negative_first else 1.0,
        )
        n = len(points)
        assert int(r.queries) == n and int(r.steps) == n - 1
        np.testing.assert_allclose(xs[:n], np.stack(points), atol=1e-5)
        np.testing.assert_allclose(r.x_adv, x_adv, atol=1e-5)
        assert int(r.extras["accepted"]) == accepted
        # no box clipping here: δ = Σ ±ε q_i over distinct orthonormal q_i, ‖δ‖₂ = ε·√accepted
        np.testing.assert_allclose(float(r.l2), eps * math.sqrt(accepted), rtol=1e-5)
        delta = np.asarray(r.delta, np.float64)
        if basis == "dct":
            delta = scipy.fft.dctn(delta, axes=(0, 1), norm="ortho")
        nonzero = np.abs(delta.ravel()) > 1e-4
        assert nonzero.sum() == accepted
        np.testing.assert_allclose(np.abs(delta.ravel()[nonzero]), eps, rtol=1e-4)
        assert set(np.flatnonzero(nonzero)) <= set(order[: (n - 1)])
        # the loss is log p(label) (targeted: −log p(target)); success is the victim's verdict
        log_p = _log_softmax(logits(x_adv))[goal]
        np.testing.assert_allclose(r.loss, -log_p if targeted else log_p, atol=1e-5)
        top = int(np.argmax(logits(x_adv)))
        assert bool(r.success) == (top == goal if targeted else top != label)
        assert np.all(np.diff(np.asarray(r.trace)[: n - 2]) <= 0)
        outcomes.add((bool(r.success), n == SIMBA_QUERIES))
    if (basis, targeted, eps) == ("dct", False, 1.5):
        assert (True, False) in outcomes  # stopped early at success
    if (basis, targeted, eps) == ("dct", False, 0.4):
        assert (False, True) in outcomes  # ran out of queries: best point, success=False


def test_each_accepted_simba_step_lowers_the_true_class_probability():
    """On the logged queries of a run, the accepted points' p(label) strictly decreases."""
    victim, w, b, attack, shape = _simba_case("dct", False, False)
    x0 = np.zeros(shape, np.float32)
    logits = lambda x: w @ np.ravel(x) + b  # noqa: E731
    _LOG.clear()
    r = attack(victim, attack.hparams(eps=0.4), x0, 0, jax.random.key(5))
    p = [np.exp(_log_softmax(logits(x))[0]) for x in np.concatenate(_LOG)[: int(r.queries)]]
    kept = [p[0]]
    for value in p[1:]:
        if value < kept[-1]:
            kept.append(value)
    assert len(kept) - 1 == int(r.extras["accepted"]) >= 2
    np.testing.assert_allclose(np.exp(float(r.loss)), kept[-1], rtol=1e-5)


# -- SignHunter ------------------------------------------------------------------------------------


def signhunter_transcription(loss, fooled, x0, eps, norm, budget, bounds):
    """Algorithms 1 and 3 of Al-Dujaili & O'Reilly in float64, with the authors' schedule (start
    s = 1, a level ends when its chunks reach the end) and a projected query; stops at the first
    fooling query or the budget. Returns the queried points and the result."""
    lo, hi = bounds
    flat = np.ravel(x0).astype(np.float64)
    n = flat.size
    top = math.ceil(math.log2(n)) if n > 1 else 0
    eta = eps if norm == "linf" else eps / math.sqrt(n)

    def project(delta):
        if norm == "linf":
            delta = np.clip(delta, -eps, eps)
        else:
            delta = delta * min(1.0, eps / max(np.linalg.norm(delta), 1e-12))
        return np.clip(flat + delta, lo, hi).reshape(np.shape(x0))

    origin, signs = np.zeros(n), np.ones(n)
    current = project(origin + eta * signs)
    points, value = [current], loss(current)
    best, best_loss = current, value
    if fooled(current):
        return points, current
    h = i = 0
    restart = False
    while len(points) < budget:
        if restart:
            trial, end = np.ones(n), None
        else:
            size = -(-n // 2**h)
            start, end = i * size, min(n, (i + 1) * size)
            trial = signs.copy()
            trial[start:end] *= -1
        x = project(origin + eta * trial)
        points.append(x)
        new = loss(x)
        if fooled(x):
            return points, x
        if new < best_loss:
            best, best_loss = x, new
        if restart or new <= value:
            signs, current, value = trial, x, new
        if restart:
            restart = False
            continue
        i += 1
        if i == 2**h or end >= n:
            h, i = h + 1, 0
        if h > top:  # the run is over: restart from the current point
            origin, h, restart = np.ravel(current) - flat, 0, True
    return points, best


SIGN_QUERIES = 9  # n = 3: a run is 1 + 2 + 3 = 6 flips (chunks of 3; 2 and 1; 1, 1 and 1), then
# the restart's query and one flip from the new origin


@pytest.mark.parametrize("norm", ["linf", pytest.param("l2", marks=pytest.mark.slow)])
def test_signhunter_flips_match_the_transcription(norm):
    rng = np.random.default_rng(2)
    victim, w, b = _logging_victim(rng.normal(size=(3, 3)), [2.0, 0.0, 0.0], (3,))
    attack = attacks.signhunter(norm=norm, max_queries=SIGN_QUERIES)
    eps = 0.45 if norm == "linf" else 1.0
    hp = attack.hparams(eps=eps)
    logits = lambda x: w @ np.ravel(x) + b  # noqa: E731
    outcomes = set()
    for i in range(4):
        x0 = np.asarray(jax.random.uniform(jax.random.key(20 + i), (3,), minval=-1, maxval=1))
        label = int(np.argmax(logits(x0)))
        _LOG.clear()
        r = attack(victim, hp, x0, label, jax.random.key(i))
        xs = np.concatenate(_LOG)
        assert len(xs) == SIGN_QUERIES

        def loss(x):  # the paper's cross-entropy, maximised there: −CE minimised here
            return _log_softmax(logits(x))[label]

        def fooled(x):
            return int(np.argmax(logits(x))) != label

        points, x_adv = signhunter_transcription(
            loss, fooled, x0, eps, norm, SIGN_QUERIES, victim.bounds
        )
        n = len(points)
        assert int(r.queries) == n and int(r.steps) == n - 1
        np.testing.assert_allclose(xs[:n], np.stack(points), atol=1e-5)
        np.testing.assert_allclose(r.x_adv, x_adv, atol=1e-5)
        assert bool(r.success) == fooled(x_adv)
        delta = np.asarray(r.x_adv) - x0
        if norm == "linf":
            assert np.max(np.abs(delta)) <= eps * (1 + 1e-6)
        else:
            assert np.linalg.norm(delta) <= eps * (1 + 1e-5)
        # the best loss never rises before the fooling query (which wins whatever its loss)
        assert np.all(np.diff(np.asarray(r.trace)[: n - 2]) <= 0)
        outcomes.add((bool(r.success), n))
    if norm == "linf":  # both outcomes; the failure ran through the restart
        assert any(s for s, _ in outcomes) and (False, SIGN_QUERIES) in outcomes


def test_simba_dct_orders_and_default_frequencies():
    """The ``random`` order takes the low-frequency block only, the ``strided`` order every
    direction band by band, the pixel order all of them; the defaults are the README's 28 and 7
    for 224×224 images."""
    shape = (6, 5, 2)
    block = attacks.simba(basis="dct", freq_dims=3, order="random")
    strided = attacks.simba(basis="dct", freq_dims=3, stride=2)
    pixel = attacks.simba()
    block, order, other, pixel = map(np.asarray, jax.jit(lambda k, j: (
        block.directions(k, shape), strided.directions(k, shape), strided.directions(j, shape),
        pixel.directions(k, shape),
    ))(jax.random.key(0), jax.random.key(1)))  # fmt: skip
    radius = np.maximum(order // 2 // 5, order // 2 % 5)  # max(row, col) of each frequency
    bands = np.where(radius < 3, 0, 1 + (radius - 3) // 2)
    assert sorted(order) == list(range(60)) and np.all(np.diff(bands) >= 0)
    # 2 channels × (the 3×3 block; max(row, col) in {3, 4}: 25 − 9; row 5: 5)
    np.testing.assert_array_equal(np.bincount(bands), [18, 32, 10])
    assert sorted(block) == sorted(order[:18])  # the 3×3 block of both channels
    assert not np.array_equal(order, other)  # random within the bands, from the key
    assert sorted(pixel) == list(range(60)) and not np.array_equal(pixel, np.arange(60))
    assert attacks.simba(basis="dct").frequencies((224, 224, 3)) == (28, 7)
    assert attacks.simba(basis="dct").frequencies((4, 4, 1)) == (1, 1)


@pytest.mark.slow
def test_signhunter_random_start():
    """``start="random"``: the first query is a vertex ±eps of the ℓ∞ ball (no box here), drawn
    from the key; queries are still every forward pass up to success."""
    victim, w, b = _logging_victim(np.eye(3), [3.0, 0.0, 0.0], (3,))
    attack = attacks.signhunter(max_queries=5, start="random")
    starts = []
    for i in range(4):
        _LOG.clear()
        r = attack(victim, attack.hparams(eps=0.5), np.zeros(3, np.float32), 0, jax.random.key(i))
        xs = np.concatenate(_LOG)
        np.testing.assert_array_equal(np.abs(xs[0]), 0.5)
        starts.append(tuple(np.sign(xs[0])))
        assert int(r.queries) == 5 and not bool(r.success)  # a margin of 3 > 2·0.5 stays
    assert len(set(starts)) > 1


# -- misuse ----------------------------------------------------------------------------------------


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="`eps` must be finite and > 0"):
        attacks.simba(eps=0.0)
    with pytest.raises(ValueError, match="`eps` must be finite and > 0"):
        attacks.simba(eps=-0.1)
    with pytest.raises(ValueError, match="`hp.eps` must be finite and > 0"):
        attacks.simba().hparams(eps=0.0)
    for make in (attacks.simba, attacks.signhunter):
        with pytest.raises(ValueError, match="`max_queries` must be an integer >= 1; got 0"):
            make(max_queries=0)
    with pytest.raises(ValueError, match="`basis`"):
        attacks.simba(basis="haar")
    with pytest.raises(ValueError, match="`freq_dims` is an option of SimBA-DCT"):
        attacks.simba(freq_dims=4)
    with pytest.raises(ValueError, match="`stride` must be an integer >= 1"):
        attacks.simba(basis="dct", stride=0)
    with pytest.raises(ValueError, match="`norm`"):
        attacks.signhunter(norm="l1")
    with pytest.raises(ValueError, match="`loss`"):
        attacks.signhunter(loss="dlr")
    with pytest.raises(ValueError, match="`hp.eps` must be >= 0"):
        attacks.signhunter().hparams(eps=-1.0)
    victim, *_ = _simba_case("dct", False, False)
    x, y = jnp.zeros((2, 4, 4, 1)), jnp.zeros(2, jnp.int32)
    attack = attacks.simba(basis="dct", freq_dims=5, max_queries=3)
    with pytest.raises(ValueError, match="`freq_dims` must be at most the image's smaller side, 4"):
        attack.batch(victim, attack.hparams(), x, y, jax.random.key(0))
    flat, *_ = _logging_victim(np.ones((2, 5)), [0.0, 0.0], (5,))
    attack = attacks.simba(basis="dct", max_queries=3)
    with pytest.raises(ValueError, match=r"SimBA-DCT needs images of shape \[h, w, c\]"):
        attack.batch(flat, attack.hparams(), jnp.zeros((2, 5)), y, jax.random.key(0))
