"""Uploaded bytes -> the arrays a Session takes, decoded as `segment` reads files (same OpenCV flags),
with the pixel count checked from the header before anything is decoded (decompression bombs)."""
from __future__ import annotations

import io
import warnings
from collections.abc import Callable

import cv2
import numpy as np
from PIL import Image

from ..runtime.images import to_rgb_uint8

# Pillow's format names of what we accept, and the media types that name them.
FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "BMP": "image/bmp", "WEBP": "image/webp"}
MEDIA_TYPES = frozenset(FORMATS.values())


class UploadError(Exception):
    """Bad upload: ``status`` is the HTTP status to answer with, the message says what to send instead."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def probe(data: bytes, what: str) -> tuple[str, int, int]:
    """(Pillow format, width, height) from the header alone; nothing is decoded."""
    if not data:
        raise UploadError(400, f"the {what} is empty; send the file's bytes (JPEG, PNG, BMP or WebP)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                fmt, (w, h) = im.format, im.size
    except Image.DecompressionBombError:
        raise UploadError(413, f"the {what} has too many pixels to decode safely; send a smaller image") from None
    except (OSError, SyntaxError, ValueError):
        raise UploadError(400, f"the {what} upload is not a readable image (corrupt, truncated or another kind "
                          "of file); send a JPEG, PNG, BMP or WebP file") from None
    if fmt not in FORMATS:
        raise UploadError(415, f"the {what} is {fmt}; send JPEG, PNG, BMP or WebP")
    return fmt, w, h


def decode_image(data: bytes, max_mp: float, check: Callable[[int, int], None] | None = None) -> np.ndarray:
    """RGB uint8 H x W x 3, as ``runtime.images.read_image`` decodes files (IMREAD_COLOR: gray becomes
    3 channels, alpha is dropped, 16-bit becomes 8-bit, EXIF orientation applied). ``check(w, h)`` may
    refuse the size from the header, before decoding."""
    _fmt, w, h = probe(data, "image")
    if w * h > max_mp * 1e6:
        raise UploadError(413, f"the image is {w}x{h} = {w * h / 1e6:.1f} MP, over the server's "
                          f"--max-image-mp {max_mp:g}; downscale it or restart the server with a higher limit")
    if check is not None:
        check(w, h)
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise UploadError(400, "the image could not be decoded (corrupt or truncated file); send the whole file")
    return to_rgb_uint8(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


def decode_mask(data: bytes, hw: tuple[int, int]) -> np.ndarray:
    """A bool mask from a PNG, as ``runtime.images.read_mask`` reads it (channel 0, nonzero = object)."""
    fmt, w, h = probe(data, "mask")
    if fmt != "PNG":
        raise UploadError(415, f"the mask is {fmt}; send a PNG (lossy formats blur mask edges)")
    if (h, w) != tuple(hw):
        raise UploadError(400, f"the mask is {w}x{h} but the image is {hw[1]}x{hw[0]}; send a mask of the image's size")
    data_arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if data_arr is None:
        raise UploadError(400, "the mask could not be decoded (corrupt or truncated PNG); send the whole file")
    if data_arr.ndim == 3:
        data_arr = data_arr[..., 0]
    return data_arr > 0
