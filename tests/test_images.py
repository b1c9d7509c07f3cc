import numpy as np
import pytest
from PIL import Image

from service.errors import BackpropError
from service.images import load_digit, mnist_style


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
