"""Turning what users pass (files, arrays) into the RGB uint8 HxWx3 images the pipeline expects."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import UserError
from ..optional_modules import optional_import

cv2 = optional_import("cv2", "opencv-python-headless")


def to_rgb_uint8(image: np.ndarray, what: str = "image") -> np.ndarray:
    """Grayscale becomes RGB, RGBA loses its alpha, 16-bit is scaled to 8-bit; anything else that is
    not an image is refused with a message that says what to pass instead."""
    if not isinstance(image, np.ndarray):
        raise UserError(f"{what} must be a NumPy array (H x W x 3 RGB uint8), got {type(image).__name__}")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype == np.bool_:
        raise UserError(f"{what} is a boolean mask, not an image; pass the RGB photo (H x W x 3 uint8)")
    elif image.dtype != np.uint8:
        raise UserError(
            f"{what} has dtype {image.dtype}; pass uint8 RGB (e.g. (img * 255).round().astype(np.uint8))"
        )
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = image[..., :3]
    elif image.ndim != 3 or image.shape[2] != 3:
        raise UserError(f"{what} has shape {image.shape}; pass H x W x 3 (RGB), H x W (gray) or H x W x 4 (RGBA)")
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise UserError(f"{what} is {image.shape[0]}x{image.shape[1]} pixels; it must be at least 2x2")
    return np.ascontiguousarray(image)


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as RGB uint8 (8/16-bit, gray, RGB or RGBA on disk)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"image {path} does not exist")
    data = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if data is None:
        raise UserError(f"cannot read {path} as an image (unsupported or corrupt file); use PNG, JPEG or BMP")
    if data.ndim == 3 and data.shape[2] == 3:
        data = cv2.cvtColor(data, cv2.COLOR_BGR2RGB)
    elif data.ndim == 3 and data.shape[2] == 4:
        data = cv2.cvtColor(data, cv2.COLOR_BGRA2RGBA)
    return to_rgb_uint8(data, what=f"image {path}")


def read_mask(path: str | Path, hw: tuple[int, int] | None = None) -> np.ndarray:
    """Read a mask file: any nonzero pixel (channel 0) is object."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"mask {path} does not exist")
    data = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if data is None:
        raise UserError(f"cannot read {path} as a mask image; use a PNG with 0 = background")
    if data.ndim == 3:
        data = data[..., 0]
    mask = data > 0
    if hw is not None and mask.shape != tuple(hw):
        raise UserError(f"mask {path} is {mask.shape[0]}x{mask.shape[1]} but the image is {hw[0]}x{hw[1]}")
    return mask
