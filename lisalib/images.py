"""Input checking for images: every model entry point funnels through :func:`ensure_rgb`.

Vision processors silently do odd things with grayscale, alpha or 16-bit images (wrong channel count
deep inside a convolution). Converting the harmless cases and rejecting the rest here gives the user
one clear message instead of a torch traceback.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

CONVERTIBLE_MODES = {"RGB", "L", "LA", "RGBA", "P", "PA", "1"}


class ImageInputError(ValueError):
    """Raised for an image that cannot be turned into 8-bit RGB without guessing."""


def ensure_rgb(image: Image.Image | np.ndarray) -> Image.Image:
    """Return ``image`` as an 8-bit RGB PIL image.

    Grayscale, palette and alpha images are converted (alpha is composited on white, as a viewer would
    show it). Anything else -- 16-bit or float images, CMYK, arrays of the wrong shape -- is rejected
    with a message that says what was received.
    """
    if isinstance(image, np.ndarray):
        image = _array_to_pil(image)
    if not isinstance(image, Image.Image):
        raise ImageInputError(f"expected a PIL.Image or a numpy array, got {type(image).__name__}")
    if image.mode not in CONVERTIBLE_MODES:
        raise ImageInputError(
            f"image mode {image.mode!r} is not supported: give an 8-bit RGB, grayscale (L) or RGBA image "
            f"(for example Image.open(path).convert('RGB') after checking it looks right)"
        )
    if image.width < 1 or image.height < 1:
        raise ImageInputError(f"image has no pixels ({image.width}x{image.height})")
    if image.mode == "RGB":
        return image
    if image.mode in {"RGBA", "LA", "PA"} or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _array_to_pil(array: np.ndarray) -> Image.Image:
    if array.dtype != np.uint8:
        raise ImageInputError(
            f"numpy images must be uint8 with values 0..255, got dtype {array.dtype}; "
            "scale and convert first, e.g. (img * 255).round().astype(np.uint8)"
        )
    if array.ndim == 2:
        return Image.fromarray(array, mode="L")
    if array.ndim == 3 and array.shape[2] in (3, 4):
        return Image.fromarray(array, mode="RGB" if array.shape[2] == 3 else "RGBA")
    if array.ndim == 3 and array.shape[2] == 1:
        return Image.fromarray(array[:, :, 0], mode="L")
    raise ImageInputError(f"numpy image must be HxW, HxWx1, HxWx3 or HxWx4; got shape {tuple(array.shape)}")
