"""INT8 stage of `export`: calibrate on recorded clicks, quantize for both backends, measure agreement.

Works inside the exporter's temporary model directory, which already holds the FP32 ONNX graphs, the
OpenVINO IR and a model card listing them (``write_card`` rewrites that card whenever new files must
become loadable by ``runtime.Session``).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..calibration.dataset import CalibrationSet
from ..export.model_card import file_entry
from ..export.openvino_export import remove_graph
from ..fileio import sha256_file
from ..runtime.backends import run_supported
from ..runtime.run_choice import OV_INT8_OTHER_REFINERS, pairing_key
from ..runtime.runs import BACKENDS, ROLES, RUNS, get_run, graph_relpath, with_refiner
from ..variants import Variant

Log = Callable[[str], None]
VERIFY_RECORDS = 8  # recorded calls per graph added to the OpenVINO-vs-ONNX check
TAIL_RECORDS = 32  # calibration calls the Refiner's float-tail decision is measured on
SENSITIVITY_RECORDS = 8  # calibration calls the per-layer SQNR is measured on
LATENCY_RUNS = 10
SEARCH_RECORDS = 24  # calibration calls the float search measures the logits error on
SEARCH_BUDGET_S = 240.0  # the float search's time budget per graph
SEARCH_OP_TYPES = ("Convolution", "GroupConvolution", "MatMul")

WHY = {
    "onnxruntime_op_types": (
        "only Conv / MatMul / Gemm are quantized (weights and their input activations): they hold all the "
        "arithmetic; LayerNorm, Softmax, GELU and residual Adds stay float. Measured on b0-s1 stand-in "
        "weights: segmentor logits rel. error 0.059 vs 0.065 with every ORT-quantizable op, same latency"
    ),
    "onnxruntime_types": (
        "QUInt8 asymmetric activations (ReLU/GELU/sigmoid outputs and [0,1] images are one-sided) x QInt8 "
        "symmetric per-channel weights (depthwise convs have very different per-channel ranges): U8S8 is "
        "the operand order of x86 int8 dot products. Measured on b0-s1: S8S8 0.069, per-tensor 0.072, "
        "reduce_range 0.087 vs 0.059 rel. error"
    ),
    "onnxruntime_calibration": (
        "MinMax over every recorded input: measured better than Percentile (0.084) and moving-average "
        "MinMax (0.122) on b0-s1 segmentor logits"
    ),
    "openvino_preset": (
        "CNN graphs (HRNet segmentors, Refiners): MIXED, symmetric weights and asymmetric activations "
        "(one-sided activation ranges). SegFormer segmentors: model_type=TRANSFORMER (LayerNorm/Softmax "
        "float, SmoothQuant), PERFORMANCE (symmetric activations) and the decode head's Interpolate inputs "
        "float: measured on the shipped b0-s1 Segmentor, logits rel. error vs FP32 on held-out GrabCut "
        "click inputs, one IR run under AMX / AVX512-VNNI / AVX2 kernels: 0.129 / 0.077 / 0.059 with "
        "MIXED and the head quantized, 0.038 / 0.026 / 0.036 with this recipe, same latency"
    ),
    "float_search": (
        "OpenVINO SegFormer Segmentors: after the SQNR rule, a top-down search (stages, blocks, modules, "
        "layers) keeps float the fewest layers that remove most of the logits error on calibration inputs "
        "(float_search.py). Shipped b0-s1 (step 15,600): one conv, block1.0's attention spatial reduction, "
        "took the logits error on held-out DUTS-TE inputs from 0.075 to 0.022 (sign flips 1.1 % -> 0.23 %) "
        "and GrabCut NoC@90 ov-int8 from 5.30 to 5.00 (ov-fp32 5.04), Berkeley 10.37 -> 10.39 (10.22)"
    ),
    "sqnr_floor": (
        "after quantizing, each weighted layer's int8 input SQNR is measured on recorded inputs; layers "
        "below the floor (low_sqnr_float) are re-quantized in float. In FocalClick these are the pointwise "
        "convs right after a depthwise conv with no norm in between (Refiner XConvBnRelu): outlier channels "
        "set the per-tensor range. Measured on a partly trained b0-s1 Refiner (OpenVINO): logits rel. error "
        "0.102 -> 0.040, one-step session IoU vs FP32 0.90 -> 0.96"
    ),
    "onnxruntime_segformer_head": (
        "ONNX Runtime keeps the folded SegFormer decode head float: tiny convs whose upsampled sums only run "
        "in ORT's fast blocked-layout Resize in float (b0-s1 Segmentor, 2 threads: 6.7-7.1 ms vs 7.4-8.1 ms "
        "all-int8)"
    ),
    "float_tail": (
        "ops after the last convolution (Refiner: the two upsamplings and Eq. 1 blend "
        "detail*sigmoid(trimap) + cropped_logits*(1-sigmoid(trimap)); Segmentor: its logits upsampling) "
        "stay float: they have no weights and quantizing them rounds logits near the 0.5 mask threshold; "
        "measured per export for the Refiner (refiner_tail below). The logits convolutions feeding the "
        "tail stay float too (both backends): measured on a partly trained b0-s1 Segmentor (OpenVINO), "
        "coarse logits rel. error 0.168 -> 0.048; in ONNX Runtime's QDQ format their outputs would "
        "otherwise be rounded to 8 bits as well"
    ),
}


def _time(timings: dict[str, float], key: str, t0: float) -> None:
    timings[key] = round(timings.get(key, 0.0) + time.perf_counter() - t0, 2)


def run_int8_stage(
    tmp: Path,
    card: dict[str, Any],
    variant: Variant,
    write_card: Callable[[], None],
    cal_set: CalibrationSet,
    max_drop: float | None,
    cache_dir: str | Path | None,
    progress: bool,
    log: Log,
    timings: dict[str, float],
    per_file_s: dict[str, float],
) -> None:
    """Add ort-int8 and ov-int8 files (both graphs) to ``tmp`` and their sections to ``card``;
    ``cal_set`` comes from ``calibration.open_calibration_set``."""
    from tqdm import tqdm

    from ..calibration.sessions import record_calibration
    from ..export.openvino_export import check_openvino_ir, leave_out_fp16
    from ..runtime.model_dir import ModelDir
    from . import agreement as ag
    from .cpu import int8_capabilities
    from .onnx_int8 import ORT_OP_TYPES, quantize_onnx
    from .openvino_int8 import quantize_openvino
    from .sensitivity import SQNR_FLOOR_DB, ort_input_producers, ort_sensitivity, ov_sensitivity

    # 1. Calibration: real per-click inputs from simulated sessions on the FP32 ONNX graphs.
    t0 = time.perf_counter()
    seed = cal_set.seed
    shas = {r: sha256_file(tmp / _fp32_onnx(r)) for r in ROLES}
    cache = None if cache_dir is None else Path(cache_dir)
    recs = record_calibration(tmp, cal_set, shas, cache, progress, log)
    card["calibration"] = {**cal_set.card(), **{k: v for k, v in recs.meta.items() if k != "key"},
                           "cache_key": recs.meta.get("key")}
    _time(timings, "calibration_s", t0)
    log(f"calibration: {recs.count('segmentor')} recorded inputs per graph from "
        f"{card['calibration'].get('images_used')} images ({cal_set.source})")

    # 2. Held-out reference sessions (FP32 clicks and masks, and the graph inputs they fed).
    t0 = time.perf_counter()
    ds, idx, held_out = ag.holdout_indices(cal_set)
    refs, held_feeds = ag.reference_sessions(tmp, ds, idx, seed)
    _time(timings, "reference_sessions_s", t0)

    # 3. OpenVINO FP32/FP16 vs ONNX Runtime again, now also on recorded per-click inputs (FP16, optional,
    # is left out if it fails here: export/openvino_export.py).
    t0 = time.perf_counter()
    fp16_rejected = {"fp16": ""}
    for role in ROLES:
        n = recs.count(role)
        pick = sorted({int(i) for i in np.linspace(0, n - 1, min(VERIFY_RECORDS, n))})
        precisions = [p for b, p in ModelDir(tmp, card).available() if b == "openvino" and p in ("fp32", "fp16")]
        card["verification"]["openvino_vs_onnx_max_abs_diff"][role] = _merge_max(
            card["verification"]["openvino_vs_onnx_max_abs_diff"][role],
            check_openvino_ir(tmp, role, recs.feed_list(role, pick), precisions, rejected=fp16_rejected),
        )
    if fp16_rejected["fp16"]:
        leave_out_fp16(tmp, card, fp16_rejected["fp16"], per_file_s, log)
        write_card()
    card["verification"]["openvino_inputs"] = (
        f"bundled sample + {min(VERIFY_RECORDS, recs.count('segmentor'))} recorded per-click calls per graph")
    _time(timings, "openvino_check_s", t0)

    # 4. Quantize. The Refiner's float tail is decided by measurement on calibration inputs (the
    # held-out ones stay unseen until the agreement figures).
    caps = int8_capabilities()
    reduce_range = bool(caps["reduce_range"])
    quant: dict[str, Any] = {"cpu": caps, "why": dict(WHY), "onnxruntime": {}, "openvino": {}}
    t_q = time.perf_counter()
    jobs = [(b, r) for r in ("refiner", "segmentor") for b in BACKENDS]
    bar = tqdm(jobs, desc="INT8 quantization", unit="graph", disable=not progress, leave=False)
    tail_report: dict[str, Any] = {}
    for backend, role in bar:
        bar.set_postfix(graph=f"{backend}/{role}")
        feeds = recs.feed_list(role)
        rel = graph_relpath(role, backend, "int8")
        t0 = time.perf_counter()
        # Read once per graph, not on every (re-)quantization below.
        ort_float = _ort_float_head(tmp / _fp32_onnx(role), variant, role) if backend == "onnxruntime" else []

        def quantize(keep_float: list[str] | None, path: Path, *, _b: str = backend, _r: str = role,
                     _f: list = feeds, _x: list[str] = ort_float) -> dict[str, Any]:
            if _b == "onnxruntime":
                return quantize_onnx(tmp / _fp32_onnx(_r), path, _f, reduce_range, keep_float=keep_float,
                                     extra_exclude=_x,
                                     op_types=ORT_OP_TYPES, progress=progress, desc=f"ORT calibration ({_r})")
            return quantize_openvino(tmp / _fp32_onnx(_r), path, _f, variant.family, _r,
                                     keep_float=keep_float, progress=progress)

        recipe = quantize(None, tmp / rel)
        if role == "refiner" and backend == "openvino":
            # Measure what the float tail buys on this model; keep whichever is closer to FP32. (ONNX
            # Runtime quantizes only Conv / MatMul / Gemm, none of which is in the tail.)
            alt = tmp / graph_relpath(role, "openvino", "tail")
            quantize([], alt)
            fp32 = _load(tmp / _fp32_onnx(role), "onnxruntime")
            pick = sorted({int(i) for i in np.linspace(0, len(feeds) - 1, min(TAIL_RECORDS, len(feeds)))})
            probe = [feeds[i] for i in pick]
            with_tail = ag.output_error(_load(tmp / rel, backend), fp32, probe)
            without = ag.output_error(_load(alt, backend), fp32, probe)
            keep = with_tail["rel_mean_abs_err"] <= without["rel_mean_abs_err"]
            decision = "tail float" if keep else "tail and logits convs int8 (measured closer to FP32)"
            tail_report[backend] = {"tail_float": with_tail, "tail_int8": without, "decision": decision}
            if not keep:
                recipe = quantize([], tmp / rel)
            remove_graph(alt)
        # Layers whose int8 input is mostly noise go back to float (one re-quantization at most).
        pick = sorted({int(i) for i in np.linspace(0, len(feeds) - 1, min(SENSITIVITY_RECORDS, len(feeds)))})
        rank = ort_sensitivity if backend == "onnxruntime" else ov_sensitivity
        low = [(db, name) for db, name in rank(tmp / rel, [feeds[i] for i in pick]) if db < SQNR_FLOOR_DB]
        producers: list[str] = []
        if low:
            names = [name for _, name in low]
            if backend == "onnxruntime":
                producers = [n for n in ort_input_producers(tmp / rel, names) if n not in names]
                recipe = quantize(list(recipe["kept_float"]) + names + producers, tmp / rel)
            else:
                recipe = quantize(list(recipe["ignored_scope"]) + names, tmp / rel)
        if backend == "openvino" and role == "segmentor" and variant.family == "segformer":
            recipe = _float_search(tmp, rel, role, feeds, recipe, quantize, progress, log)
        recipe["sqnr_floor_db"] = SQNR_FLOOR_DB
        recipe["low_sqnr_float"] = [f"{name} ({db} dB)" for db, name in low]
        if producers:
            recipe["low_sqnr_producers_float"] = producers
        per_file_s[rel] = round(time.perf_counter() - t0, 2)
        quant[backend][role] = recipe
        card["files"].append(file_entry(tmp, rel, role, backend, "int8"))
    bar.close()
    tail_report["onnxruntime"] = "float by construction: only Conv / MatMul / Gemm are quantized"
    quant["refiner_tail"] = tail_report
    quant["runs"] = {f"{r.backend}/int8": {"segmentor": "int8", "refiner": r.refiner_precision}
                     for r in RUNS if r.precision == "int8"}
    quant["why"]["runs"] = (
        "int8 sessions pair the int8 Segmentor with the fp32 Refiner: ORT's QDQ Refiner is slower than its "
        "fp32 graph (bench, 2 threads, b0-s1 6.5 vs 4.1 ms, hrnet18s-s2 7.6 vs 4.4 ms), OpenVINO's is no "
        "faster (AMX Xeon 4.96 vs 4.19 ms), and int8 rounding in the Refiner flips boundary pixels (shipped "
        "b0-s1, GrabCut NoC@90 ov-int8 6.34 with it, 5.70 without, ov-fp32 5.82); the int8 Refiners are "
        "still written (Session(..., refiner_precision='int8'); --run auto takes the OpenVINO one where it "
        "times faster and agreement['openvino/int8+refiner-int8'] passes)"
    )
    timings["quantization_s"] = round(time.perf_counter() - t_q, 2)
    card["quantization"] = quant
    write_card()

    # 5. Agreement with FP32 on the held-out sessions (and optional accuracy control).
    t0 = time.perf_counter()
    agreement: dict[str, Any] = {
        "reference": "onnxruntime fp32",
        "protocol": (f"{len(refs)} sessions on {len(refs) // 2} images: NoC clicker from scratch "
                     f"({ag.SCRATCH_CLICKS} clicks) and from a generated initial mask ({ag.INIT_MASK_CLICKS} "
                     "clicks) driven by FP32; each model replays the same clicks; IoU of its mask with "
                     "FP32's after every click (mean_iou, min_iou, final_mean_iou); stepwise_*: the same "
                     "clicks, each from the FP32 session's exact state"),
        "held_out": held_out,
        "images": sorted({r.name for r in refs}),
    }
    runs = ModelDir(tmp, card).runs()  # OpenVINO FP16 may have been left out; bf16 needs this CPU to have it
    for spec in (get_run(r) for r in runs):
        if spec.precision != "fp32":
            agreement[f"{spec.backend}/{spec.precision}"] = ag.measure(tmp, spec.backend, spec.precision, refs)
    if "ov-bf16" not in runs:
        agreement["openvino/bf16"] = {"not_measured": "the export CPU has no native bf16 (AVX512-BF16 / AMX): "
                                      "--run auto leaves ov-bf16 out; measure it on such a CPU"}
    # The other pairings --run auto may take where their Refiner times faster (run_choice.py).
    for ref_p in OV_INT8_OTHER_REFINERS:
        if run_supported(with_refiner(get_run("ov-int8"), ref_p)):
            agreement[pairing_key(ref_p)] = ag.measure(tmp, "openvino", "int8", refs, refiner_precision=ref_p)
    quant["agreement"] = agreement
    _time(timings, "agreement_s", t0)

    if max_drop is not None:
        from .accuracy import accuracy_control

        t0 = time.perf_counter()
        agreement["before_accuracy_control"] = {f"{b}/int8": agreement[f"{b}/int8"] for b in BACKENDS}
        quant["accuracy_control"] = accuracy_control(
            tmp, card, variant, recs, cal_set, refs, max_drop, reduce_range, write_card, progress, log,
            per_file_s)
        for backend in BACKENDS:
            agreement[f"{backend}/int8"] = ag.measure(tmp, backend, "int8", refs)
        _time(timings, "accuracy_control_s", t0)
    # Per-graph logits vs FP32 on the held-out sessions' inputs (after accuracy control, if any), and a
    # quick latency check: int8 pays off in the Segmentor; the tiny depthwise Refiner may not gain.
    t0 = time.perf_counter()
    latency: dict[str, Any] = {
        "note": (f"median of {LATENCY_RUNS} runs per graph on one held-out input at export time, on the "
                 "export machine and whatever else it was running: a sanity check, not a benchmark "
                 "(use the bench command)"),
    }
    for backend in BACKENDS:
        latency[backend] = {}
        for role in ROLES:
            rel = graph_relpath(role, backend, "int8")
            fp32 = _load(tmp / _fp32_onnx(role), "onnxruntime")
            int8 = _load(tmp / rel, backend)
            quant[backend][role]["output_vs_fp32_held_out"] = ag.output_error(int8, fp32, held_feeds[role])
            fp32_same = fp32 if backend == "onnxruntime" else _load(tmp / graph_relpath(role, backend, "fp32"), backend)
            feed = held_feeds[role][len(held_feeds[role]) // 2]
            latency[backend][role] = {"fp32": _median_ms(fp32_same, feed), "int8": _median_ms(int8, feed)}
    quant["latency_ms_quick"] = latency
    _time(timings, "checks_s", t0)
    write_card()


def _float_search(tmp: Path, rel: str, role: str, feeds: list[dict[str, np.ndarray]], recipe: dict[str, Any],
                  quantize: Callable[[list[str] | None, Path], dict[str, Any]], progress: bool, log: Log
                  ) -> dict[str, Any]:
    """OpenVINO SegFormer Segmentor: the layers the logits-error search (float_search.py) keeps float, on
    calibration inputs (the held-out ones stay unseen); re-quantizes ``rel`` when it keeps any."""
    from ..export.openvino_export import read_onnx
    from . import agreement as ag
    from .float_search import search

    t0 = time.perf_counter()
    base = list(recipe["ignored_scope"])
    names = [op.get_friendly_name() for op in read_onnx(tmp / _fp32_onnx(role)).get_ordered_ops()
             if op.get_type_name() in SEARCH_OP_TYPES and op.get_friendly_name() not in base]
    pick = sorted({int(i) for i in np.linspace(0, len(feeds) - 1, min(SEARCH_RECORDS, len(feeds)))})
    probe_feeds = [feeds[i] for i in pick]
    fp32 = _load(tmp / _fp32_onnx(role), "onnxruntime")
    probe = tmp / graph_relpath(role, "openvino", "search")

    def error(extra: list[str]) -> float:
        if not extra:  # the graph as it stands
            return ag.output_error(_load(tmp / rel, "openvino"), fp32, probe_feeds)["rel_mean_abs_err"]
        quantize(base + extra, probe)
        return ag.output_error(_load(probe, "openvino"), fp32, probe_feeds)["rel_mean_abs_err"]

    try:
        report = search(names, error, SEARCH_BUDGET_S, log if progress else None)
    finally:
        remove_graph(probe)
    if report["kept_float"]:
        recipe = quantize(base + report["kept_float"], tmp / rel)
    report["inputs"] = len(probe_feeds)
    report["metric"] = "logits rel. mean abs error vs ONNX Runtime FP32 on calibration inputs"
    report["seconds"] = round(time.perf_counter() - t0, 2)
    recipe["float_search"] = report
    log(f"float search ({role}): {len(report['kept_float'])} layer(s) kept float, logits error "
        f"{report['error_before']:.4f} -> {report['error_after']:.4f} in {report['seconds']:.0f} s")
    return recipe


def _fp32_onnx(role: str) -> str:
    return graph_relpath(role, "onnxruntime", "fp32")


def _ort_float_head(path: Path, variant: Variant, role: str) -> list[str]:
    """ONNX Runtime: the folded SegFormer decode head (export/head_folding.py) stays float.

    Its convs are tiny (b0: ~16 M MACs in all), and their upsampled sums run in ORT's fast blocked-layout
    Resize only in float; quantized, the Resizes fall back to the plain kernel. Measured on the b0-s1
    Segmentor (2 threads, two repeats): 6.7 / 7.1 ms with the head float vs 7.4 / 8.1 ms all-int8 (fp32
    graph 7.4 / 7.9 ms). The same rule on HRNet's fuse-layer convs (which also feed Resizes) was slower
    (35.4 vs 31.7 ms), so it is tied to the folded head, not to Resize in general."""
    if variant.family != "segformer" or role != "segmentor":
        return []
    import onnx

    return [n.name for n in onnx.load(str(path)).graph.node if n.op_type == "Conv" and "folded_head" in n.name]


def _median_ms(model: Any, feed: dict[str, np.ndarray]) -> float:
    for _ in range(2):  # warm-up: first runs allocate and pick kernels
        model.run(feed)
    times = []
    for _ in range(LATENCY_RUNS):
        t0 = time.perf_counter()
        model.run(feed)
        times.append(time.perf_counter() - t0)
    return round(float(np.median(times)) * 1e3, 2)


def _merge_max(a: dict[str, dict[str, float]], b: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    out = {p: dict(v) for p, v in a.items()}
    for p, outs in b.items():
        for k, v in outs.items():
            out.setdefault(p, {})[k] = max(out.get(p, {}).get(k, 0.0), v)
    return out


def _load(path: Path, backend: str) -> Any:
    from ..runtime.backends import compile_model

    return compile_model(path, backend)
