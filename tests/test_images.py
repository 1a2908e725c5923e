import numpy as np
import pytest
from PIL import Image

from lisalib.images import ImageInputError, ensure_rgb


def test_rgb_passes_through_unchanged():
    image = Image.new("RGB", (5, 4), (1, 2, 3))
    assert ensure_rgb(image) is image


@pytest.mark.parametrize("mode", ["L", "P", "1"])
def test_grayscale_and_palette_are_converted(mode):
    out = ensure_rgb(Image.new(mode, (6, 3)))
    assert out.mode == "RGB" and out.size == (6, 3)


def test_alpha_is_composited_on_white():
    rgba = Image.new("RGBA", (2, 2), (255, 0, 0, 0))  # fully transparent red
    assert ensure_rgb(rgba).getpixel((0, 0)) == (255, 255, 255)
    opaque = Image.new("RGBA", (2, 2), (255, 0, 0, 255))
    assert ensure_rgb(opaque).getpixel((1, 1)) == (255, 0, 0)


@pytest.mark.parametrize("mode", ["I;16", "F", "CMYK", "I"])
def test_other_modes_are_rejected_with_a_message(mode):
    with pytest.raises(ImageInputError, match=f"mode '{mode}'"):
        ensure_rgb(Image.new(mode, (3, 3)))


def test_numpy_inputs():
    assert ensure_rgb(np.zeros((4, 5, 3), np.uint8)).size == (5, 4)
    assert ensure_rgb(np.zeros((4, 5), np.uint8)).mode == "RGB"
    assert ensure_rgb(np.zeros((4, 5, 4), np.uint8)).mode == "RGB"
    with pytest.raises(ImageInputError, match="uint8"):
        ensure_rgb(np.zeros((4, 5, 3), np.float32))
    with pytest.raises(ImageInputError, match="shape"):
        ensure_rgb(np.zeros((4, 5, 2), np.uint8))
    with pytest.raises(ImageInputError, match="PIL.Image or a numpy array"):
        ensure_rgb("image.png")
