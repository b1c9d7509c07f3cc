import numpy as np
import pytest
from PIL import Image

from service.errors import BackpropError
from service.images import load_digit, load_images, mnist_style


def test_a_drawn_digit_becomes_mnist_style(digit_png, real_digits):
    path, _ = digit_png
    pixels = load_digit(path).reshape(28, 28)
    assert pixels.shape == (28, 28) and 200 < pixels.max() <= 255
    assert pixels[0].max() == 0 and pixels[:, 0].max() == 0  # background dark, ink inside the frame
    rows, cols = np.nonzero(pixels > 50)
    assert rows.max() - rows.min() <= 20 and cols.max() - cols.min() <= 20  # fits the 20x20 box
    total = pixels.sum()
    cy = (pixels.sum(axis=1) * np.arange(28)).sum() / total
    cx = (pixels.sum(axis=0) * np.arange(28)).sum() / total
    assert abs(cy - 13.5) <= 1 and abs(cx - 13.5) <= 1  # centred by mass


def test_the_shipped_model_reads_the_drawn_digit(digit_png, shipped_store):
    from service.store import ModelStore

    path, label = digit_png
    network, _ = ModelStore(shipped_store).load()
    assert network.predict_proba(network.normalize(load_digit(path)[None])).argmax() == label


def test_transparent_png_is_flattened_onto_white(tmp_path):
    image = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    image.paste((0, 0, 0, 255), (15, 5, 25, 35))  # a black bar on transparency
    image.save(tmp_path / "t.png")
    pixels = load_digit(tmp_path / "t.png").reshape(28, 28)
    assert pixels.max() > 200 and pixels[0, 0] == 0


def test_blank_and_unreadable_inputs(tmp_path):
    assert not mnist_style(np.full((10, 10), 255.0)).any()
    (tmp_path / "x.png").write_bytes(b"not a png")
    with pytest.raises(BackpropError, match="x.png cannot be read as an image"):
        load_digit(tmp_path / "x.png")


def test_a_format_whose_decoder_is_not_installed_says_so_in_one_sentence(tmp_path, monkeypatch):
    from PIL import WebPImagePlugin

    monkeypatch.chdir(tmp_path)
    Image.new("L", (40, 40), 255).save("x.webp")
    # What Pillow's plugin sets when its extension is missing, as in the production image.
    monkeypatch.setattr(WebPImagePlugin, "SUPPORTED", False)
    with pytest.raises(BackpropError, match="^x.webp cannot be read as an image: WEBP support not"):
        load_digit("x.webp")


def test_a_phone_photo_passes_the_pixel_bound_and_a_png_bomb_does_not(tmp_path, digit_png, shipped_store):
    from service.errors import UnreadableImage
    from service.images import MAX_PIXELS, decode_digit
    from service.store import ModelStore

    path, label = digit_png
    drawn = Image.open(path).convert("L")
    # A 48-megapixel photo: JPEG decodes it at 1/8 scale, and that is what is counted.
    photo = tmp_path / "photo.jpg"
    drawn.resize((8000, 6000)).save(photo, quality=85)
    assert MAX_PIXELS < 8000 * 6000
    network, _ = ModelStore(shipped_store).load()
    assert network.predict_proba(network.normalize(decode_digit(photo)[None])).argmax() == label
    # A PNG has no reduced decoding: over the bound, it is refused before it is decoded.
    bomb = tmp_path / "bomb.png"
    Image.new("1", (5000, 5000), 1).save(bomb)
    with pytest.raises(UnreadableImage, match="5000x5000 pixels as decoded"):
        decode_digit(bomb)


def test_grey_levels_round_and_clip_from_either_scale():
    from service.images import grey_levels

    assert grey_levels(np.array([-3.0, 0.4, 127.5, 254.6, 300.0])).tolist() == [0, 0, 128, 255, 255]
    assert grey_levels(np.array([[0.0, 0.5, 1.0]]), unit=True).tolist() == [[0, 128, 255]]
    assert grey_levels(np.array([7], dtype=np.uint8)).dtype == np.uint8


def _npy(path, array) -> str:
    np.save(path, array)
    return str(path)


@pytest.mark.parametrize(
    "make,said",
    [
        (lambda p: p.write_bytes(b"garbage") and str(p), "not a .npy file"),
        (lambda p: p.write_bytes(b"") or str(p), "not a .npy file"),
        (lambda p: p.write_bytes(b"\x93NUMPY") and str(p), "cannot read as .npy"),  # cut short
        (lambda p: _npy(p, np.array([{"a": 1}], dtype=object)), "cannot read as .npy"),
        (lambda p: _npy(p, np.full((1, 784), "1")), "holds text, where pixels are real numbers"),
        (lambda p: _npy(p, np.zeros((1, 784), complex)), "holds complex numbers"),
        (lambda p: _npy(p, np.float64(3.0)), "expected 784 pixels per image, got 1"),
        (lambda p: _npy(p, np.zeros((0, 784))), "holds no images"),
        (lambda p: _npy(p, np.zeros((2, 3, 4))), "expected 784 pixels per image, got 12"),
        (lambda p: _npy(p, np.full((1, 784), np.nan)), "image 0, pixel 0 is nan"),
        (lambda p: _npy(p, np.full((3, 784), [[0.0], [7.0], [np.inf]])), "image 2, pixel 0 is inf"),
        (lambda p: _npy(p, np.eye(2, 784)[::-1] * 300), "image 0, pixel 1 is 300"),
        (lambda p: _npy(p, -np.eye(1, 784)), "image 0, pixel 0 is -1; pixels are 0-255 (or 0-1"),
    ],
    ids=[
        "text",
        "empty",
        "truncated",
        "objects",
        "strings",
        "complex",
        "scalar",
        "none",
        "shape",
        "nan",
        "inf",
        "over-255",
        "negative",
    ],
)
def test_npy_files_that_hold_no_pixels_are_refused_naming_the_problem(tmp_path, make, said):
    with pytest.raises(BackpropError) as refused:
        load_images(make(tmp_path / "images.npy"))
    assert said in refused.value.message


def test_npy_pixels_come_as_0_255_from_either_scale(tmp_path):
    ones = np.eye(2, 784)
    for stored in (
        ones,
        ones * 255,
        (ones * 255).astype(np.uint8),
        ones.astype(bool),
        ones.reshape(2, 28, 28),
    ):
        np.testing.assert_array_equal(load_images(_npy(tmp_path / "x.npy", stored)), ones * 255)
    assert load_images(_npy(tmp_path / "one.npy", ones[0].reshape(28, 28))).shape == (1, 784)
