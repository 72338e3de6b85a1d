"""The 19 transformations of Che et al.'s saliency robustness study (issue 18), each against a
reference: scipy (rotation, shear, filtering), Pillow's libjpeg (JPEG), MATLAB's published
definitions computed by hand on tiny images (fspecial/imadjust/imnoise/cropping), and the
ground-truth maps against the image they follow."""

from __future__ import annotations

import io

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxadv.image import (
    INVALID_AUGMENTATIONS,
    TRANSFORMATION_NAMES,
    VALID_AUGMENTATIONS,
    affine_warp,
    canny,
    jpeg,
    jpeg_quantization_tables,
    motion_blur,
    motion_kernel,
    rotate,
    transform_density,
    transform_fixations,
    transform_image,
    transform_points,
)

ndimage = pytest.importorskip("scipy.ndimage")


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(0)
    return rng.uniform(size=(12, 20, 3)).astype(np.float32)


def test_names_follow_the_paper():
    assert len(TRANSFORMATION_NAMES) == 19 and TRANSFORMATION_NAMES[0] == "Reference"
    assert set(VALID_AUGMENTATIONS) | set(INVALID_AUGMENTATIONS) <= set(TRANSFORMATION_NAMES)
    assert not set(VALID_AUGMENTATIONS) & set(INVALID_AUGMENTATIONS)
    assert len(VALID_AUGMENTATIONS) == len(INVALID_AUGMENTATIONS) == 7


def test_motion_kernels_are_matlab_lines():
    # fspecial('motion', 15, 0) is a 1x15 box, ('motion', 35, 90) a 35x1 box
    np.testing.assert_allclose(motion_kernel(15, 0), np.full((1, 15), 1 / 15), rtol=1e-12)
    np.testing.assert_allclose(motion_kernel(35, 90), np.full((35, 1), 1 / 35), rtol=1e-12)
    # a diagonal line: sums to 1, symmetric about its centre, heaviest along the diagonal
    k = motion_kernel(9, 45)
    assert k.shape == (7, 7) and abs(k.sum() - 1) < 1e-12
    np.testing.assert_allclose(k, k[::-1, ::-1], atol=1e-15)
    assert np.all(np.diag(k[::-1]) > 0) and k[0, 0] == 0


@pytest.mark.slow
def test_motion_blur_is_imfilter(image):
    # imfilter = correlation with zero borders: scipy.ndimage.correlate(mode="constant")
    for length, angle in [(15, 0.0), (9, 30.0), (4, 0.0)]:
        k = motion_kernel(length, angle)
        ours = np.asarray(motion_blur(jnp.asarray(image), length, angle))
        # even kernels: MATLAB's centre floor((k+1)/2) is scipy's origin -1 along that axis
        origin = [-1 if n % 2 == 0 else 0 for n in k.shape]
        ref = np.stack(
            [ndimage.correlate(image[..., c], k, mode="constant", origin=origin) for c in range(3)],
            -1,
        )
        np.testing.assert_allclose(ours, ref, atol=1e-6)


@pytest.mark.slow
def test_noise_is_imnoise(image):
    key = jax.random.key(3)
    out = np.asarray(transform_image("Noise2", jnp.asarray(image), key=key))
    noise = np.sqrt(0.2) * np.asarray(jax.random.normal(key, image.shape))
    np.testing.assert_allclose(out, np.clip(image + noise, 0, 1), atol=1e-6)
    same = transform_image("Noise2", jnp.asarray(image), key=key)
    np.testing.assert_array_equal(out, np.asarray(same))


def test_contrast_is_imadjust(image):
    np.testing.assert_allclose(transform_image("Contrast1", image), 0.3 + 0.4 * image, atol=1e-6)
    np.testing.assert_allclose(transform_image("Contrast2", image), 0.4 + 0.2 * image, atol=1e-6)


@pytest.mark.parametrize(
    "angle",
    [
        -45.0,
        pytest.param(-135.0, marks=pytest.mark.slow),
        pytest.param(30.0, marks=pytest.mark.slow),
    ],
)
def test_rotation_matches_scipy(image, angle):
    # scipy's positive angle turns counter-clockwise on screen, like MATLAB's imrotate
    ours = np.asarray(jax.jit(rotate, static_argnums=1)(jnp.asarray(image), angle))
    ref = ndimage.rotate(image, angle, reshape=True, order=1, mode="grid-constant")
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, atol=2e-6)


@pytest.mark.slow
def test_inversion_and_mirroring_are_exact_flips(image):
    x = jnp.asarray(image)
    np.testing.assert_array_equal(transform_image("Inversion", x), image[::-1, ::-1])
    np.testing.assert_array_equal(transform_image("Mirroring", x), image[:, ::-1])


@pytest.mark.slow
def test_shearing_matches_scipy_affine_transform(image):
    h, w = image.shape[:2]
    # affine2d [1 0 0; .5 1 0; 0 0 1]: u = x + y/2, so the canvas widens by h/2
    out = np.asarray(affine_warp(jnp.asarray(image), [[1, 0, 0], [0.5, 1, 0], [0, 0, 1]]))
    assert out.shape == (h, w + h // 2, 3)
    hh, ww = out.shape[:2]
    # output (row, col) -> input: col = u - (v - c_v)/2 - shift, row = v
    mat = np.array([[1.0, 0.0], [-0.5, 1.0]])
    c_in, c_out = np.array([(h - 1) / 2, (w - 1) / 2]), np.array([(hh - 1) / 2, (ww - 1) / 2])
    ref = np.stack(
        [
            ndimage.affine_transform(
                image[..., c],
                mat,
                offset=c_in - mat @ c_out,
                output_shape=(hh, ww),
                order=1,
                mode="grid-constant",
            )
            for c in range(3)
        ],
        -1,
    )
    np.testing.assert_allclose(out, ref, atol=2e-6)
    tall = affine_warp(jnp.asarray(image), [[1, 0.5, 0], [0, 1, 0], [0, 0, 1]])
    assert tall.shape == (h + w // 2, w, 3)


@pytest.mark.slow
def test_cropping_removes_the_scaled_band_and_centres_the_rest():
    x = np.random.default_rng(1).uniform(size=(54, 96, 1)).astype(np.float32)
    out = np.asarray(transform_image("Cropping1", x))  # 200/1920 of 96 = 10 columns
    np.testing.assert_array_equal(out[:, 5:91], x[:, 10:])
    assert not out[:, :5].any() and not out[:, 91:].any()
    out = np.asarray(transform_image("Cropping2", x))  # 200/1080 of 54 = 10 rows
    np.testing.assert_array_equal(out[5:49], x[10:])


@pytest.mark.slow
def test_loose_canvases_are_letterboxed(image):
    for name in ("Rotation1", "Shearing3"):
        out = np.asarray(transform_image(name, jnp.asarray(image)))
        assert out.shape == image.shape and out.min() >= 0 and out.max() <= 1
    # Rotation1 of a constant image: the turned rectangle is bright in the middle, 0 in corners
    ones = transform_image("Rotation1", jnp.ones((12, 20, 1)))
    assert float(ones[6, 10, 0]) == pytest.approx(1.0) and float(ones[0, 0, 0]) == 0.0


def test_geometric_ones_keep_a_white_image_in_range():
    # float32 bilinear weights can sum to 1 + 2e-7; the outputs are clipped back into [0, 1]
    white = jnp.ones((32, 32, 3))
    out = jax.jit(lambda x: transform_image("Rotation1", x))(white)  # eager costs seconds
    assert float(out.max()) <= 1.0 and float(out.min()) >= 0.0


def test_jpeg_tables_match_pillow():
    image_mod = pytest.importorskip("PIL.Image")
    for q in (0, 5, 50, 90):
        buf = io.BytesIO()
        image_mod.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buf, format="JPEG", quality=q)
        tables = image_mod.open(io.BytesIO(buf.getvalue())).quantization
        luma, chroma = jpeg_quantization_tables(q)
        np.testing.assert_array_equal(np.asarray(tables[0]).reshape(8, 8), luma)
        np.testing.assert_array_equal(np.asarray(tables[1]).reshape(8, 8), chroma)


@pytest.mark.slow
@pytest.mark.parametrize("shape", [(32, 48, 3), (21, 34, 3), (19, 26, 1)])
def test_jpeg1_jpeg2_match_pillow(shape):
    image_mod = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    base = np.stack([0.5 + 0.4 * np.sin(xx / 5 + yy / 7), 0.5 + 0.4 * np.cos(yy / 4), xx / 40], -1)
    x = np.clip(base[..., : shape[2]] + 0.05 * rng.standard_normal(shape), 0, 1).astype(np.float32)
    for name, q in (("JPEG1", 5), ("JPEG2", 0)):
        u8 = np.round(x * 255).astype(np.uint8)
        buf = io.BytesIO()
        image_mod.fromarray(u8[..., 0] if shape[2] == 1 else u8).save(buf, "JPEG", quality=q)
        ref = np.asarray(image_mod.open(io.BytesIO(buf.getvalue())), np.float32).reshape(shape)
        ours = np.asarray(transform_image(name, jnp.asarray(x))) * 255
        diff = np.abs(ours - ref)
        assert diff.max() <= 2.01 and diff.mean() < 0.1, (name, diff.max(), diff.mean())
        assert np.abs(ref - u8).mean() > 5  # the compression itself is far coarser


@pytest.mark.slow
def test_jpeg_differentiable_has_gradient_and_same_values():
    x = jnp.asarray(np.random.default_rng(4).uniform(size=(16, 16, 3)), jnp.float32)
    hard = jpeg(x, 50)
    soft = jpeg(x, 50, differentiable=True)
    # the cubic soft rounding moves each rounding by at most 1/8 of a level; through the chain
    # the image stays close on average
    assert float(jnp.abs(hard - soft).mean()) < 0.02
    g = jax.grad(lambda z: jnp.sum(jpeg(z, 50, differentiable=True)))(x)
    assert float(jnp.abs(g).sum()) > 0


@pytest.mark.slow
def test_canny_finds_the_outline_of_a_square():
    square = np.zeros((32, 32), np.float32)
    square[10:22, 8:24] = 1.0
    edges = np.asarray(canny(jnp.asarray(square)))
    ys, xs = np.nonzero(edges)
    # one closed contour hugging the step, nothing inside or far outside
    assert len(ys) > 40 and set(np.unique(edges)) == {0.0, 1.0}
    assert ys.min() >= 8 and ys.max() <= 23 and xs.min() >= 6 and xs.max() <= 25
    assert not edges[13:19, 11:21].any()
    assert edges[9:12, 15].sum() == 1 and edges[20:23, 15].sum() == 1  # thin: one pixel per side
    np.testing.assert_array_equal(edges, edges[::-1][::-1])
    # the transformation repeats it over the channels
    out = transform_image("Boundary", jnp.asarray(np.repeat(square[..., None], 3, -1)))
    np.testing.assert_array_equal(out[..., 1], edges)


@pytest.mark.slow
def test_canny_against_skimage_where_installed():
    feature = pytest.importorskip("skimage.feature")
    square = np.zeros((40, 40), np.float32)
    square[12:28, 10:30] = 1.0
    ours = np.asarray(canny(jnp.asarray(square), 0.3, 1.5)) > 0
    ref = feature.canny(square, sigma=1.5)
    # different smoothing kernels (MATLAB's vs a Gaussian filter): the contours lie within a pixel
    near_ref = ndimage.binary_dilation(ref, iterations=1)
    assert ours.sum() > 0 and (ours & near_ref).sum() >= 0.9 * ours.sum()


@pytest.mark.slow
def test_density_follows_the_image_and_keeps_its_mass():
    h, w = 18, 24
    rng = np.random.default_rng(5)
    density = rng.uniform(size=(h, w)).astype(np.float32)
    fix = np.zeros((h, w), np.float32)
    fix[4, 6], fix[9, 17], fix[15, 3] = 1, 2, 1
    for name in TRANSFORMATION_NAMES:
        moved = np.asarray(transform_density(name, jnp.asarray(density)))
        assert moved.shape == (h, w) and moved.sum() == pytest.approx(density.sum(), rel=1e-5)
        counts = np.asarray(transform_fixations(name, jnp.asarray(fix)))
        assert counts.sum() <= fix.sum() and (name.startswith("Cropping") or counts.sum() == 4)
    # a bright dot and its fixation land on the same pixel; the density peaks there too
    for name in (
        "Rotation1",
        "Rotation2",
        "Shearing1",
        "Shearing2",
        "Shearing3",
        "Mirroring",
        "Inversion",
        "Cropping1",
        "Cropping2",
    ):
        dot = np.zeros((h, w), np.float32)
        dot[9, 17] = 1.0
        img = np.asarray(transform_image(name, jnp.asarray(dot[..., None])))[..., 0]
        counts = np.asarray(transform_fixations(name, jnp.asarray(dot)))
        dens = np.asarray(transform_density(name, jnp.asarray(dot)))
        ((r, c),) = np.argwhere(counts > 0)
        x, y = transform_points(name, np.array([[17, 9]]), h, w)[0]
        assert abs(x - c) <= 0.5 and abs(y - r) <= 0.5, name
        # the interpolated dot peaks within a pixel of where its fixation went
        for peak in (np.argwhere(img == img.max())[0], np.argwhere(dens == dens.max())[0]):
            assert abs(peak[0] - r) <= 1 and abs(peak[1] - c) <= 1, name


@pytest.mark.slow
def test_photometric_ground_truth_is_unchanged():
    d = jnp.asarray(np.random.default_rng(6).uniform(size=(6, 7)), jnp.float32)
    for name in ("MotionBlur1", "Noise1", "JPEG2", "Contrast2", "Boundary", "Reference"):
        np.testing.assert_array_equal(transform_density(name, d), d)
        np.testing.assert_array_equal(transform_fixations(name, d), d)


@pytest.mark.slow
def test_jit_and_vmap_over_images(image):
    batch = jnp.stack([jnp.asarray(image), jnp.asarray(image[::-1])])
    for name in ("MotionBlur2", "Rotation2", "JPEG1", "Boundary"):
        f = jax.jit(lambda x, name=name: transform_image(name, x))
        batched = jax.vmap(f)(batch)
        for i in range(2):
            np.testing.assert_allclose(batched[i], transform_image(name, batch[i]), atol=1e-6)
    keys = jax.random.split(jax.random.key(0), 2)
    noisy = jax.vmap(lambda x, k: transform_image("Noise1", x, key=k))(batch, keys)
    np.testing.assert_allclose(noisy[1], transform_image("Noise1", batch[1], key=keys[1]))


@pytest.mark.slow
def test_gradients_flow_through_the_differentiable_ones(image):
    x = jnp.asarray(image)
    for name in ("MotionBlur1", "Contrast1", "Rotation1", "Shearing2", "Cropping1", "Mirroring"):
        g = jax.grad(lambda z, name=name: jnp.sum(transform_image(name, z) ** 2))(x)
        assert float(jnp.abs(g).sum()) > 0, name


def test_bad_input():
    x = jnp.zeros((8, 8, 3))
    with pytest.raises(ValueError, match="`name`.*Reference.*Cropping2.*'Blur'"):
        transform_image("Blur", x)
    with pytest.raises(ValueError, match=r"`image`.*\[h, w, c\].*\(2, 8, 8, 3\)"):
        transform_image("Mirroring", jnp.zeros((2, 8, 8, 3)))
    with pytest.raises(ValueError, match=r"`image`.*\[0.0, 1.0\].*2"):
        transform_image("Mirroring", x + 2.0)
    with pytest.raises(ValueError, match="`key`.*Noise1"):
        transform_image("Noise1", x)
    with pytest.raises(ValueError, match="`quality`.*\\[0, 100\\].*101"):
        jpeg(x, 101)
    with pytest.raises(ValueError, match="`quality`.*-1"):
        jpeg(x, -1)
    with pytest.raises(ValueError, match="too small for Cropping1"):
        transform_image("Cropping1", jnp.zeros((4, 1, 3)))
    from jaxadv.image import crop_band

    with pytest.raises(ValueError, match=r"`band`.*\[0, 8\).*9"):
        crop_band(x, "left", 9)
    with pytest.raises(ValueError, match="`density`.*rank 2"):
        transform_density("Rotation1", x)
