import numpy as np
import pytest

from service.nn.augment import Augmentation, augment, bilinear_sample, elastic_field, random_shift

BACKGROUND = -0.5
EVERYTHING = Augmentation(shift=2, rotate=15, scale=0.15, shear=15, elastic_alpha=34, elastic_sigma=4)


def _digits(n: int, seed: int = 0) -> np.ndarray:
    """(n, 784) float32 on the background, each with a bright random blob near the centre."""
    rng = np.random.default_rng(seed)
    images = np.full((n, 28, 28), BACKGROUND, dtype=np.float32)
    for image in images:
        top, left = rng.integers(6, 14, size=2)
        image[top : top + 8, left : left + 6] = rng.uniform(1.0, 2.5, size=(8, 6))
    return images.reshape(n, -1)


@pytest.mark.parametrize(
    "augmentation",
    [
        Augmentation(),
        Augmentation(rotate=0.0, scale=0.0, shear=0.0, elastic_alpha=0.0, elastic_sigma=9.0),
    ],
)
def test_every_strength_at_zero_leaves_images_unchanged(augmentation):
    batch = _digits(20)
    out = augment(batch, np.random.default_rng(0), augmentation, background=BACKGROUND)
    np.testing.assert_array_equal(out, batch)
    assert out is not batch


@pytest.mark.parametrize(
    "augmentation",
    [
        Augmentation(shift=2),
        Augmentation(rotate=20),
        Augmentation(scale=0.2),
        Augmentation(shear=20),
        Augmentation(elastic_alpha=34, elastic_sigma=4),
        EVERYTHING,
    ],
)
def test_each_distortion_keeps_shape_dtype_range_and_input_and_changes_images(augmentation):
    batch = _digits(64)
    before = batch.copy()
    out = augment(batch, np.random.default_rng(1), augmentation, background=BACKGROUND)
    assert out.shape == batch.shape and out.dtype == batch.dtype
    # Bilinear resampling mixes neighbours, so values stay within the image's own range.
    assert out.min() >= BACKGROUND - 1e-6 and out.max() <= batch.max() + 1e-6
    np.testing.assert_array_equal(batch, before)
    changed = np.any(out != batch, axis=1)
    assert changed.mean() > 0.8
    # Digits are moved and bent, not erased: the ink stays about the same.
    ink = np.clip(out - BACKGROUND, 0, None).sum(1) / np.clip(batch - BACKGROUND, 0, None).sum(1)
    assert 0.6 < np.median(ink) < 1.5


def test_the_same_seed_gives_the_same_distortions_and_another_seed_others():
    batch = _digits(16)
    a = augment(batch, np.random.default_rng(7), EVERYTHING, background=BACKGROUND)
    b = augment(batch, np.random.default_rng(7), EVERYTHING, background=BACKGROUND)
    c = augment(batch, np.random.default_rng(8), EVERYTHING, background=BACKGROUND)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_rotation_turns_a_bar_by_at_most_the_angle():
    image = np.full((28, 28), BACKGROUND, dtype=np.float32)
    image[4:24, 13:15] = 1.0  # a vertical bar through the centre
    batch = np.repeat(image.reshape(1, -1), 200, axis=0)
    out = augment(batch, np.random.default_rng(0), Augmentation(rotate=30), background=BACKGROUND)
    angles = []
    for img in out.reshape(200, 28, 28):
        ys, xs = np.nonzero(img > 0.25)
        slope = np.polyfit(ys, xs, 1)[0]
        angles.append(np.degrees(np.arctan(slope)))
    angles = np.abs(angles)
    assert angles.max() < 32 and angles.max() > 20 and np.median(angles) > 5


def test_bilinear_sampling_matches_scipy_with_the_background_beyond_the_edges():
    ndimage = pytest.importorskip("scipy.ndimage")  # the reference: in the dev extra only
    rng = np.random.default_rng(2)
    images = rng.standard_normal((5, 28, 28)).astype(np.float32)
    source = rng.uniform(-4, 32, size=(2, 5, 784)).astype(np.float32)
    out = bilinear_sample(images, source.copy(), BACKGROUND)
    for image, coordinates, sampled in zip(images, source.transpose(1, 0, 2), out, strict=True):
        expected = ndimage.map_coordinates(
            image.astype(np.float64), coordinates, order=1, mode="grid-constant", cval=BACKGROUND
        )
        np.testing.assert_allclose(sampled, expected, atol=1e-5)


def test_elastic_field_is_uniform_noise_smoothed_by_scipy_s_gaussian():
    ndimage = pytest.importorskip("scipy.ndimage")  # the reference: in the dev extra only
    field = elastic_field(3, 28, np.random.default_rng(5), alpha=34.0, sigma=4.0)
    noise = np.random.default_rng(5).random((2 * 3 * 28, 28), dtype=np.float32) * 68 - 34
    expected = np.stack(
        [ndimage.gaussian_filter(n, 4.0, mode="constant", truncate=4.0) for n in noise.reshape(6, 28, 28)]
    )
    assert field.shape == (2, 3, 28, 28)
    np.testing.assert_allclose(field.reshape(6, 28, 28), expected, atol=1e-4)
    # Simard's setting moves pixels by about a pixel or two, not across the image.
    assert 0.5 < np.sqrt((field**2).mean()) < 3


def test_augmentation_needs_square_images():
    with pytest.raises(ValueError, match="square"):
        augment(np.zeros((2, 10)), np.random.default_rng(0), EVERYTHING, background=0.0)


def test_random_shift_moves_whole_images_and_fills_background():
    rng = np.random.default_rng(0)
    image = np.zeros((1, 28, 28), dtype=np.float32)
    image[0, 10:14, 10:14] = 1.0
    batch = np.repeat(image.reshape(1, -1), 200, axis=0)
    shifted = random_shift(batch, rng, max_shift=2, background=BACKGROUND).reshape(200, 28, 28)
    seen = set()
    for img in shifted:
        ys, xs = np.nonzero(img == 1.0)
        dy, dx = ys.min() - 10, xs.min() - 10
        assert len(ys) == 16 and abs(dy) <= 2 and abs(dx) <= 2
        uncovered = 28 * abs(dy) + 28 * abs(dx) - abs(dy) * abs(dx)
        assert np.count_nonzero(img == BACKGROUND) == uncovered
        assert np.count_nonzero(img == 0.0) == 28 * 28 - 16 - uncovered
        seen.add((int(dy), int(dx)))
    assert len(seen) == 25  # every offset in [-2, 2]^2 occurs
    np.testing.assert_array_equal(batch.reshape(200, 28, 28)[0], image[0])  # input untouched
