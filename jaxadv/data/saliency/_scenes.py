"""The embedded saliency data: generated scenes whose fixation density is known exactly.

Why generated: no eye-tracking data can be downloaded here, and a saliency model trained on it
must learn something real. In these scenes the density depends on what the image shows (which
objects stand out, and by how much), not only on position, so a centre-bias map is clearly
beaten by the truth; and because the density is known, fixations are exact samples from it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jaxadv import _checks
from jaxadv.data._texture import SmoothNoise
from jaxadv.data._generated import check_seed
from jaxadv.data.saliency._record import SaliencyDataset, check_size

# The generating process; every constant is part of the documented definition.
_GRID = 3  # objects occupy distinct cells of a 3×3 grid, so they never overlap
_MAX_OBJECTS = 4
_RADIUS = (0.2, 0.42)  # object radius, as a fraction of the smaller cell side
_CONTRAST = (0.05, 0.6)  # RMS colour distance of an object from the background mean
_TEXTURE_GAIN = 1.5  # a striped object attracts this much more gaze than a plain one
_STRIPE_PERIOD = (3.0, 6.0)  # pixels
_SPREAD = 0.6  # fixations scatter around an object centre with std = this × its radius
_CENTER_BIAS_WEIGHT = 0.25
_UNIFORM_WEIGHT = 0.05
_CENTER_SIGMA = 0.25  # of the image height and width
_BACKGROUND_MEAN = (0.3, 0.7)
_BACKGROUND_SMOOTH = 0.08  # amplitude of the smooth background noise
_BACKGROUND_KNOTS = 5  # the smooth noise is bilinear over a 5×5 grid of random values
_GRAIN = 0.02  # std of per-pixel noise, objects included
_SPLITS = {"train": (1, 1000), "test": (2, 200)}  # RNG stream, default size
_MIN_SIDE = 12
_TRANSFORMED_STREAM = 19  # the generator word of a transformed scene's fixations


def make_scenes(
    n: int,
    *,
    size: tuple[int, int] = (64, 64),
    seed: int = 0,
    fixations_per_image: int = 32,
    transformation: str | None = None,
    off_center: bool = False,
) -> SaliencyDataset:
    """Generates ``n`` scenes with a known fixation density and fixations drawn from it.

    The process, per scene (all draws uniform unless said otherwise):

    * **Background**: a mean colour in ``[0.3, 0.7]³``, plus smooth noise (bilinear over a 5×5
      grid of normal values, amplitude 0.08 per channel) — texture with little contrast.
    * **Objects**: 1 to 4, each in its own cell of a 3×3 grid (none overlap; any cell, corners
      included, so position alone does not locate them). A disc or a square of radius (half
      side) 0.2–0.42 of the cell side. Its colour lies at RMS distance ``c`` in ``[0.05, 0.6]``
      from the background mean, in a random direction of RGB space (clipped to ``[0, 1]``; the
      clipped distance is the contrast ``c`` used below). Half the objects are striped: stripes
      of period 3–6 px at a random angle alternate the colour with its mirror image about the
      background mean, so they differ from the background in texture, not in mean colour.
    * **Grain**: normal noise of std 0.02 on every pixel; the image is clipped to ``[0, 1]``.
    * **Fixation density** (the returned map), a mixture normalised to sum 1::

          p  ∝  Σ_j w_j · N_j  +  0.25 · C  +  0.05 · U

      where ``N_j`` is an isotropic Gaussian on object ``j``'s centre with std 0.6 × its radius,
      ``w_j = c_j`` (× 1.5 when striped), ``C`` is the centre bias (``scene_center_bias``) and
      ``U`` uniform, each component summing to 1. So the mass on an object grows with its
      contrast and texture; a scene of faint objects is viewed mostly by the centre bias.
    * **Fixations**: ``fixations_per_image`` independent draws of a pixel from ``p`` (so
      repeats happen; think of them as a few observers' fixations pooled).

    Scene ``i`` is drawn from its own generator, ``np.random.default_rng([seed, i])``, so the
    first scenes do not depend on ``n`` and the result depends only on the arguments.

    **Transformed scenes** (``transformation``, one of Che et al.'s 19 in
    :data:`jaxadv.image.TRANSFORMATION_NAMES`): the same scenes as shown after the
    transformation, with the density a viewer of the transformed image has in this model. The
    image goes through :func:`jaxadv.image.transform_image`; the objects' component ``Σ w_j N_j``
    moves with it (:func:`jaxadv.image.transform_density`: geometric transformations carry it,
    photometric ones leave it, as the study found gaze tolerates blur, noise and compression
    artefacts); the centre bias and the uniform term stay where the viewer's are, on the
    screen's centre. So a rotation or a crop moves the objects' fixations away from the centre
    bias, which is what makes mapping the reference density onto a transformed image a wrong
    label (the paper's label-damaging augmentations). Fixations are drawn afresh from the new
    density (generator ``[seed, i, 19]``) and the object masks move like fixation maps.

    Args:
      n: number of scenes.
      size: ``(h, w)``, each at least 12.
      seed: a non-negative integer.
      fixations_per_image: number of fixations drawn per scene.
      transformation: None (the scenes as generated) or a transformation's name.
      off_center: scenes where the centre bias does not predict fixations: objects only in the
        8 outer cells of the grid (never the centre one) and no centre-bias component in the
        density (``p ∝ Σ_j w_j · N_j + 0.05 · U``); the images are drawn as otherwise.

    Returns:
      A stacked ``SaliencyDataset`` named ``"scenes"``: ``float32[n, h, w, 3]`` images in
      ``[0, 1]``, the densities as ``maps`` (``float32[n, h, w]``, each summing to 1),
      ``int32[fixations_per_image, 2]`` fixations, ``object_masks`` (``bool[n, h, w]``) and names
      ``"scene/000000"``, ….

    Raises:
      ValueError: for a bad argument.
    """
    return _generate(n, size, seed, (), fixations_per_image, "scenes", "scene", transformation,
                     off_center)  # fmt: skip


def load_scenes(
    split: str = "train",
    n: int | None = None,
    *,
    size: tuple[int, int] = (64, 64),
    seed: int = 0,
    fixations_per_image: int = 32,
    transformation: str | None = None,
    off_center: bool = False,
) -> SaliencyDataset:
    """A deterministic train or test split of the generated scenes (see ``make_scenes``).

    The two splits come from disjoint random streams: scene ``i`` of a split is drawn from
    ``np.random.default_rng([seed, stream, i])`` with stream 1 for ``"train"`` and 2 for
    ``"test"``. So a split never repeats a scene of the other, and its first scenes do not
    depend on ``n``.

    Args:
      split: ``"train"`` or ``"test"``.
      n: number of scenes; ``None`` gives 1000 for train and 200 for test.
      size: ``(h, w)``, each at least 12.
      seed: a non-negative integer.
      fixations_per_image: number of fixations drawn per scene.
      transformation: None, or a transformation's name: the split as seen after it
        (``make_scenes`` says how the density follows); the name gains ``"-<name>"``.
      off_center: objects off the centre cell and no centre bias in the density (see
        ``make_scenes``); the name gains ``"-off-center"``.

    Returns:
      A stacked ``SaliencyDataset`` named ``"scenes-train"`` or ``"scenes-test"`` with names
      ``"train/000000"``, … (fields as in ``make_scenes``).
    """
    _checks.check_choice("split", split, tuple(_SPLITS))
    stream, default_n = _SPLITS[split]
    n = default_n if n is None else n
    name = f"scenes-{split}" + ("-off-center" if off_center else "")
    name += "" if transformation is None else f"-{transformation}"
    return _generate(n, size, seed, (stream,), fixations_per_image, name, split, transformation,
                     off_center)  # fmt: skip


def scene_center_bias(size: tuple[int, int] = (64, 64)) -> np.ndarray:
    """The centre-bias component of the scenes' density: ``float32[h, w]`` summing to 1.

    An axis-aligned Gaussian on the image centre with std 0.25 × the height (vertically) and
    0.25 × the width (horizontally), evaluated at pixel centres. As a prediction it is the
    content-blind baseline a saliency model must beat.

    Args:
      size: ``(h, w)`` of the map.

    Returns:
      ``float32[h, w]``, non-negative, summing to 1.
    """
    h, w = check_size(size)
    return _center_bias(h, w).astype(np.float32)


def _draw_fixations(rng: np.random.Generator, density: np.ndarray, k: int) -> np.ndarray:
    h, w = density.shape
    flat = rng.choice(h * w, size=int(k), p=density.ravel())
    return np.stack([flat % w, flat // w], axis=1).astype(np.int32)


def _transform(name, images, objects, masks, canvas, words, k, off_center):
    """The scenes as seen after transformation ``name``: images transformed (Noise keyed by
    ``(words, i)``), the object component of the density moved with the image, the centre bias
    and the uniform term left where the viewer's are (the screen's centre), the object masks
    moved like fixation maps (a pixel stays an object pixel where any object pixel lands), and
    fixations drawn afresh from the new density (a generator of its own per scene, so that the
    untransformed scenes keep their fixations)."""
    import jax
    import jax.numpy as jnp

    from jaxadv.image import transform_density, transform_fixations, transform_image

    seed = np.random.default_rng([*words, _TRANSFORMED_STREAM]).integers(2**31)
    keys = jax.random.split(jax.random.key(seed), len(images))
    moved_images = jax.jit(jax.vmap(lambda x, key: transform_image(name, x, key=key)))(
        jnp.asarray(images), keys)
    moved_objects = jax.jit(jax.vmap(lambda o: transform_density(name, o)))(
        jnp.asarray(objects, jnp.float32))
    moved_masks = jax.jit(jax.vmap(lambda m: transform_fixations(name, m)))(
        jnp.asarray(masks, jnp.float32))
    maps = np.empty(objects.shape, np.float32)
    fixations = []
    for i, moved in enumerate(np.asarray(moved_objects, np.float64)):
        density = canvas.density(np.maximum(moved, 0.0), off_center)
        maps[i] = density
        rng = np.random.default_rng([*words, i, _TRANSFORMED_STREAM])
        fixations.append(_draw_fixations(rng, density, k))
    return np.asarray(moved_images), maps, np.asarray(moved_masks) > 0, fixations


def _generate(
    n: Any, size: Any, seed: Any, stream: tuple[int, ...], k: Any, name: str, prefix: str,
    transformation: str | None = None,
    off_center: bool = False,
) -> SaliencyDataset:
    _checks.check_positive_int("n", n)
    _checks.check_positive_int("fixations_per_image", k)
    if transformation is not None:
        from jaxadv.image import TRANSFORMATION_NAMES

        _checks.check_choice("transformation", transformation, TRANSFORMATION_NAMES)
    check_seed(seed)
    if not isinstance(off_center, (bool, np.bool_)):
        raise ValueError(f"`off_center` must be True or False; got {off_center!r}.")
    off_center = bool(off_center)
    h, w = check_size(size)
    if min(h, w) < _MIN_SIDE:
        raise ValueError(f"`size` must be at least {_MIN_SIDE} on each side; got {(h, w)}.")
    canvas = _Canvas(h, w)
    images = np.empty((n, h, w, 3), np.float32)
    maps = np.empty((n, h, w), np.float32)
    masks = np.empty((n, h, w), bool)
    fixations = []
    objects_of = np.empty((n, h, w)) if transformation is not None else None
    for i in range(n):
        rng = np.random.default_rng([int(seed), *stream, i])
        image, density, mask, objects = canvas.scene(rng, off_center)
        if transformation is not None:  # the fixations come from the transformed scene below
            images[i], objects_of[i], masks[i] = image, objects, mask
            continue
        images[i], maps[i], masks[i] = image, density, mask
        fixations.append(_draw_fixations(rng, density, k))
    if transformation is not None:
        images, maps, masks, fixations = _transform(
            transformation, images, objects_of, masks, canvas, (int(seed), *stream), k, off_center
        )
    return SaliencyDataset(
        images=images,
        maps=maps,
        fixations=tuple(fixations),
        names=tuple(f"{prefix}/{i:06d}" for i in range(n)),
        name=name,
        object_masks=masks,
    )


class _Canvas:
    """What all scenes of one size share: pixel-centre coordinates, background noise, centre bias."""

    def __init__(self, h: int, w: int) -> None:
        self.h, self.w = h, w
        self.y = np.arange(h)[:, None] + 0.5
        self.x = np.arange(w)[None, :] + 0.5
        self.noise = SmoothNoise(h, w, (_BACKGROUND_KNOTS, _BACKGROUND_KNOTS))
        self.center_bias = _center_bias(h, w)

    def scene(self, rng: np.random.Generator, off_center: bool = False) -> tuple[np.ndarray, ...]:
        """``(image f32[h, w, 3], density f64[h, w], object mask bool[h, w], objects f64[h, w])``
        of one scene (``objects``: the density's object component, unnormalised);
        ``off_center``: no object in the centre cell and no centre-bias component."""
        h, w = self.h, self.w
        mean = rng.uniform(*_BACKGROUND_MEAN, size=3)
        image = mean + _BACKGROUND_SMOOTH * self.noise.draw(rng)
        mask = np.zeros((h, w), bool)

        cell_h, cell_w = h / _GRID, w / _GRID
        count = rng.integers(1, _MAX_OBJECTS + 1)
        if off_center:
            outer = np.delete(np.arange(_GRID * _GRID), (_GRID * _GRID) // 2)
            cells = rng.permutation(outer)[:count]
        else:
            cells = rng.permutation(_GRID * _GRID)[:count]
        # The density is summed term by term in this order (its bits are part of the data);
        # the objects' component alone is kept too, for transformed scenes.
        density = self._context(off_center)
        objects = np.zeros((h, w))
        for cell in cells:
            radius = rng.uniform(*_RADIUS) * min(cell_h, cell_w)
            # The centre is placed so that the whole object stays inside its cell.
            cy = (cell // _GRID) * cell_h + radius + rng.random() * (cell_h - 2 * radius)
            cx = (cell % _GRID) * cell_w + radius + rng.random() * (cell_w - 2 * radius)
            dy, dx = self.y - cy, self.x - cx
            if rng.random() < 0.5:
                inside = dx**2 + dy**2 <= radius**2
            else:
                inside = np.maximum(np.abs(dx), np.abs(dy)) <= radius
            direction = rng.normal(size=3)
            direction /= np.linalg.norm(direction)
            target = rng.uniform(*_CONTRAST) * np.sqrt(3.0)
            colour = np.clip(mean + target * direction, 0.0, 1.0)
            contrast = np.linalg.norm(colour - mean) / np.sqrt(3.0)
            striped = rng.random() < 0.5
            if striped:
                angle = rng.uniform(0.0, np.pi)
                period = rng.uniform(*_STRIPE_PERIOD)
                phase = (dx * np.cos(angle) + dy * np.sin(angle)) / period
                mirror = np.clip(2.0 * mean - colour, 0.0, 1.0)
                paint = np.where((np.floor(phase) % 2 == 0)[..., None], colour, mirror)
            else:
                paint = np.broadcast_to(colour, (h, w, 3))
            image = np.where(inside[..., None], paint, image)
            mask |= inside

            spread = np.exp(-(dx**2 + dy**2) / (2.0 * (_SPREAD * radius) ** 2))
            weight = contrast * (_TEXTURE_GAIN if striped else 1.0)
            density = density + weight * spread / spread.sum()
            objects = objects + weight * spread / spread.sum()

        image = image + rng.normal(scale=_GRAIN, size=(h, w, 3))
        image = np.clip(image, 0.0, 1.0).astype(np.float32)
        return image, density / density.sum(), mask, objects

    def _context(self, off_center: bool) -> np.ndarray:
        """The density's terms that do not depend on the objects: the centre bias (unless
        ``off_center``) and the uniform term."""
        uniform = _UNIFORM_WEIGHT / (self.h * self.w)
        if off_center:
            return np.full((self.h, self.w), uniform)
        return _CENTER_BIAS_WEIGHT * self.center_bias + uniform

    def density(self, objects: np.ndarray, off_center: bool = False) -> np.ndarray:
        """The fixation density of a scene whose object component is ``objects`` (unnormalised,
        summing to Σ w_j): the mixture with the context terms, summing to 1."""
        density = self._context(off_center) + objects
        return density / density.sum()


def _center_bias(h: int, w: int) -> np.ndarray:
    y = (np.arange(h)[:, None] + 0.5 - h / 2) / (_CENTER_SIGMA * h)
    x = (np.arange(w)[None, :] + 0.5 - w / 2) / (_CENTER_SIGMA * w)
    bias = np.exp(-0.5 * (x**2 + y**2))
    return bias / bias.sum()

