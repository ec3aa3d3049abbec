"""Images at the edges: float [-1, 1] arrays <-> uint8, sample grids as PNG, batches as .npz."""

import math
import os

import numpy as np
from PIL import Image


def to_uint8(images) -> np.ndarray:
    """[N, H, W, C] in [-1, 1] -> uint8 [N, H, W, C]."""
    return np.clip(np.round((np.asarray(images, np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


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
    """Writes [H, W, 1|3] uint8 as PNG, atomically (a crash never leaves half a file)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    mode_image = image_uint8[..., 0] if image_uint8.shape[-1] == 1 else image_uint8
    tmp = path + ".tmp"
    Image.fromarray(mode_image).save(tmp, format="PNG")
    os.replace(tmp, path)


def save_grid(images, path: str, cols: int = 0) -> np.ndarray:
    """images [-1, 1] -> PNG grid at `path` (`cols` a row, default near-square); returns the uint8 images."""
    images = to_uint8(images)
    save_png(grid(images, cols=cols), path)
    return images
