r"""Why the digits patch of ``lgv_universal_patch.py`` fails: bug or victim/size?

Against the default C&W digits net, towards class 0: (a) the gradient reaching the patch at its
initialisation (norm, share of nonzero pixels, finite) and a finite-difference check of one
pixel; (b) patches of side 8, 12 and 16 trained by ``training.adversarial_patch`` (random
placement, no scale/rotation) and by the same Adam loop at ONE fixed placement (the image
centre), each scored on held-out test digits of other classes (random placement for the first,
the fixed placement for the second).

Command: nice -n 10 python experiments/patch_probe.py [--train 512 --epochs 5 --sides 8 12 16]
"""

from __future__ import annotations

import argparse
import sys
import time

import jax
import jax.numpy as jnp
import optax

from jaxadv import image, metrics, training
from jaxadv.data import load_digits


def _loss(victim, patch, x, target, center):
    pasted = jax.vmap(lambda xi: image.apply_patch(xi, patch, center=center))(x)
    logits = victim.batch(pasted)
    labels = jnp.full(x.shape[:1], target)
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean(), logits


def fixed_patch(victim, images, side, target, epochs, lr=0.05, batch=64):
    """The Adam loop of adversarial_patch at one fixed placement (the image centre)."""
    h, w = images.shape[1:3]
    center = jnp.asarray([(h - 1) / 2.0, (w - 1) / 2.0])
    patch = jax.random.uniform(jax.random.key(0), (side, side, 1))
    tx = optax.adam(lr)
    state = tx.init(patch)

    @jax.jit
    def step(patch, state, x):
        (loss, _), g = jax.value_and_grad(_loss, 1, has_aux=True)(victim, patch, x, target, center)
        upd, state = tx.update(g, state, patch)
        return jnp.clip(optax.apply_updates(patch, upd), 0.0, 1.0), state, loss

    losses = []
    for _ in range(epochs):
        for i in range(images.shape[0] // batch):
            patch, state, loss = step(patch, state, images[i * batch:(i + 1) * batch])
        losses.append(float(loss))
    return patch, center, losses


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--train", type=int, default=512)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--sides", type=int, nargs="+", default=[8, 12, 16])
    args = p.parse_args(argv)
    data = load_digits(size=28)
    victim, _ = training.default_victim("cw", progress=False)
    train = jnp.asarray(data.train_images[: args.train])
    keep = data.test_labels != 0
    test = jnp.asarray(data.test_images[keep])
    target = 0
    # (a) the gradient at the initialisation, against a central finite difference.
    patch0 = jax.random.uniform(jax.random.key(0), (8, 8, 1))
    center = jnp.asarray([13.5, 13.5])
    f = lambda q: _loss(victim, q, train[:64], target, center)[0]  # noqa: E731
    g = jax.grad(f)(patch0)
    e = jnp.zeros_like(patch0).at[3, 4, 0].set(1e-2)
    fd = (f(patch0 + e) - f(patch0 - e)) / 2e-2
    print(f"grad at init: |g|={float(jnp.linalg.norm(g)):.4g}, nonzero "
          f"{float(jnp.mean(g != 0)):.2f}, finite {bool(jnp.all(jnp.isfinite(g)))}; "
          f"dL/dp[3,4]={float(g[3, 4, 0]):.5g} vs finite difference {float(fd):.5g}; "
          f"loss {float(f(patch0)):.3f}")
    print("| side | % of image | placement | final train CE | held-out success | seconds |")
    print("|---|---|---|---|---|---|")
    for side in args.sides:
        start = time.perf_counter()
        out = training.adversarial_patch(victim, train, target=target, key=jax.random.key(0),
                                         patch_shape=(side, side), epochs=args.epochs,
                                         progress=False)
        rate = metrics.patch_success(victim, out.patch, test, target, jax.random.key(1))
        print(f"| {side} | {side * side / 784:.0%} | random | {out.losses[-1]:.2f} | "
              f"{rate:.1%} | {time.perf_counter() - start:.0f} |", flush=True)
        start = time.perf_counter()
        patch, c, losses = fixed_patch(victim, train, side, target, args.epochs)
        _, logits = _loss(victim, patch, test, target, c)
        rate = float(jnp.mean(jnp.argmax(logits, -1) == target))
        print(f"| {side} | {side * side / 784:.0%} | fixed (centre) | {losses[-1]:.2f} | "
              f"{rate:.1%} | {time.perf_counter() - start:.0f} |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
