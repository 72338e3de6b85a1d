"""GazeGAN's training loss with the paper's ACS histogram term (issue 20, seed 000 item 4).

The ACS term is recomputed from the paper's definitions, transcribed in numpy: the histogram
``p_k = (1/S)·(Σ_{l∈[b_{k−1}, b_k)} (l − b_{k−1})/Δ + Σ_{l∈[b_k, b_{k+1}]} (b_{k+1} − l)/Δ)`` of
the min-max rescaled map, its min-max rescaling ``p̄``, and
``L_ACS = 2·Σ_k (p̄_k − q̄_k)² / (p̄_k + q̄_k + ε)`` (Che et al., TIP 2019).
"""

from __future__ import annotations

import jax
import numpy as np

from jaxadv.losses import GAZEGAN_LOSS
from jaxadv.training import resolve_saliency_loss, saliency_image_loss

EPS = 1e-7


def _rescale(v):
    return (v - v.min()) / (v.max() - v.min() + EPS)


def _paper_histogram(values, bins):
    """``p_k`` of the paper, bin by bin, with the intervals exactly as written."""
    delta = 1.0 / (bins - 1)
    b = np.arange(-1, bins + 1) * delta  # b[k + 1] is b_k; b_{−1} and b_N+1 pad the ends
    p = np.zeros(bins)
    for k in range(bins):
        lo, mid, hi = b[k], b[k + 1], b[k + 2]
        rising = values[(values >= lo) & (values < mid)]
        falling = values[(values >= mid) & (values <= hi)]
        p[k] = (np.sum(rising - lo) + np.sum(hi - falling)) / delta
    return p / values.size


def _paper_acs(prediction, reference, bins=100):
    p = _rescale(_paper_histogram(_rescale(prediction).ravel(), bins))
    q = _rescale(_paper_histogram(_rescale(reference).ravel(), bins))
    return 2.0 * np.sum((p - q) ** 2 / (p + q + EPS))


def _cc(a, b):
    return np.corrcoef(a.ravel(), b.ravel())[0, 1]


def test_gazegan_preset_adds_the_paper_acs_term_to_its_content_terms():
    assert resolve_saliency_loss("gazegan", "unit") == GAZEGAN_LOSS
    assert GAZEGAN_LOSS["acs"] == 1.0
    rng = np.random.default_rng(0)
    output = rng.uniform(0.05, 1.0, (6, 5)).astype(np.float32)
    density = rng.uniform(0.0, 1.0, (6, 5)).astype(np.float32) ** 3
    counts = (rng.uniform(size=(6, 5)) < 0.2).astype(np.float32)
    loss = jax.jit(lambda *a: saliency_image_loss(*a, kind="unit", weights=GAZEGAN_LOSS))
    got = float(loss(output, density, counts))  # one compilation, not op-by-op dispatch
    s, d = output.astype(np.float64), density.astype(np.float64)
    p, q = s / (s.sum() + EPS), d / (d.sum() + EPS)
    kl = np.sum(q * np.log(EPS + q / (p + EPS)))
    z = (s - s.mean()) / s.std()
    nss = np.sum(z * counts) / counts.sum()
    l1 = np.mean(np.abs(s - d / (d.max() + EPS)))
    acs = _paper_acs(s, d)
    assert acs > 0.1  # the two value distributions differ: the term is not vacuous
    expected = 10 * kl - 10 * _cc(s, d) - nss + l1 + acs
    np.testing.assert_allclose(got, expected, rtol=1e-4)
