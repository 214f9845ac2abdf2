"""``--run auto``: the fastest run of a model directory whose recorded accuracy passes, on this CPU.

The export times every graph it wrote (``time_graphs``) and records the milliseconds with the CPU
fingerprint in ``model_card.json["run_timings"]``. ``choose_run`` reads them back; when this CPU's
fingerprint differs from the export's (or the card has none), it re-times the graphs here within a
small budget (default 1 s of graph runs). Rules:

* a run's per-click cost is its Segmentor plus its Refiner (one run each per click);
* INT8 runs must pass the card's recorded agreement with FP32 (``quantization.agreement``:
  ``stepwise_mean_iou`` >= ``ACCURACY_FLOOR``), FP16 and BF16 likewise; FP32 runs always pass;
* runs this CPU cannot compute (ov-bf16 without native bf16) are not candidates (``ModelDir.runs``);
* an INT8 (or BF16) run slower than its FP32 baseline on this CPU is never chosen;
* OpenVINO INT8 pairs its Segmentor with whichever Refiner is faster here -- FP32, INT8, or the FP32 IR in
  bf16 where the CPU has it -- among those whose pairing's recorded agreement passes (ONNX Runtime's INT8
  run pairs with the FP32 Refiner, runtime/runs.py).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from .backends import compile_model, run_supported
from .model_dir import ModelDir
from .runs import ROLES, RunSpec, get_run, with_refiner

# Stepwise mean IoU with FP32 (same state, one click) a run must keep: as faithful as the INT8 runs that hold
# NoC. On the shipped b0-s1 those recorded 0.983-0.985; ov-bf16 (its Segmentor's logits 0.09 of their spread
# off FP32, the INT8 one's 0.01) records 0.974 and stays out. NoC@90 of all of them against ov-fp32: README.
ACCURACY_FLOOR = 0.98
_FINGERPRINT_KEYS = ("model", "vendor", "machine", "isa", "amx_flags")
_DTYPES = {"float32": np.float32, "float16": np.float16, "int64": np.int64}


def _fingerprint() -> dict[str, Any]:
    from ..hardware import cpu_fingerprint

    fp = cpu_fingerprint()
    return {k: fp.get(k) for k in _FINGERPRINT_KEYS}


def _graphs(md: ModelDir) -> list[tuple[str, str, str]]:
    """(role, backend, precision) of every graph file in the directory, and of every graph a run of it
    computes at another precision on this CPU (ov-bf16: the FP32 IR in bf16)."""
    graphs = {(f["role"], f["backend"], f["precision"]) for f in md.card["files"] if "role" in f}
    for rid in md.runs():
        spec = get_run(rid)
        graphs.update((role, spec.backend, spec.precision_of(role)) for role in ROLES)
    return sorted(graphs)


def _feeds(md: ModelDir, role: str) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    feeds = {}
    for spec in md.card["graphs"][role]["inputs"]:
        shape = [int(d) if isinstance(d, int) and d > 0 else 1 for d in spec["shape"]]
        feeds[spec["name"]] = rng.random(shape).astype(_DTYPES.get(spec.get("dtype", "float32"), np.float32))
    return feeds


def time_graphs(model_dir: str | Path, threads: int | None = None, budget_s: float = 1.0) -> dict[str, Any]:
    """Median milliseconds of one inference of every graph in ``model_dir``, the graph runs sharing
    ``budget_s`` seconds (at least 3 runs each after one warm-up); compile time reported apart."""
    md = ModelDir.open(model_dir)
    graphs = _graphs(md)
    compiled, t0 = {}, time.perf_counter()
    for role, backend, precision in graphs:
        compiled[(role, backend, precision)] = compile_model(md.graph_file(role, backend, precision), backend,
                                                             precision, threads)
    compile_s = time.perf_counter() - t0
    feeds = {role: _feeds(md, role) for role in ("segmentor", "refiner")}
    samples: dict[tuple[str, str, str], list[float]] = {g: [] for g in graphs}
    for g, model in compiled.items():
        model.run(feeds[g[0]])  # warm-up
    t_end = time.perf_counter() + budget_s
    while True:  # round-robin so that a shared machine's drift hits every graph alike
        for g, model in compiled.items():
            t = time.perf_counter()
            model.run(feeds[g[0]])
            samples[g].append((time.perf_counter() - t) * 1e3)
        if time.perf_counter() > t_end and min(len(v) for v in samples.values()) >= 3:
            break
    return {
        "fingerprint": _fingerprint(), "threads": threads, "budget_s": budget_s,
        "compile_s": round(compile_s, 3), "timed_s": round(time.perf_counter() - t_end + budget_s, 3),
        "graphs_ms": {f"{b}/{r}/{p}": round(float(np.median(samples[(r, b, p)])), 3) for r, b, p in graphs},
    }


def pairing_key(refiner_precision: str) -> str:
    """Card key (quantization.agreement) of the ov-int8 Session paired with another Refiner than its FP32 one."""
    return f"openvino/int8+refiner-{refiner_precision}"


#: The INT8 Refiner pairing's key (the one every INT8 export measures).
OV_INT8_REFINER_KEY = pairing_key("int8")
#: Refiners ov-int8 may pair with besides its FP32 one: the INT8 graph, and the FP32 IR in bf16 (only on CPUs
#: with native bf16; on the AMX Xeon of docs/results b0-s1's Refiner 3.1 -> 2.1 ms at 0.05 % logits error).
OV_INT8_OTHER_REFINERS = ("int8", "bf16")


def _accuracy_ok(md: ModelDir, spec: RunSpec) -> tuple[bool, str]:
    if spec.precision == "fp32":
        return True, "FP32 reference"
    return _agreement_ok(md, f"{spec.backend}/{spec.precision}")


def _agreement_ok(md: ModelDir, key: str) -> tuple[bool, str]:
    agreement = (md.card.get("quantization") or {}).get("agreement") or {}
    rec = agreement.get(key)
    if not rec or "stepwise_mean_iou" not in rec:
        return False, "no recorded agreement with FP32 in the card"
    value = float(rec["stepwise_mean_iou"])
    return value >= ACCURACY_FLOOR, f"stepwise mean IoU with FP32 {value:.3f} (floor {ACCURACY_FLOOR})"


def choose_run(model_dir: str | Path, threads: int | None = None, budget_s: float = 1.0,
               retime: bool | None = None) -> tuple[RunSpec, dict[str, Any]]:
    """The fastest run of ``model_dir`` that passes its recorded accuracy, and a report of the choice:
    per-run milliseconds, where they came from (card or re-timed here), exclusions with reasons.
    ``retime``: None = only when this CPU differs from the export's; True/False force it."""
    md = ModelDir.open(model_dir)
    recorded = md.card.get("run_timings")
    same_cpu = bool(recorded) and recorded.get("fingerprint") == _fingerprint()
    do_retime = (not same_cpu) if retime is None else retime
    timing = time_graphs(model_dir, threads, budget_s) if do_retime else recorded
    ms = timing["graphs_ms"]
    runs: dict[str, float] = {}
    specs: dict[str, RunSpec] = {}
    excluded: dict[str, str] = {}
    for rid in md.runs():
        spec = get_run(rid)
        seg = ms.get(f"{spec.backend}/segmentor/{spec.precision}")
        if seg is None:
            excluded[rid] = "not timed"
            continue
        if spec.backend == "openvino" and spec.precision == "int8":
            # Another Refiner only where its own pairing's recorded agreement passes too: it draws the
            # boundary, and on the shipped b0-s1 the INT8 one cost NoC that the INT8 Segmentor alone did not.
            options = {p: ms[f"openvino/refiner/{p}"] for p in ("fp32", *OV_INT8_OTHER_REFINERS)
                       if f"openvino/refiner/{p}" in ms and (p == "fp32" or (
                           run_supported(with_refiner(spec, p)) and _agreement_ok(md, pairing_key(p))[0]))}
            if not options:
                excluded[rid] = "no refiner graph"
                continue
            spec = with_refiner(spec, min(options, key=options.get))
        ref = ms.get(f"{spec.backend}/refiner/{spec.refiner_precision}")
        if ref is None:
            excluded[rid] = "no refiner graph"
            continue
        ok, why = _accuracy_ok(md, spec)
        if not ok:
            excluded[rid] = why
            continue
        runs[spec.id], specs[spec.id] = seg + ref, spec  # the id names the Refiner pairing when it differs
    for rid in list(runs):
        base = specs[rid].baseline
        if base and base in runs and runs[rid] >= runs[base]:
            excluded[rid] = (f"{specs[rid].precision.upper()} {runs[rid]:.2f} ms is not faster than {base} "
                             f"{runs[base]:.2f} ms on this CPU")
            del runs[rid]
    if not runs:
        raise UserError(f"no run of {model_dir} passes its recorded accuracy here ({excluded}); pass --run explicitly")
    best = min(runs, key=runs.get)
    report = {
        "chosen": best, "refiner_precision": specs[best].refiner_precision,
        "source": "re-timed on this CPU" if do_retime else "export timings (same CPU)",
        "same_cpu_as_export": same_cpu, "per_click_graph_ms": {k: round(v, 3) for k, v in runs.items()},
        "excluded": excluded, "timing": {k: v for k, v in timing.items() if k != "fingerprint"},
    }
    return specs[best], report


def describe_choice(report: dict[str, Any]) -> str:
    """One line for the CLI."""
    times = ", ".join(f"{k} {v:.1f} ms" for k, v in sorted(report["per_click_graph_ms"].items(), key=lambda kv: kv[1]))
    excluded = "; ".join(f"{k}: {why}" for k, why in report["excluded"].items())
    return (f"--run auto chose {report['chosen']} (refiner {report['refiner_precision']}; {report['source']}: "
            f"{times}{'; excluded ' + excluded if excluded else ''})")


def resolve_run_arg(text: str, model_dir: str | Path, threads: int | None = None, log=print) -> str:
    """A CLI ``--run`` value: a run id as is (checked), or ``auto`` -> the chosen run id (choice logged)."""
    if text != "auto":
        return get_run(text).id
    spec, report = choose_run(model_dir, threads=threads)
    log(describe_choice(report))
    return spec.id
