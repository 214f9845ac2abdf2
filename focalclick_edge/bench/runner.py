"""`focalclick-edge bench`: per-click latency of every runtime configuration of a model directory.

Protocol (what the numbers mean):

* **Sessions are realistic.** One real image; clicks come from the standard NoC clicker
  (evaluation/clicker.py) against its ground-truth mask. The click list is generated once, by the
  first run (from its own predictions), and every other run -- and the PyTorch reference -- replays
  exactly that list, so every run does identical geometric work.
* **Warm-up excluded.** Before timing, each run plays ``warmup`` clicks (the generating run plays the
  whole clicker session) untimed; then ``sessions`` timed sessions of the full list on a fresh
  ``set_image``. Per stage p50 / p90 are over all timed clicks. Stage times are the runtime's own
  ``ClickResult.timings`` (perf_counter around each stage); the clicker itself is never timed.
* **One process per run.** Each run executes in a fresh Python subprocess (bench/worker.py), so one
  run's allocations, thread pools and caches cannot distort the next, and peak RSS is per run:
  ``peak_rss_mb`` is that process's high-water mark (``VmHWM`` in /proc/self/status; ``ru_maxrss``
  where /proc is missing) -- interpreter, libraries, model and session buffers, i.e. what an app
  running this configuration needs. ``model_rss_mb`` is the part above the process after importing
  NumPy, OpenCV and the backend library (``VmHWM`` at the end minus ``VmRSS`` before loading), i.e.
  what the model and the session add.
* **Load time** ``load_ms`` is ``Session.load_ms``: reading the card, checking the graph files'
  sha256, compiling both graphs (for torch: loading the checkpoint).
* **Budgets.** ``budget_ms`` is the paper's CPU Segmentor + Refiner time (4-core 2.4 GHz i5, from the
  variant registry); ``segmentor_vs_paper`` / ``refiner_vs_paper`` are our p50 over the paper's (< 1
  is faster). Our ``total`` also counts the crops and merges the paper's figures leave out.
* **Threads.** ``--threads`` (default: every CPU this process may use) goes to ONNX Runtime
  (intra-op; no spinning, see runtime/backends.py), OpenVINO (INFERENCE_NUM_THREADS, LATENCY hint)
  and torch (``set_num_threads``). The torch run gets ``OMP_WAIT_POLICY=PASSIVE`` unless the caller
  set it: ORT runs without spinning too, and with spinning OpenMP workers a machine with any other
  load made torch 5x slower (b0-s1 Segmentor on 2 busy cores: 208 ms vs 41 ms median), which would
  inflate every speed-up. The policy used is recorded as ``omp_wait_policy``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from ..hardware import available_cpus, cpu_fingerprint
from ..runtime.model_dir import ModelDir
from ..runtime.runs import RUN_IDS, TORCH_REFERENCE_RUN, get_run, select_available
from ..variants import get_variant

Log = Callable[[str], None]

# The run ids in the order runs are measured and printed (runtime/runs.py), and the PyTorch reference.
RUNS = RUN_IDS
TORCH_RUN = TORCH_REFERENCE_RUN
PAPER_CPU = "4-core 2.4 GHz Intel i5 (FocalClick paper)"


@dataclass
class BenchConfig:
    model_dir: Path
    runs: list[str] | None = None  # None: every run the model card lists
    threads: int | None = None  # None: every available CPU
    clicks: int = 20
    sessions: int = 3
    warmup: int = 3
    image: Path | None = None  # None: the bundled sample (with its mask)
    mask: Path | None = None
    vs_torch: bool = False
    checkpoint: Path | None = None
    # Rounds of all runs, one after the other (run A, B, ..., then A, B, ... again); each run's samples
    # are pooled over its rounds. A shared machine drifts over minutes, and interleaving spreads that
    # drift over every run instead of penalising whichever ran during a busy spell.
    rounds: int = 1
    # Extra environment for the run processes (e.g. OMP_WAIT_POLICY to study torch's thread spinning).
    extra_env: dict[str, str] = field(default_factory=dict)


def available_runs(md: ModelDir) -> list[str]:
    """Run ids the model directory has files for, in run-table order."""
    return md.runs()


def select_runs(md: ModelDir, requested: list[str] | None) -> list[str]:
    return select_available(requested or None, md.runs(), str(md.path))


def resolve_inputs(image: Path | None, mask: Path | None) -> tuple[Path, Path]:
    if image is None and mask is None:
        from ..assets import sample_image_paths

        return sample_image_paths()
    if image is None or mask is None:
        raise UserError("pass --image and --mask together: the clicker places clicks against the mask")
    for p, what in ((image, "image"), (mask, "mask")):
        if not Path(p).is_file():
            raise UserError(f"--{what} {p} does not exist")
    return Path(image), Path(mask)


# ------------------------------------------------------------------------------------------ statistics
def stage_stats(samples: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    return {
        stage: {"p50": float(np.percentile(v, 50)), "p90": float(np.percentile(v, 90)),
                "mean": float(np.mean(v)), "min": float(np.min(v))}
        for stage, v in samples.items()
    }


def summarize(raw: dict[str, Any], variant_id: str) -> dict[str, Any]:
    """A run's JSON entry from the worker's raw samples."""
    v = get_variant(variant_id)
    stages = stage_stats(raw["samples"])
    seg, ref, total = stages["segmentor"]["p50"], stages["refiner"]["p50"], stages["total"]["p50"]
    return {
        "backend": raw["backend"],
        "precision": raw["precision"],
        "refiner_precision": raw.get("refiner_precision", raw["precision"]),
        "total_ms_p50": total,
        "total_ms_p90": stages["total"]["p90"],
        "stages": stages,
        "budget_ms": v.paper_budget_ms,
        "paper_segmentor_ms": v.paper_cpu_ms_segmentor,
        "paper_refiner_ms": v.paper_cpu_ms_refiner,
        "segmentor_ms_p50": seg,
        "refiner_ms_p50": ref,
        "segmentor_vs_paper": seg / v.paper_cpu_ms_segmentor,
        "refiner_vs_paper": ref / v.paper_cpu_ms_refiner,
        "total_vs_budget": total / v.paper_budget_ms,
        "load_ms": raw["load_ms"],
        "peak_rss_mb": raw["peak_rss_mb"],
        "model_rss_mb": raw["model_rss_mb"],
        "clicks_timed": len(raw["samples"]["total"]),
    }


def add_speedups(result: dict[str, Any]) -> None:
    """Each run's speed-up over the PyTorch reference (p50 ratios: total, Segmentor, Refiner)."""
    ref = result.get(TORCH_RUN)
    if not ref:
        return
    for entry in result["runs"].values():
        entry["speedup_vs_torch"] = ref["total_ms_p50"] / entry["total_ms_p50"]
        entry["segmentor_speedup_vs_torch"] = ref["segmentor_ms_p50"] / entry["segmentor_ms_p50"]
        entry["refiner_speedup_vs_torch"] = ref["refiner_ms_p50"] / entry["refiner_ms_p50"]


# ------------------------------------------------------------------------------------------ workers
def _run_worker(spec: dict[str, Any], extra_env: dict[str, str]) -> dict[str, Any]:
    """Measure one run in a fresh interpreter (bench/worker.py) and return its raw result."""
    with tempfile.TemporaryDirectory(prefix="fce-bench-") as td:
        spec_path, out_path = Path(td) / "spec.json", Path(td) / "result.json"
        spec_path.write_text(json.dumps(spec))
        env = {**os.environ, **extra_env}
        proc = subprocess.run(
            [sys.executable, "-m", "focalclick_edge.bench.worker", str(spec_path), str(out_path)],
            capture_output=True, text=True, env=env, check=False,
        )
        if proc.returncode != 0 or not out_path.is_file():
            tail = "\n".join((proc.stderr or proc.stdout or "").strip().splitlines()[-6:])
            raise UserError(f"benchmark run {spec['run']} failed (exit {proc.returncode}):\n{tail}")
        return json.loads(out_path.read_text())


def run_bench(cfg: BenchConfig, log: Log = print) -> dict[str, Any]:
    md = ModelDir.open(cfg.model_dir)
    runs = select_runs(md, cfg.runs)
    if cfg.clicks < 1 or cfg.sessions < 1 or cfg.warmup < 0 or cfg.rounds < 1:
        raise UserError("--clicks, --sessions and --rounds must be at least 1 and --warmup at least 0")
    threads = int(cfg.threads) if cfg.threads else available_cpus()
    if threads < 1:
        raise UserError("--threads must be at least 1")
    image, mask = resolve_inputs(cfg.image, cfg.mask)
    checkpoint = None
    if cfg.vs_torch:
        from .torch_reference import resolve_checkpoint

        checkpoint = resolve_checkpoint(md.card, cfg.checkpoint)
    variant = md.variant
    base = {
        "model_dir": str(Path(cfg.model_dir).resolve()), "threads": threads, "image": str(image),
        "mask": str(mask), "clicks": cfg.clicks, "sessions": cfg.sessions, "warmup": cfg.warmup,
    }
    result: dict[str, Any] = {
        "variant": variant,
        "threads": threads,
        "cpu": cpu_fingerprint(threads),
        "image": {"path": str(image), "mask": str(mask)},
        "protocol": {
            "clicks_per_session": cfg.clicks, "timed_sessions": cfg.sessions, "warmup_clicks": cfg.warmup,
            "clicks": "NoC clicker against the mask, generated by the first run and replayed by all; "
                      "click_list rows are (x, y, positive)",
            "statistic": "p50 / p90 over all timed clicks, milliseconds",
            "isolation": "one subprocess per run and round",
            "rounds": cfg.rounds,
            "pooling": "all runs once per round, in order; a run's clicks pooled over its rounds; load_ms is "
                       "the median and peak RSS the maximum over rounds",
            "peak_rss": "VmHWM of the run's process (ru_maxrss without /proc); model_rss_mb = VmHWM - "
                        "VmRSS after importing the libraries, before loading the model",
        },
        "paper": {"cpu": PAPER_CPU, **_paper(variant)},
        "load_avg": {"start": _load_avg()},
        "runs": {},
    }
    click_list: list[list[Any]] | None = None
    order = [*runs, TORCH_RUN] if cfg.vs_torch else runs
    raws: dict[str, list[dict[str, Any]]] = {}
    for rnd in range(cfg.rounds):
        for rid in order:
            spec = None if rid == TORCH_RUN else get_run(rid)
            backend, precision = ("torch", "fp32") if spec is None else (spec.backend, spec.precision)
            of = f" (round {rnd + 1}/{cfg.rounds})" if cfg.rounds > 1 else ""
            log(f"bench {variant} {rid}: {cfg.sessions} x {cfg.clicks} clicks on {threads} thread(s){of} ...")
            job = {**base, "run": rid, "backend": backend, "precision": precision, "click_list": click_list,
                   "checkpoint": str(checkpoint) if checkpoint else None}
            raw = _run_worker(job, _run_env(rid, cfg.extra_env))
            if click_list is None:
                click_list = raw["click_list"]
                result["image"]["hw"] = raw["image_hw"]
                result["protocol"]["click_list"] = click_list
            raws.setdefault(rid, []).append(raw)
    for rid in order:
        raw, env = pool_rounds(raws[rid]), _run_env(rid, cfg.extra_env)
        entry = summarize(raw, variant)
        if rid == TORCH_RUN:
            entry["torch_threads"] = raw.get("torch_threads")
            entry["omp_wait_policy"] = env.get("OMP_WAIT_POLICY", os.environ.get("OMP_WAIT_POLICY"))
            result[TORCH_RUN] = entry
        else:
            result["runs"][rid] = entry
    add_speedups(result)
    result["load_avg"]["end"] = _load_avg()
    return result


def _run_env(rid: str, extra_env: dict[str, str]) -> dict[str, str]:
    env = dict(extra_env)
    if rid == TORCH_RUN and "OMP_WAIT_POLICY" not in os.environ and "OMP_WAIT_POLICY" not in env:
        env["OMP_WAIT_POLICY"] = "PASSIVE"  # a fair baseline: see "Threads" above
    return env


def pool_rounds(raws: list[dict[str, Any]]) -> dict[str, Any]:
    """One run's worker results over several rounds as one: samples concatenated, median load time,
    largest peak RSS."""
    out = dict(raws[0])
    out["samples"] = {k: [x for r in raws for x in r["samples"][k]] for k in raws[0]["samples"]}
    out["load_ms"] = float(np.median([r["load_ms"] for r in raws]))
    out["peak_rss_mb"] = max(r["peak_rss_mb"] for r in raws)
    out["model_rss_mb"] = max(r["model_rss_mb"] for r in raws)
    return out


def _load_avg() -> list[float] | None:
    """1/5/15-minute load averages: other work on the machine inflates every timing, so say so."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):  # not on Windows
        return None


def _paper(variant_id: str) -> dict[str, float]:
    v = get_variant(variant_id)
    return {"segmentor_ms": v.paper_cpu_ms_segmentor, "refiner_ms": v.paper_cpu_ms_refiner,
            "budget_ms": v.paper_budget_ms}
