"""Replaying the official recorded sessions (tests/fixtures/reference/<variant>/session.npz)."""
from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
from conftest import FIXTURES, REFERENCE

SESSIONS = ("scratch0", "scratch1", "scratch2", "init0", "long0")


def session_image(s: dict, name: str) -> np.ndarray:
    stem = Path(str(s[f"{name}_image_name"])).stem
    img = cv2.cvtColor(cv2.imread(str(FIXTURES / "images" / f"{stem}.png")), cv2.COLOR_BGR2RGB)
    assert hashlib.sha256(img.tobytes()).hexdigest() == str(s[f"{name}_image_rgb_u8_sha256"])
    return img


def unpack(bits: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    return np.unpackbits(bits)[: hw[0] * hw[1]].reshape(hw).astype(bool)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def replay(session, variant: str, names=SESSIONS) -> dict[str, list[float]]:
    """Per-click IoU of our masks against the official ones, for each recorded session."""
    s = dict(np.load(REFERENCE / variant / "session.npz"))
    out: dict[str, list[float]] = {}
    for name in names:
        img = session_image(s, name)
        hw = tuple(int(v) for v in s[f"{name}_image_hw"])
        session.set_image(img)
        if f"{name}_init_mask_packbits" in s:
            session.set_mask(unpack(s[f"{name}_init_mask_packbits"], hw))
        ious = []
        for k, (y, x, pos) in enumerate(s[f"{name}_clicks_yx_pos"]):
            result = session.add_click(int(x), int(y), bool(pos))
            ious.append(iou(result.mask, unpack(s[f"{name}_mask_packbits"][k], hw)))
        out[name] = ious
    return out
