"""Encoded image bytes (what annotation tools send) -> RGB uint8, decoded as ``segment`` reads files."""
from __future__ import annotations

import base64
import binascii

import numpy as np

from ..errors import UserError
from ..optional_modules import optional_import
from ..runtime.images import to_rgb_uint8

cv2 = optional_import("cv2", "opencv-python-headless")

# A 32 MB request body is what CVAT's own interactor functions accept (nuclio maxRequestBodySize).
MAX_IMAGE_BYTES = 32 << 20
MAX_IMAGE_PIXELS = 50_000_000


def decode_image_bytes(data: bytes, what: str = "image", max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """PNG/JPEG/BMP/... bytes as RGB uint8 with the flags of ``runtime.images.read_image`` (``IMREAD_COLOR``:
    gray becomes 3 channels, alpha is dropped, 16-bit becomes 8-bit, EXIF orientation applied), so a
    frame sent by a tool segments exactly as the same file given to ``focalclick-edge segment``."""
    if not data:
        raise UserError(f"{what} is empty; send the encoded frame (PNG or JPEG bytes)")
    if len(data) > MAX_IMAGE_BYTES:
        raise UserError(f"{what} is {len(data) >> 20} MB; the limit is {MAX_IMAGE_BYTES >> 20} MB")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise UserError(f"cannot decode {what}: unsupported or corrupt data; send PNG, JPEG or BMP bytes")
    if img.shape[0] * img.shape[1] > max_pixels:
        raise UserError(f"{what} is {img.shape[1]}x{img.shape[0]} pixels; the limit is {max_pixels} pixels")
    return to_rgb_uint8(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), what)


def decode_base64(text: object, what: str = "image") -> bytes:
    """Standard base64 (as CVAT sends frames), refusing anything else with a one-line reason."""
    if not isinstance(text, str) or not text:
        raise UserError(f"{what} must be a non-empty base64 string of the encoded frame")
    if len(text) > MAX_IMAGE_BYTES * 4 // 3 + 4:
        raise UserError(f"{what} is over {MAX_IMAGE_BYTES >> 20} MB; send a smaller frame")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise UserError(f"{what} is not valid base64; send the frame's bytes base64-encoded") from None
