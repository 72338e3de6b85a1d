"""Gaussian-noise augmentation: how the base classifiers of randomized smoothing are trained."""

from __future__ import annotations

import dataclasses

import jax

from jaxadv import _checks


@dataclasses.dataclass(frozen=True)
class gaussian_noise:
    """Augmentation: add i.i.d. Gaussian noise of standard deviation ``sigma`` to every pixel.

    ``gaussian_noise(σ)`` is a function ``(key, images[b, ...]) -> images`` for
    ``train_classifier(augment=)``. Randomized smoothing certifies the smoothed classifier of a
    base classifier; the certificate is only useful when the base classifier is accurate under
    the smoothing noise, so it is trained under that noise (Cohen, Rosenfeld & Kolter 2019,
    "Certified adversarial robustness via randomized smoothing", ICML, section 4: train with the
    σ you certify with). As in their code, the noisy images are not clipped to the pixel bounds.
    It compares equal to another ``gaussian_noise`` of the same σ, so repeated trainings reuse
    one compiled step.

    Attributes:
      sigma: the noise's standard deviation, > 0.
    """

    sigma: float

    def __post_init__(self):
        _checks.check_positive("sigma", self.sigma)
        object.__setattr__(self, "sigma", float(self.sigma))

    def __call__(self, key: jax.Array, images: jax.Array) -> jax.Array:
        noise = jax.random.normal(key, images.shape, images.dtype)
        return images + self.sigma * noise
