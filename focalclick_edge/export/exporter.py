"""`focalclick-edge export`: checkpoint → model directory (ONNX, and more as later stages add)."""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..assets import default_checkpoint
from ..errors import UserError
from ..fileio import atomic_directory, sha256_file, write_json_atomic
from ..runtime.model_dir import ModelDir
from ..runtime.runs import EXPORTED_FLOAT, ROLES, get_run, graph_relpath
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
    int8: bool = False,
    calib_data: str | Path | None = None,
    calib_size: int | None = None,
    max_drop: float | None = None,
    seed: int = 0,
    progress: bool = False,
    calib_cache_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Export one checkpoint into ``out_dir`` atomically and return its model card.

    Always: FP32 ONNX and FP32 + FP16-compressed OpenVINO IR of both graphs, each checked against the
    reference (PyTorch, then ONNX Runtime). With ``int8``: calibration on ``calib_size`` images of
    ``calib_data`` (None: the built-in set; any standard benchmark folder), ONNX Runtime QDQ and
    OpenVINO/NNCF INT8, and their agreement with FP32 on held-out sessions; ``max_drop`` (absolute drop
    of the mean per-click mask IoU vs FP32, quantization/accuracy.py) enables accuracy control.
    ``calib_cache_dir`` overrides where recorded calibration inputs are cached. The returned card also
    carries ``summary`` (table rows and next commands), which is printed through ``log`` and not written
    to disk."""
    from ..models import CheckpointError, load_checkpoint
    from .onnx_export import export_onnx
    from .openvino_export import check_openvino_ir, export_openvino_ir, leave_out_fp16
    from .verify_inputs import real_verify_inputs

    if max_drop is not None and not int8:
        raise UserError("--max-iou-drop only applies to INT8 export; add --int8")
    if max_drop is not None and not 0.0 < max_drop < 1.0:
        raise UserError(f"--max-iou-drop is an absolute drop of mean IoU vs FP32, between 0 and 1 "
                        f"(got {max_drop})")
    if not int8 and (calib_data is not None or calib_size is not None):
        log("note: calibration options only apply with --int8; exporting FP32 / FP16 only")
    t_start = time.perf_counter()
    cal_set = None
    if int8:
        from ..calibration.dataset import open_calibration_set

        # Before the slow export steps: a wrong --calib-data fails in a second, not after the export.
        cal_set = open_calibration_set(calib_data, calib_size, seed)
    ckpt = resolve_checkpoint(variant, checkpoint)
    try:
        model = load_checkpoint(ckpt, variant)
    except CheckpointError as exc:
        raise UserError(str(exc)) from None
    v = get_variant(model.variant.id)
    timings: dict[str, float] = {}
    per_file_s: dict[str, float] = {}
    with atomic_directory(out_dir) as tmp:
        card = base_card(v, ckpt, sha256_file(ckpt))

        def write_card() -> None:
            # The runtime Session (calibration, agreement) finds files through the card.
            write_json_atomic(tmp / CARD_NAME, card)

        t0 = time.perf_counter()
        verify = real_verify_inputs(model, v)
        report = export_onnx(model, v, tmp, verify)
        timings["onnx_export_s"] = round(time.perf_counter() - t0, 2)
        card["onnx"] = {"opset": report["opset"], "simplifier": report["simplifier"]}
        if report["segmentor_head_folded"]:
            card["onnx"]["segmentor_head"] = (
                "SegFormer decode head folded (export/head_folding.py): per-stage Linear, the fuse conv's "
                "block and BatchNorm merged into one 1x1 conv per stage at its own resolution, then upsampled "
                "and summed; the same function, checked against the unmodified model below")
        card["verification"] = {
            "inputs": "bundled COCO-MVal sample, second-click style Target/Focus Crops",
            "onnx_vs_torch_max_abs_diff": report["max_abs_diff"],
            "onnx_vs_torch_tolerance": report["tolerance"],
        }
        for role in ROLES:
            rel = graph_relpath(role, "onnxruntime", "fp32")
            card["files"].append(file_entry(tmp, rel, role, "onnxruntime", "fp32"))
            per_file_s[rel] = round(timings["onnx_export_s"] / 2, 2)

        t0 = time.perf_counter()
        ov_diffs = {}
        ov_precisions = [p for b, p in EXPORTED_FLOAT if b == "openvino"]
        # FP16 is an optional run: an IR outside its tolerance is left out (with the reason in the card),
        # the rest of the export stands. FP32 outside its tolerance stops the export.
        fp16_rejected = {"fp16": ""}
        for role in ROLES:
            t1 = time.perf_counter()
            export_openvino_ir(tmp / graph_relpath(role, "onnxruntime", "fp32"), tmp, role, ov_precisions)
            ov_diffs[role] = check_openvino_ir(tmp, role, [verify[role]], ov_precisions, rejected=fp16_rejected)
            for precision in ov_precisions:
                rel = graph_relpath(role, "openvino", precision)
                card["files"].append(file_entry(tmp, rel, role, "openvino", precision))
                per_file_s[rel] = round((time.perf_counter() - t1) / len(ov_precisions), 2)
        timings["openvino_ir_s"] = round(time.perf_counter() - t0, 2)
        card["openvino"] = {
            "ir": "openvino.Core.read_model(ONNX) + openvino.save_model (no ovc / convert_model)",
            "fp16": "compress_to_fp16=True: FP16 weights, decompressed to f32 at load "
                    "(the runtime sets INFERENCE_PRECISION_HINT=f32)",
        }
        if fp16_rejected["fp16"]:
            leave_out_fp16(tmp, card, fp16_rejected["fp16"], per_file_s, log)
        card["verification"]["openvino_vs_onnx_max_abs_diff"] = ov_diffs
        card["verification"]["openvino_inputs"] = "bundled sample"
        card["timings"] = timings
        write_card()

        if int8:
            from ..quantization.pipeline import run_int8_stage

            run_int8_stage(tmp, card, v, write_card, cal_set, max_drop, calib_cache_dir, progress, log,
                           timings, per_file_s)
        # Every graph timed on the export machine, with its CPU fingerprint: `--run auto` picks from these
        # here and re-times only on a different CPU (runtime/run_choice.py).
        from ..runtime.run_choice import time_graphs

        write_card()
        card["run_timings"] = time_graphs(tmp, budget_s=1.0)
        timings["total_s"] = round(time.perf_counter() - t_start, 2)
        card["timings"] = {**timings, "per_file_s": per_file_s}
        write_card()
    summary = export_summary(card, Path(out_dir))
    for line in summary["lines"]:
        log(line)
    return {**card, "summary": summary}


def _size(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def next_commands(out_dir: Path, card: dict[str, Any]) -> list[str]:
    """What to run next with the exported directory (the CLI's segment / eval / bench commands)."""
    runs = ModelDir(Path(out_dir), card).runs()  # what this machine can run (ov-bf16 only with native bf16)
    best = get_run("ov-int8" if "ov-int8" in runs else "ov-fp32")
    backend, precision = best.backend, best.precision
    return [
        f"focalclick-edge segment IMAGE.jpg --model {out_dir} --click X,Y,+ --out mask.png "
        f"--backend {backend} --precision {precision}",
        f"focalclick-edge eval --model {out_dir} --dataset GrabCut=PATH/GrabCut --runs {','.join(runs)} "
        "--json eval.json --plot eval.png",
        f"focalclick-edge bench --model {out_dir} --runs {','.join(runs)} --vs-torch "
        "--json bench.json --plot bench.png",
    ]


def export_summary(card: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    """Rows (file, backend, precision, size, seconds) + agreement + next commands, as data and as lines."""
    per_file = card.get("timings", {}).get("per_file_s", {})
    rows = []
    for f in card["files"]:
        size = f["size_bytes"] + f.get("weights_size_bytes", 0)
        rows.append({"file": f["path"], "backend": f["backend"], "precision": f["precision"],
                     "size_bytes": size, "seconds": per_file.get(f["path"])})
    width = max(len(r["file"]) for r in rows)
    lines = [f"wrote {out_dir} ({card['variant']}) in {card['timings'].get('total_s', 0):.0f} s",
             f"  {'file':<{width}}  {'backend':<11} {'prec':<5} {'size':>10} {'time':>7}"]
    for r in rows:
        secs = "" if r["seconds"] is None else f"{r['seconds']:.1f} s"
        lines.append(f"  {r['file']:<{width}}  {r['backend']:<11} {r['precision']:<5} "
                     f"{_size(r['size_bytes']):>10} {secs:>7}")
    agreement = card.get("quantization", {}).get("agreement", {})
    for key in ("onnxruntime/int8", "openvino/int8", "openvino/fp16", "openvino/bf16"):
        a = agreement.get(key)
        if a and a.get("mean_iou") is not None:
            lines.append(f"  {key} vs FP32 on {a['sessions']} held-out sessions: "
                         f"mean IoU {a['mean_iou']:.3f}, min {a['min_iou']:.3f}")
    cmds = next_commands(out_dir, card)
    lines.append("next:")
    lines.extend(f"  {c}" for c in cmds)
    return {"rows": rows, "next_commands": cmds, "lines": lines}
