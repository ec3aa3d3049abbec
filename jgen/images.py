"""Images at the edges: float [-1, 1] arrays <-> uint8, sample grids as PNG, input images and masks."""

import io
import math
import os

import numpy as np
from PIL import Image, UnidentifiedImageError

from jgen import files
from jgen.errors import JgenError


def to_uint8(images) -> np.ndarray:
    """[N, H, W, C] in [-1, 1] -> uint8 [N, H, W, C]."""
    return np.clip(np.round((np.asarray(images, np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def from_uint8(images):
    """uint8 [N, H, W, C] (NumPy or a jax.Array) -> float32 in [-1, 1]: the inverse of to_uint8."""
    return images.astype(np.float32) / 127.5 - 1.0


def grid(images_uint8: np.ndarray, pad: int = 2, cols: int = 0) -> np.ndarray:
    """Tiles [N, H, W, C] uint8 row by row into one [rows*(H+pad)+pad, cols*(W+pad)+pad, C] image;
    `cols` images a row (default: near-square)."""
    n, h, w, c = images_uint8.shape
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    out = np.zeros((rows * (h + pad) + pad, cols * (w + pad) + pad, c), np.uint8)
    for i, im in enumerate(images_uint8):
        r, q = divmod(i, cols)
        out[pad + r * (h + pad): pad + r * (h + pad) + h, pad + q * (w + pad): pad + q * (w + pad) + w] = im
    return out


def save_png(image_uint8: np.ndarray, path: str) -> None:
    """Writes [H, W, 1|3] uint8 as PNG at a path or URL, whole (a crash never leaves half a file)."""
    mode_image = image_uint8[..., 0] if image_uint8.shape[-1] == 1 else image_uint8
    buf = io.BytesIO()
    Image.fromarray(mode_image).save(buf, format="PNG")
    files.write_bytes(path, buf.getvalue())


def save_grid(images, path: str, cols: int = 0) -> np.ndarray:
    """images [-1, 1] -> PNG grid at `path` (`cols` a row, default near-square); returns the uint8 images."""
    images = to_uint8(images)
    save_png(grid(images, cols=cols), path)
    return images


def read_image(path: str, size: int, channels: int, resize: bool = True) -> np.ndarray:
    """A square PNG/JPEG -> float32 [1, size, size, channels] in [-1, 1] (bicubic resize if needed and
    allowed)."""
    if not os.path.isfile(path):
        raise JgenError(f"image not found: {path}")
    try:
        im = Image.open(path)
        im = im.convert("L" if channels == 1 else "RGB")
    except (UnidentifiedImageError, OSError) as e:
        raise JgenError(f"cannot read image {path}: {e}") from None
    if im.width != im.height:
        raise JgenError(f"{path} is {im.width}x{im.height}; crop it square first (the model is {size}x{size})")
    if im.width != size and not resize:
        raise JgenError(f"{path} is {im.width}x{im.height}; expected {size}x{size}")
    if im.width != size:
        im = im.resize((size, size), Image.BICUBIC)
    x = np.asarray(im, np.float32).reshape(size, size, channels)
    return from_uint8(x)[None]


def read_mask(path: str, size: int) -> np.ndarray:
    """A mask image, white = fill -> keep [1, size, size, 1] (1 = known), nearest-neighbour resized."""
    if not os.path.isfile(path):
        raise JgenError(f"mask not found: {path}")
    try:
        im = Image.open(path).convert("L")
    except (UnidentifiedImageError, OSError) as e:
        raise JgenError(f"cannot read mask {path}: {e}") from None
    if im.width != im.height:
        raise JgenError(f"mask {path} is {im.width}x{im.height}; it must be square like the image")
    m = np.asarray(im.resize((size, size), Image.NEAREST)) > 127
    return (~m).astype(np.float32)[None, ..., None]
