"""Accuracy-controlled INT8 (``export --max-iou-drop``): give back int8 layers until the sessions follow FP32.

Metric: mean IoU, over every click of a few validation sessions, between the INT8 session's final
mask and the FP32 session's mask after the same click, each click starting from the FP32 session's
state (``agreement.stepwise_agreement``; FP32 scores 1.0, so the drop is ``1 - mean IoU``). A fully
replayed session is not used as the target: it feeds its own masks back into the next crop, so on
models with weak logits even FP16 weights lose ~0.1 IoU that way (measured on a partly trained b0-s1),
and no amount of float layers could meet a tight ``max_drop``. The validation sessions run on
calibration images (the held-out images stay unseen for the agreement figures in the card).

Procedure (the same for both backends, so that both are bounded by one time budget):
1. rank the quantized Conv / MatMul / Gemm layers of both graphs by the signal-to-quantization-noise
   ratio of their int8 input activations on recorded inputs, SQNR = 10 log10(|x|^2 / |x - dq(q(x))|^2):
   a low SQNR means int8 rounding destroys most of what that layer sees (outlier channels, skewed
   ranges); weights are per-channel and rarely the problem;
2. re-quantize with the 2, 4, 8, ... lowest-SQNR layers kept in float (ONNX Runtime
   ``nodes_to_exclude``, NNCF ``ignored_scope``) and re-validate, until the drop is met, the rounds run
   out or the time budget is spent.

Why not ``nncf.quantize_with_accuracy_control``: it was tried first; with a session-level validation
function it ranks every quantizer group of the Segmentor (tens of groups, each a model compile plus
inference) before reverting anything, and ran for over 10 minutes on a 2-core machine with no way to
bound it by time. The greedy loop above gives the same kind of result (the weakest layers back in
float) within a fixed budget, and the card records how far it got.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..export.model_card import file_entry
from ..runtime.runs import BACKENDS, ROLES, graph_relpath
from ..variants import Variant
from .sensitivity import ort_sensitivity, ov_sensitivity

VAL_IMAGES = 3
MAX_ROUNDS = 4
SENSITIVITY_INPUTS = 8
DEFAULT_BUDGET_S = 300.0
Log = Callable[[str], None]


def _drop(tmp: Path, backend: str, refs: list[Any]) -> float:
    """1 - mean one-step IoU vs FP32 (agreement.stepwise_agreement) over the validation sessions."""
    from ..runtime.session import Session
    from .agreement import stepwise_agreement

    res = stepwise_agreement(Session(tmp, "onnxruntime", "fp32"), Session(tmp, backend, "int8"), refs)
    return round(1.0 - float(res["stepwise_mean_iou"]), 5)


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
    budget_s: float | None = None,
) -> dict[str, Any]:
    """Re-quantize the INT8 graphs in ``tmp`` where the drop exceeds ``max_drop``; returns the report.
    ``budget_s`` (default DEFAULT_BUDGET_S) bounds the whole procedure, both backends together."""
    from .agreement import reference_sessions

    budget_s = DEFAULT_BUDGET_S if budget_s is None else budget_s

    t_start = time.perf_counter()
    val_refs, _ = reference_sessions(tmp, cal_set.dataset, list(cal_set.indices[:VAL_IMAGES]), cal_set.seed)
    report: dict[str, Any] = {
        "max_drop": max_drop,
        "metric": ("1 - mean IoU of INT8 vs FP32 session masks over every click, each click from the FP32 "
                   "session's state (stepwise)"),
        "validation_sessions": len(val_refs),
        "validation_images": "the first calibration images",
        "budget_s": budget_s,
        "method": "greedy: keep the lowest-SQNR int8 layers in float, doubling the count each round",
    }
    for i, backend in enumerate(BACKENDS):
        # Each backend gets an equal share of what is left of the budget.
        left = budget_s - (time.perf_counter() - t_start)
        deadline = time.perf_counter() + left / (len(BACKENDS) - i)
        before = _drop(tmp, backend, val_refs)
        entry: dict[str, Any] = {"drop_before": before}
        if before <= max_drop:
            entry.update(action="none: already within max_drop", drop_after=before)
        else:
            entry.update(_greedy(tmp, card, variant, backend, recs, val_refs, max_drop, reduce_range,
                                 deadline, write_card, progress, per_file_s, before))
        entry["met"] = entry["drop_after"] <= max_drop
        if not entry["met"]:
            log(f"warning: {backend} INT8 drop {entry['drop_after']:.3f} > --max-drop {max_drop} after "
                "accuracy control within its time budget; the card records it")
        report[backend] = entry
    report["seconds"] = round(time.perf_counter() - t_start, 2)
    write_card()
    return report


def _int8_files(backend: str, role: str) -> list[str]:
    rel = graph_relpath(role, backend, "int8")
    return [rel, rel[: -len(".xml")] + ".bin"] if rel.endswith(".xml") else [rel]


def _greedy(
    tmp: Path, card: dict[str, Any], variant: Variant, backend: str, recs: Any, val_refs: list[Any],
    max_drop: float, reduce_range: bool, deadline: float, write_card: Callable[[], None], progress: bool,
    per_file_s: dict[str, float], before: float,
) -> dict[str, Any]:
    import copy
    import shutil

    from .onnx_int8 import ORT_OP_TYPES, quantize_onnx
    from .openvino_int8 import quantize_openvino

    quant = card["quantization"][backend]
    scope_key = "kept_float" if backend == "onnxruntime" else "ignored_scope"
    base_float = {r: list(quant[r].get(scope_key) or []) for r in ROLES}
    ranking: list[tuple[float, str, str]] = []
    for role in ROLES:
        n = recs.count(role)
        pick = [int(i) for i in np.linspace(0, n - 1, min(SENSITIVITY_INPUTS, n))]
        rank = ort_sensitivity if backend == "onnxruntime" else ov_sensitivity
        ranking += [(s, role, name) for s, name in rank(tmp / _int8_files(backend, role)[0],
                                                        recs.feed_list(role, pick))]
    ranking.sort()

    # The session metric is not monotonic in the number of float layers, so every round's files are
    # kept aside and the best round (the plain quantization included) is what stays in the directory.
    stash = tmp / f".accuracy-control-{backend}"

    def save(tag: str) -> None:
        for role in ROLES:
            for rel in _int8_files(backend, role):
                (stash / tag / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(tmp / rel, stash / tag / rel)

    save("r0")
    best = {"drop": before, "tag": "r0", "quant": copy.deepcopy({r: quant[r] for r in ROLES})}
    rounds: list[dict[str, Any]] = []
    k = 1
    done: dict[str, list[str]] = {r: [] for r in ROLES}
    try:
        while len(rounds) < MAX_ROUNDS and time.perf_counter() < deadline and k < len(ranking):
            k = min(2 * k, len(ranking))
            chosen = ranking[:k]
            for role in ROLES:
                extra = [name for _, r, name in chosen if r == role]
                if extra == done[role]:
                    continue  # this graph's float set did not change: keep its file
                t0 = time.perf_counter()
                fp32 = tmp / graph_relpath(role, "onnxruntime", "fp32")
                keep = sorted(set(base_float[role]) | set(extra))
                rel = _int8_files(backend, role)[0]
                if backend == "onnxruntime":
                    recipe = quantize_onnx(fp32, tmp / rel, recs.feed_list(role),
                                           reduce_range, keep_float=keep, op_types=ORT_OP_TYPES,
                                           progress=progress)
                else:
                    recipe = quantize_openvino(fp32, tmp / rel, recs.feed_list(role),
                                               variant.family, role, keep_float=keep, progress=progress)
                quant[role][scope_key] = recipe["kept_float" if backend == "onnxruntime" else "ignored_scope"]
                done[role] = extra
                _refresh_entry(tmp, card, rel, role, backend)
                per_file_s[rel] = round(per_file_s.get(rel, 0.0) + time.perf_counter() - t0, 2)
            write_card()
            drop = _drop(tmp, backend, val_refs)
            tag = f"r{len(rounds) + 1}"
            rounds.append({"round": tag, "kept_float": [f"{r}:{name} ({s} dB)" for s, r, name in chosen],
                           "drop": drop})
            if drop < best["drop"]:
                save(tag)
                best = {"drop": drop, "tag": tag, "quant": copy.deepcopy({r: quant[r] for r in ROLES})}
            if drop <= max_drop:
                break
        if rounds and best["tag"] != rounds[-1]["round"]:
            for role in ROLES:
                for rel in _int8_files(backend, role):
                    shutil.copy2(stash / best["tag"] / rel, tmp / rel)
                quant[role] = best["quant"][role]
                _refresh_entry(tmp, card, _int8_files(backend, role)[0], role, backend)
            write_card()
    finally:
        shutil.rmtree(stash, ignore_errors=True)
    met = best["drop"] <= max_drop
    return {
        "ranking_top": [f"{r}:{name} ({s} dB)" for s, r, name in ranking[:16]],
        "rounds": rounds,
        "kept_round": best["tag"] + (" (the plain quantization)" if best["tag"] == "r0" else ""),
        "drop_after": best["drop"],
        "stopped": "met" if met else "time budget" if time.perf_counter() >= deadline else "rounds",
    }
