"""The table of runs: every runtime configuration a model directory can hold, one ``RunSpec`` a row.

A run is a backend plus the precision of each of the two graphs. Everything that names runs reads this
table: the exporter's file list and next commands, ``ModelDir`` lookups, the Session's Refiner pairing,
``--runs`` parsing in ``eval`` and ``bench``, the available-runs check and the INT8-vs-FP32 gates. A
new run is one row; a new backend is rows plus its ``CompiledModel`` (runtime/backends.py) and its
entry in ``BACKEND_ALIASES`` / ``graph_relpath``.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import UserError

ROLES = ("segmentor", "refiner")
BACKENDS = ("onnxruntime", "openvino")
PRECISIONS = ("fp32", "fp16", "int8", "bf16")
#: Precisions that are a compile setting, not a file: the graph file they run (OpenVINO's FP32 IR compiled
#: with ``INFERENCE_PRECISION_HINT=bf16`` computes in bf16 on CPUs that have it natively).
FILE_PRECISION = {"bf16": "fp32"}
#: What the CPU must compute natively for a precision (names of ``backends.cpu_features``); others run anywhere.
CPU_FEATURE = {"bf16": "BF16"}
BACKEND_ALIASES = {"ort": "onnxruntime", "onnxruntime": "onnxruntime", "ov": "openvino", "openvino": "openvino"}
OPENVINO_DIR = "openvino"
#: ``bench --vs-torch``: our PyTorch FP32 eager modules behind the same Session (not a model-directory run).
TORCH_REFERENCE_RUN = "torch-fp32"


def file_precision(precision: str) -> str:
    """The precision of the graph file a precision runs (itself, or its FILE_PRECISION)."""
    return FILE_PRECISION.get(precision, precision)


def graph_relpath(role: str, backend: str, precision: str) -> str:
    """Where a graph file lives inside a model directory (the only place these names are spelled)."""
    precision = file_precision(precision)
    if backend == "onnxruntime":
        return f"{role}.{precision}.onnx"
    if backend == "openvino":
        return f"{OPENVINO_DIR}/{role}.{precision}.xml"
    raise UserError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")


@dataclass(frozen=True)
class RunSpec:
    """One runtime configuration.

    ``refiner_precision`` is the Refiner graph a Session of this run loads by default: ONNX Runtime's
    INT8 Refiner is slower than its FP32 one -- a ~0.01 M-parameter depthwise net at 128x128 is bound
    by memory traffic, and QDQ adds a quantize/dequantize pass around every conv -- (bench, 2 threads,
    AVX512-VNNI Xeon: b0-s1 6.5 vs 4.1 ms, hrnet18s-s2 7.6 vs 4.4 ms) and it moves the mask more, so
    ``ort-int8`` pairs the INT8 Segmentor with the FP32 Refiner. ``ov-int8`` does the same: the Refiner
    draws the boundary inside the Focus Crop, exactly where NoC@90 is decided, and its int8 rounding
    flips pixels there (shipped b0-s1, GrabCut NoC@90: ov-int8 6.34 with the INT8 Refiner, 5.70 with
    the FP32 one, ov-fp32 5.82), while OpenVINO's INT8 Refiner is no faster (2 threads, AMX Xeon: 4.96
    vs 4.19 ms). ``--run auto`` takes the INT8 Refiner where it times faster and that pairing's own
    recorded agreement passes (run_choice.py).
    ``baseline`` is the FP32 run an INT8 (or bf16) run is compared with (``eval --max-noc-drop``), None
    for runs that are not gated.
    """

    id: str
    backend: str
    precision: str
    refiner_precision: str
    baseline: str | None = None

    @property
    def cpu_feature(self) -> str | None:
        """What the CPU must have for this run to exist on it (CPU_FEATURE of either graph's precision), None
        for runs every CPU has."""
        return next((CPU_FEATURE[p] for p in (self.precision, self.refiner_precision) if p in CPU_FEATURE), None)

    def precision_of(self, role: str) -> str:
        return self.refiner_precision if role == "refiner" else self.precision

    def graph_file(self, role: str) -> str:
        """The model-directory path of this run's ``role`` graph."""
        return graph_relpath(role, self.backend, self.precision_of(role))

    @property
    def files(self) -> dict[str, str]:
        """Role -> graph file this run loads."""
        return {role: self.graph_file(role) for role in ROLES}


RUNS: tuple[RunSpec, ...] = (
    RunSpec("ort-fp32", "onnxruntime", "fp32", "fp32"),
    RunSpec("ort-int8", "onnxruntime", "int8", "fp32", baseline="ort-fp32"),
    RunSpec("ov-fp32", "openvino", "fp32", "fp32"),
    RunSpec("ov-fp16", "openvino", "fp16", "fp16"),
    RunSpec("ov-int8", "openvino", "int8", "fp32", baseline="ov-fp32"),
    # The FP32 IR in bf16 (AMX / AVX512-BF16 CPUs only): on the AMX Xeon of docs/results, b0-s1's Refiner
    # 3.1 -> 2.1 ms and its Segmentor 3.4 -> 2.6 ms (the INT8 one: 3.0), 2 threads.
    RunSpec("ov-bf16", "openvino", "bf16", "bf16", baseline="ov-fp32"),
)
RUN_IDS: tuple[str, ...] = tuple(r.id for r in RUNS)
_BY_ID = {r.id: r for r in RUNS}
_BY_PAIR = {(r.backend, r.precision): r for r in RUNS}
#: What ``export`` writes: (backend, precision) pairs, FP32/FP16 always, INT8 with ``--int8``.
EXPORTED_FLOAT = tuple((r.backend, r.precision) for r in RUNS if r.precision not in ("int8", *FILE_PRECISION))
EXPORTED_INT8 = tuple((r.backend, r.precision) for r in RUNS if r.precision == "int8")


#: A run of the table with another Refiner than its own, spelled ``RUN+refiner-PRECISION`` (``ov-int8+refiner-bf16``):
#: what ``--run auto`` may choose, and what eval / bench / serve then run.
PAIRING_SEP = "+refiner-"


def get_run(run_id: str) -> RunSpec:
    base, sep, refiner = run_id.partition(PAIRING_SEP)
    spec = _BY_ID.get(base)
    if spec is None or (sep and refiner not in PRECISIONS):
        raise UserError(f"unknown run {run_id!r}; choose from: {', '.join(RUN_IDS)} (optionally +refiner-P with P one "
                        f"of {', '.join(PRECISIONS)}, e.g. ov-int8+refiner-bf16)") from None
    if not sep or refiner == spec.refiner_precision:
        return spec
    return RunSpec(run_id, spec.backend, spec.precision, refiner, spec.baseline)


def with_refiner(spec: RunSpec, refiner_precision: str) -> RunSpec:
    """``spec`` paired with another Refiner (its table id back when that is the table's own pairing)."""
    return get_run(base_id(spec.id) + PAIRING_SEP + refiner_precision)


def base_id(run_id: str) -> str:
    """The table row a run id names (``ov-int8+refiner-bf16`` -> ``ov-int8``)."""
    return run_id.partition(PAIRING_SEP)[0]


def run_for(backend: str, precision: str) -> RunSpec | None:
    """The run of a backend / precision pair (None when the table has none)."""
    return _BY_PAIR.get((backend, precision))


def backend_name(text: str) -> str:
    """``ort`` / ``ov`` / full names -> the backend name; a one-line error otherwise."""
    backend = BACKEND_ALIASES.get(text)
    if backend is None:
        raise UserError(f"unknown backend {text!r}; choose onnxruntime (ort) or openvino (ov)")
    return backend


def refiner_precision_for(backend: str, precision: str) -> str:
    """The Refiner precision a Session of backend / precision loads when none is asked for."""
    spec = run_for(backend, precision)
    return spec.refiner_precision if spec is not None else precision


def runs_in(pairs: Iterable[tuple[str, str]]) -> list[str]:
    """Run ids whose graph files' (backend, precision) are among ``pairs`` (e.g. a model card's files),
    table order; runs that need a CPU feature included (``ModelDir.runs`` keeps those this CPU has)."""
    have = set(pairs)
    return [r.id for r in RUNS if (r.backend, file_precision(r.precision)) in have]


def parse_run_list(text: str) -> list[str]:
    """``"ort-fp32, ov-int8"`` -> known run ids, duplicates dropped, order kept; one-line errors."""
    runs = list(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))
    if not runs:
        raise UserError(f"--runs {text!r} names no run; pass e.g. --runs ort-fp32,ov-fp32")
    for r in runs:
        get_run(r)
    return runs


def select_available(requested: Iterable[str] | None, have: list[str], where: str) -> list[str]:
    """``requested`` (None: all of ``have``) checked against the runs a model directory has."""
    if not have:
        raise UserError(f"{where} lists no graph files for any run; re-export it")
    if requested is None:
        return list(have)
    runs = list(dict.fromkeys(requested))
    for r in runs:
        get_run(r)
    missing = [r for r in runs if base_id(r) not in have]
    for r in missing:
        spec = get_run(base_id(r))
        sibling = run_for(spec.backend, file_precision(spec.precision))
        if spec.cpu_feature and sibling is not None and sibling.id in have:  # the files are there: the CPU is not
            raise UserError(f"{r} needs a CPU with native {spec.cpu_feature.lower()} (AVX512-BF16 or AMX) and this one "
                            f"has none; use {sibling.id} or another run of: {', '.join(have)}")
    if missing:
        raise UserError(f"{where} has no {', '.join(missing)} model (it has no files for {', '.join(missing)}; it "
                        f"has: {', '.join(have)}); re-export with the matching options (e.g. --int8) or drop it "
                        "from --runs")
    if not runs:
        raise UserError("--runs is empty; pass e.g. --runs ort-fp32,ov-fp32")
    return runs


def gated_pairs(runs: Iterable[str]) -> list[tuple[str, str]]:
    """(run, baseline) for each run of ``runs`` that has an FP32 baseline."""
    specs = [get_run(r) for r in runs if base_id(r) in _BY_ID]
    return [(s.id, s.baseline) for s in specs if s.baseline]  # type: ignore[misc]


__all__ = ["BACKENDS", "BACKEND_ALIASES", "CPU_FEATURE", "FILE_PRECISION", "PAIRING_SEP", "PRECISIONS", "ROLES",
           "RUNS", "RUN_IDS", "TORCH_REFERENCE_RUN", "RunSpec", "backend_name", "base_id", "file_precision",
           "gated_pairs", "get_run", "graph_relpath", "parse_run_list", "refiner_precision_for", "run_for", "runs_in",
           "select_available", "with_refiner"]
