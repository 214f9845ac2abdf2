#!/usr/bin/env python
"""Build the exported b0-s1 model shipped in the package (focalclick_edge/assets/models/b0-s1).

Exports the shipped checkpoint (focalclick_edge/assets/checkpoints/b0-s1.pth) with INT8, then keeps only
the graphs the default runs need, so that the wheel stays small:

  ort-fp32  segmentor.fp32.onnx + refiner.fp32.onnx
  ort-int8  segmentor.int8.onnx + refiner.fp32.onnx (ONNX Runtime pairs INT8 with the FP32 Refiner)
  ov-fp32   openvino/{segmentor,refiner}.fp32.{xml,bin}
  ov-int8   openvino/{segmentor,refiner}.int8.{xml,bin}
  ov-bf16, ov-int8+refiner-bf16: the FP32 IR computed in bf16 (CPUs with native bf16 only; no files of their own)

and a model card that lists just those files. Re-run it whenever the shipped checkpoint is retrained:

  python tools/build_shipped_model.py                      # export (needs the [export] extra), then copy
  python tools/build_shipped_model.py --from models/b0-s1  # reuse an export of the same checkpoint
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from focalclick_edge.assets import MODELS_DIR, default_checkpoint  # noqa: E402
from focalclick_edge.errors import UserError  # noqa: E402
from focalclick_edge.fileio import atomic_directory, sha256_file, write_json_atomic  # noqa: E402
from focalclick_edge.runtime.model_dir import CARD_NAME, ModelDir  # noqa: E402

VARIANT = "b0-s1"
# (role, backend, precision) of every graph shipped.
SHIPPED = [
    ("segmentor", "onnxruntime", "fp32"), ("refiner", "onnxruntime", "fp32"), ("segmentor", "onnxruntime", "int8"),
    ("segmentor", "openvino", "fp32"), ("refiner", "openvino", "fp32"),
    ("segmentor", "openvino", "int8"), ("refiner", "openvino", "int8"),
]


def export_shipped_checkpoint(out: Path) -> Path:
    from focalclick_edge.export.exporter import export_variant

    ckpt = default_checkpoint(VARIANT)
    if ckpt is None:
        raise UserError(f"no shipped checkpoint for {VARIANT} in focalclick_edge/assets/checkpoints")
    export_variant(VARIANT, out, checkpoint=ckpt, int8=True, progress=True)
    return out


def copy_shipped(src: Path, dest: Path) -> dict:
    """Copy the SHIPPED graphs of ``src`` into ``dest`` (atomically) with a card listing only them."""
    model = ModelDir.open(src)
    if model.variant != VARIANT:
        raise UserError(f"{src} holds {model.variant}, not {VARIANT}")
    ckpt = default_checkpoint(VARIANT)
    exported_from = model.card.get("source_checkpoint", {}).get("sha256")
    if ckpt is not None and exported_from != sha256_file(ckpt):
        raise UserError(f"{src} was exported from another checkpoint than the shipped {ckpt.name}; "
                        "re-export it (run this script without --from)")
    files = []
    for role, backend, precision in SHIPPED:
        model.graph_file(role, backend, precision)  # present and matching its sha256
        entry = next(f for f in model.card["files"]
                     if (f["role"], f["backend"], f["precision"]) == (role, backend, precision))
        files.append(entry)
    card = dict(model.card)
    card["files"] = files
    card["shipped"] = {"note": "the graphs the default runs need (tools/build_shipped_model.py); "
                               "`focalclick-edge export` writes the full set"}
    with atomic_directory(dest) as tmp:
        for f in files:
            for key in ("path", "weights_path"):
                if key in f:
                    (tmp / f[key]).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(src / f[key], tmp / f[key])
        write_json_atomic(tmp / CARD_NAME, card)
    ModelDir.open(dest).graph_file("segmentor", "openvino", "int8")
    return card


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--from", dest="source", type=Path, help="an existing INT8 export of the shipped checkpoint")
    ap.add_argument("--out", type=Path, default=MODELS_DIR / VARIANT)
    args = ap.parse_args(argv)
    try:
        if args.source:
            card = copy_shipped(args.source, args.out)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                card = copy_shipped(export_shipped_checkpoint(Path(tmp) / VARIANT), args.out)
    except UserError as exc:
        print(f"build_shipped_model: error: {exc}", file=sys.stderr)
        return 2
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"wrote {args.out}: {len(card['files'])} graphs, {size / 2**20:.1f} MiB")
    print(json.dumps(sorted({f"{f['backend']}/{f['precision']}" for f in card["files"]})))
    return 0


if __name__ == "__main__":
    sys.exit(main())
