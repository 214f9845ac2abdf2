"""Accuracy-controlled INT8 (``--max-drop``): give back int8 layers until the sessions follow FP32.

Metric: mean IoU, over every click of a few validation sessions, between the INT8 session's masks and
the FP32 session's masks after the same clicks (FP32 scores 1.0, so the drop is ``1 - mean IoU``).
The validation sessions run on calibration images (the held-out images stay unseen for the agreement
figures in the card).

- OpenVINO: ``nncf.quantize_with_accuracy_control`` per graph, Segmentor first (it carries most of the
  int8 error), the other graph held at its current INT8 state. The validation function replays the
  sessions with the candidate graph swapped into a ``Session``; NNCF ranks quantizer groups by the
  change of the graph's outputs (fast) and reverts the worst groups one by one, validating each time.
- ONNX Runtime: no built-in equivalent, so a greedy fallback: rank the quantized Conv / MatMul / Gemm
  nodes of both graphs by the signal-to-quantization-noise ratio of their input activations on recorded
  inputs (where int8 rounding hurts most), then keep 2, 4, 8, ... of the worst in float until the drop
  is met.

Both stop at a time budget and record whether ``max_drop`` was met.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..export.model_card import file_entry
from ..export.openvino_export import ir_relpath
from ..variants import Variant

VAL_IMAGES = 3
NNCF_MAX_ITERATIONS = 8
ORT_MAX_ROUNDS = 4
SENSITIVITY_INPUTS = 8
DEFAULT_BUDGET_S = 300.0
ROLES = ("segmentor", "refiner")
Log = Callable[[str], None]


class _CompiledAdapter:
    """``run(feeds) -> outputs`` over an ``ov.CompiledModel`` (what NNCF hands to validation_fn)."""

    def __init__(self, compiled: Any) -> None:
        self._req = compiled.create_infer_request()
        self._n = len(compiled.outputs)

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        self._req.infer(feeds)
        return [np.array(self._req.get_output_tensor(i).data, copy=True) for i in range(self._n)]


def _session_iou(session: Any, ref: Any) -> float:
    from ..calibration.sessions import run_noc_session
    from .agreement import mask_iou

    session.set_image(ref.image)
    run = run_noc_session(session, ref.gt, 0, init_mask=ref.init_mask, clicks=ref.run.clicks)
    return float(np.mean([mask_iou(a, b) for a, b in zip(run.masks, ref.run.masks, strict=True)]))


def _drop(tmp: Path, backend: str, refs: list[Any]) -> float:
    from ..runtime.session import Session

    session = Session(tmp, backend, "int8")
    return round(1.0 - float(np.mean([_session_iou(session, r) for r in refs])), 5)


def _refresh_entry(tmp: Path, card: dict[str, Any], rel: str, role: str, backend: str) -> None:
    card["files"] = [f for f in card["files"]
                     if not (f["role"] == role and f["backend"] == backend and f["precision"] == "int8")]
    card["files"].append(file_entry(tmp, rel, role, backend, "int8"))


def accuracy_control(
    tmp: Path,
    card: dict[str, Any],
    variant: Variant,
    recs: Any,
    cal_set: Any,
    refs: list[Any],
    max_drop: float,
    reduce_range: bool,
    write_card: Callable[[], None],
    progress: bool,
    log: Log,
    per_file_s: dict[str, float],
    budget_s: float = DEFAULT_BUDGET_S,
) -> dict[str, Any]:
    """Re-quantize the INT8 graphs in ``tmp`` where the drop exceeds ``max_drop``; returns the report."""
    from .agreement import reference_sessions

    deadline = time.perf_counter() + budget_s
    val_refs, val_feeds = reference_sessions(tmp, cal_set.dataset, list(cal_set.indices[:VAL_IMAGES]),
                                             cal_set.seed)
    report: dict[str, Any] = {
        "max_drop": max_drop,
        "metric": "1 - mean IoU of INT8 vs FP32 session masks over every click (clicks replayed)",
        "validation_sessions": len(val_refs),
        "validation_images": "first calibration images",
        "budget_s": budget_s,
    }
    for backend in ("openvino", "onnxruntime"):
        before = _drop(tmp, backend, val_refs)
        entry: dict[str, Any] = {"drop_before": before}
        if before <= max_drop:
            entry["action"] = "none: already within max_drop"
        elif backend == "openvino":
            entry.update(_openvino_ac(tmp, card, variant, recs, val_refs, val_feeds, max_drop, deadline,
                                      write_card, progress, per_file_s))
        else:
            entry.update(_ort_ac(tmp, card, recs, val_refs, max_drop, reduce_range, deadline, write_card,
                                 progress, per_file_s))
        entry["drop_after"] = before if before <= max_drop else _drop(tmp, backend, val_refs)
        entry["met"] = entry["drop_after"] <= max_drop
        if not entry["met"]:
            log(f"warning: {backend} INT8 drop {entry['drop_after']:.3f} > --max-drop {max_drop} after "
                "accuracy control within its time budget; the card records it")
        report[backend] = entry
    write_card()
    return report


# --------------------------------------------------------------------------------------------- OpenVINO
def _openvino_ac(
    tmp: Path, card: dict[str, Any], variant: Variant, recs: Any, val_refs: list[Any],
    val_feeds: dict[str, list[dict[str, np.ndarray]]], max_drop: float, deadline: float,
    write_card: Callable[[], None], progress: bool, per_file_s: dict[str, float],
) -> dict[str, Any]:
    from ..privacy import disable_telemetry

    disable_telemetry()
    import nncf
    from nncf.quantization.advanced_parameters import AdvancedAccuracyRestorerParameters

    from ..calibration.recorder import swapped_graph
    from ..export.openvino_export import read_onnx, save_ir
    from ..runtime.session import Session
    from .openvino_int8 import activation_fake_quantize, nncf_settings, quiet_nncf
    from .scope import ov_float_tail

    out: dict[str, Any] = {"action": "nncf.quantize_with_accuracy_control", "graphs": {}}
    # Each validation session calls each graph once per click: one recorded call per session is the
    # input NNCF compares outputs on when ranking quantizer groups.
    per_session = [len(r.run.clicks) for r in val_refs]
    starts = np.cumsum([0] + per_session[:-1])
    for role in ROLES:
        if time.perf_counter() > deadline:
            out["graphs"][role] = "skipped: time budget spent"
            continue
        if _drop(tmp, "openvino", val_refs) <= max_drop:
            out["graphs"][role] = "skipped: drop already within max_drop"
            continue
        t0 = time.perf_counter()
        session = Session(tmp, "openvino", "int8")
        items = [(ref, val_feeds[role][int(s) + len(ref.run.clicks) // 2])
                 for ref, s in zip(val_refs, starts, strict=True)]

        def validate(compiled: Any, data: Any, _role: str = role, _session: Any = session
                     ) -> tuple[float, list]:
            adapter = _CompiledAdapter(compiled)
            ious, outs = [], []
            with swapped_graph(_session, _role, adapter):
                for ref, feed in data:
                    ious.append(_session_iou(_session, ref))
                    outs.append(adapter.run(feed))
            return float(np.mean(ious)), outs

        model = read_onnx(tmp / f"{role}.fp32.onnx")
        # The same float scope as the plain quantization chose (the Refiner's tail decision included).
        ignored = card.get("quantization", {}).get("openvino", {}).get(role, {}).get("ignored_scope")
        settings = nncf_settings(variant.family, role, ov_float_tail(model) if ignored is None else ignored)
        feeds = recs.feed_list(role)
        with quiet_nncf(progress):
            q = nncf.quantize_with_accuracy_control(
                model, nncf.Dataset(feeds), nncf.Dataset(items, lambda it: it[1]), validate,
                max_drop=max_drop, drop_type=nncf.DropType.ABSOLUTE, subset_size=len(feeds),
                advanced_accuracy_restorer_parameters=AdvancedAccuracyRestorerParameters(
                    max_num_iterations=NNCF_MAX_ITERATIONS, ranking_subset_size=len(items),
                    num_ranking_workers=1),
                **settings,
            )
        rel = ir_relpath(role, "int8")
        before = activation_fake_quantize(read_onnx_ir(tmp / rel))
        save_ir(q, tmp / rel, compress_to_fp16=False)
        after = activation_fake_quantize(read_onnx_ir(tmp / rel))
        _refresh_entry(tmp, card, rel, role, "openvino")
        write_card()
        per_file_s[rel] = round(per_file_s.get(rel, 0.0) + time.perf_counter() - t0, 2)
        out["graphs"][role] = {"fake_quantize_before": before["fake_quantize"],
                               "fake_quantize_after": after["fake_quantize"],
                               "max_num_iterations": NNCF_MAX_ITERATIONS,
                               "seconds": round(time.perf_counter() - t0, 2)}
    return out


def read_onnx_ir(path: Path) -> Any:
    import openvino as ov

    return ov.Core().read_model(str(path))


# --------------------------------------------------------------------------------------------- ORT
def ort_sensitivity(qdq_path: Path, feeds: list[dict[str, np.ndarray]]) -> list[tuple[float, str]]:
    """(SQNR dB of the worst int8 input activation, node name) for every quantized Conv / MatMul / Gemm
    of a QDQ model, most sensitive first. SQNR = 10 log10(|x|^2 / |x - dq(q(x))|^2) over ``feeds``."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(qdq_path))
    producers = {o: n for n in model.graph.node for o in n.output}
    inits = {i.name for i in model.graph.initializer}
    pairs: dict[str, list[tuple[str, str]]] = {}
    for n in model.graph.node:
        if n.op_type not in ("Conv", "MatMul", "Gemm"):
            continue
        for t in n.input[:2]:
            dq = producers.get(t)
            if dq is None or dq.op_type != "DequantizeLinear" or dq.input[0] in inits:
                continue
            q = producers.get(dq.input[0])
            if q is not None and q.op_type == "QuantizeLinear":
                pairs.setdefault(n.name, []).append((q.input[0], dq.output[0]))
    wanted = sorted({t for ps in pairs.values() for p in ps for t in p})
    existing = {o.name for o in model.graph.output}
    for t in wanted:
        if t not in existing:
            model.graph.output.append(onnx.helper.make_empty_tensor_value_info(t))
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every Q/DQ tensor
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    sig = dict.fromkeys(wanted, 0.0)
    noise: dict[str, float] = {}
    for f in feeds:
        vals = dict(zip(wanted, sess.run(wanted, f), strict=True))
        for ps in pairs.values():
            for x, xq in ps:
                sig[x] += float(np.sum(np.square(vals[x], dtype=np.float64)))
                noise[x + "|" + xq] = noise.get(x + "|" + xq, 0.0) + float(
                    np.sum(np.square(vals[x].astype(np.float64) - vals[xq])))
    scores = []
    for name, ps in pairs.items():
        worst = min(10 * np.log10(max(sig[x], 1e-30) / max(noise[x + "|" + xq], 1e-30)) for x, xq in ps)
        scores.append((round(float(worst), 2), name))
    return sorted(scores)


def _ort_ac(
    tmp: Path, card: dict[str, Any], recs: Any, val_refs: list[Any], max_drop: float, reduce_range: bool,
    deadline: float, write_card: Callable[[], None], progress: bool, per_file_s: dict[str, float],
) -> dict[str, Any]:
    from .onnx_int8 import quantize_onnx
    from .pipeline import ORT_OP_TYPES

    ranking: list[tuple[float, str, str]] = []
    for role in ROLES:
        n = recs.count(role)
        pick = [int(i) for i in np.linspace(0, n - 1, min(SENSITIVITY_INPUTS, n))]
        scores = ort_sensitivity(tmp / f"{role}.int8.onnx", recs.feed_list(role, pick))
        ranking += [(s, role, name) for s, name in scores]
    ranking.sort()
    rounds = []
    k = 1
    drop = None
    while len(rounds) < ORT_MAX_ROUNDS and time.perf_counter() < deadline and k < len(ranking):
        k = min(2 * k, len(ranking))
        chosen = ranking[:k]
        for role in ROLES:
            t0 = time.perf_counter()
            excl = [name for _, r, name in chosen if r == role]
            rel = f"{role}.int8.onnx"
            recipe = quantize_onnx(tmp / f"{role}.fp32.onnx", tmp / rel, recs.feed_list(role), reduce_range,
                                   extra_exclude=excl, op_types=ORT_OP_TYPES, progress=progress)
            card["quantization"]["onnxruntime"][role]["kept_float"] = recipe["kept_float"]
            _refresh_entry(tmp, card, rel, role, "onnxruntime")
            per_file_s[rel] = round(per_file_s.get(rel, 0.0) + time.perf_counter() - t0, 2)
        write_card()
        drop = _drop(tmp, "onnxruntime", val_refs)
        rounds.append({"kept_float": [f"{r}:{name} ({s} dB)" for s, r, name in chosen], "drop": drop})
        if drop <= max_drop:
            break
    return {"action": "greedy: keep the lowest-SQNR int8 layers in float, doubling the count each round",
            "ranking_top": [f"{r}:{name} ({s} dB)" for s, r, name in ranking[:16]], "rounds": rounds}
