"""jaxadv: adversarial attacks as pure, compiled JAX functions.

Attacks are written for ONE example and batched with ``jax.vmap``; step rules are optax
``GradientTransformation``s; victims are Flax models passed as pytrees. See README.md.
"""

__version__ = "0.1.0"
