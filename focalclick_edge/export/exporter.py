"""`focalclick-edge export`: checkpoint → model directory (ONNX, and more as later stages add)."""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..assets import default_checkpoint
from ..errors import UserError
from ..fileio import atomic_directory, sha256_file, write_json_atomic
from ..variants import get_variant
from .model_card import CARD_NAME, base_card, file_entry

Log = Callable[[str], None]


def resolve_checkpoint(variant_id: str | None, checkpoint: str | Path | None) -> Path:
    if checkpoint is not None:
        return Path(checkpoint)
    if variant_id is None:
        raise UserError("pass --variant or --checkpoint (or both)")
    get_variant(variant_id)  # an unknown id is reported as such, not as a missing checkpoint
    found = default_checkpoint(variant_id)
    if found is None:
        raise UserError(
            f"no default checkpoint ships for {variant_id}; pass --checkpoint PATH to an official "
            "FocalClick .pth (ClickSEG releases one per variant)"
        )
    return found


def export_variant(
    variant: str | None,
    out_dir: str | Path,
    checkpoint: str | Path | None = None,
    log: Log = print,
) -> dict[str, Any]:
    """Export one checkpoint into ``out_dir`` atomically and return its model card."""
    from ..models import CheckpointError, load_checkpoint
    from .onnx_export import export_onnx
    from .verify_inputs import real_verify_inputs

    ckpt = resolve_checkpoint(variant, checkpoint)
    try:
        model = load_checkpoint(ckpt, variant)
    except CheckpointError as exc:
        raise UserError(str(exc)) from None
    v = get_variant(model.variant.id)
    timings: dict[str, float] = {}
    with atomic_directory(out_dir) as tmp:
        card = base_card(v, ckpt, sha256_file(ckpt))
        t0 = time.perf_counter()
        verify = real_verify_inputs(model, v)
        report = export_onnx(model, v, tmp, verify)
        timings["onnx_export_s"] = round(time.perf_counter() - t0, 2)
        card["onnx"] = {"opset": report["opset"], "simplifier": report["simplifier"]}
        card["verification"] = {
            "inputs": "bundled COCO-MVal sample, second-click style Target/Focus Crops",
            "onnx_vs_torch_max_abs_diff": report["max_abs_diff"],
            "onnx_vs_torch_tolerance": report["tolerance"],
        }
        for role in ("segmentor", "refiner"):
            card["files"].append(file_entry(tmp, f"{role}.fp32.onnx", role, "onnxruntime", "fp32"))
        card["timings"] = timings
        write_json_atomic(tmp / CARD_NAME, card)
    log(f"wrote {Path(out_dir)} ({v.id}): " + ", ".join(f["path"] for f in card["files"]))
    return card
