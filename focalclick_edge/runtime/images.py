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


def decode_image_file(path: str | Path, what: str, flags: int) -> np.ndarray:
    """``cv2.imdecode`` of a file with one-line errors. Unlike ``cv2.imread`` it takes any path
    (non-ASCII too) and tells "missing" from "not an image"."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} {path} does not exist")
    data = np.fromfile(str(path), dtype=np.uint8)
    img = cv2.imdecode(data, flags) if data.size else None
    if img is None:
        raise UserError(f"cannot read {what} {path}: unsupported or corrupt file; use PNG, JPEG or BMP")
    return img


def read_image(path: str | Path) -> np.ndarray:
    """An image file as RGB uint8, decoded as the official loaders do (``IMREAD_COLOR``: gray becomes
    3 channels, alpha is dropped, 16-bit becomes 8-bit, EXIF orientation is applied)."""
    return cv2.cvtColor(decode_image_file(path, "image", cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def read_mask(path: str | Path, hw: tuple[int, int] | None = None) -> np.ndarray:
    """Read a mask file: any nonzero pixel (channel 0) is object."""
    data = decode_image_file(path, "mask", cv2.IMREAD_UNCHANGED)
    if data.ndim == 3:
        data = data[..., 0]
    mask = data > 0
    if hw is not None and mask.shape != tuple(hw):
        raise UserError(f"mask {path} is {mask.shape[0]}x{mask.shape[1]} but the image is {hw[0]}x{hw[1]}")
    return mask
