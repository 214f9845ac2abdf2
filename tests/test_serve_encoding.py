"""Mask encodings of the serve API against the libraries' own encoders and decoders."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pycocotools")
import cv2  # noqa: E402
from pycocotools import mask as coco_mask  # noqa: E402

from focalclick_edge.serve.encoding import mask_png, mask_rle  # noqa: E402


def masks():
    rng = np.random.default_rng(0)
    for i in range(200):
        h, w = (int(v) for v in rng.integers(1, 40, 2))
        m = rng.random((h, w)) < rng.random()
        if i % 5 == 0:
            m[:] = False
        if i % 7 == 0:
            m[:] = True
        yield m
    big = np.zeros((1500, 2000), bool)
    cv2.circle(big.view(np.uint8), (1900, 100), 300, 1, -1)  # touches the right and top edges
    yield big


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # pycocotools vs NumPy 2
def test_rle_equals_pycocotools_encode_of_the_fortran_mask_and_decodes_back():
    for m in masks():
        got = mask_rle(m)
        ref = coco_mask.encode(np.asfortranarray(m.astype(np.uint8)))
        assert got == {"size": list(m.shape), "counts": ref["counts"].decode("ascii")}
        back = coco_mask.decode({"size": got["size"], "counts": got["counts"].encode()})
        assert np.array_equal(back.astype(bool), m)


def test_png_is_8_bit_0_255_and_full_size():
    for m in list(masks())[::20]:
        arr = cv2.imdecode(np.frombuffer(mask_png(m), np.uint8), cv2.IMREAD_UNCHANGED)
        assert arr.dtype == np.uint8 and arr.shape == m.shape and np.array_equal(arr, m.astype(np.uint8) * 255)
