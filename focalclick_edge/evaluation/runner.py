"""All samples x all runs, in one process or in ``workers`` processes.

Work is split by sample: a task is one sample of one dataset, and it runs that sample through every
run (so the image is decoded and the initial mask made or read once, and every run sees the same
ones). Each worker process builds its Sessions once, when it starts, and takes tasks in sample
order; results are merged by (dataset, sample index), never by arrival order.

Why the result does not depend on the worker count: a session's output is a pure function of the
sample (``set_image`` / ``set_mask`` reset every per-image state of a ``Session``), the initial mask is
a pure function of (image, gt, seed, name) and is written to the disk cache before any run uses it,
and both backends give bit-identical outputs for any thread count (checked for ONNX Runtime and
OpenVINO on CPU; the worker-count test compares 1 worker at the backend's default threads with 2
workers at 1 thread each), and the clicker compares exact integer distances, not OpenCV's
thread-dependent float ones (see ``determinism``).

Processes are started with ``spawn``: forking a parent that has ONNX Runtime / OpenVINO thread pools
can deadlock, and spawn behaves the same on Linux, macOS and Windows.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..cache_dirs import cache_dir
from ..errors import UserError
from ..runtime.model_dir import ModelDir
from ..runtime.runs import RUN_IDS, get_run
from .datasets import SegmentationDataset
from .determinism import configure_worker_threads, thread_settings
from .initial_masks import InitialMaskCache
from .protocol import DEFAULT_STOP_IOU, SampleResult, evaluate_sample

INIT_MASK_CACHE = "init_masks"  # the cache_dirs kind of the initial masks


def run_backend(run_id: str) -> tuple[str, str]:
    """(backend, precision) of a run id (runtime/runs.py)."""
    spec = get_run(run_id)
    return spec.backend, spec.precision


def available_runs(model_dir: str | Path) -> list[str]:
    """The run ids whose graph files the model directory's card lists, in run-table order."""
    return ModelDir.open(model_dir).runs()


def default_threads(workers: int) -> int | None:
    """Threads per Session: the backend default with one worker; with several, the cores shared out, so
    that K workers x T threads do not oversubscribe the CPU (which would distort the latencies)."""
    if workers <= 1:
        return None
    return max(1, (os.cpu_count() or 1) // workers)


@dataclass(frozen=True)
class EvalSettings:
    model_dir: str
    runs: tuple[str, ...]
    max_clicks: int = 20
    stop_iou: float = DEFAULT_STOP_IOU
    from_init_mask: bool = False
    init_mask_seed: int = 0
    cache_dir: str | None = None  # None: cache_dirs.cache_dir(INIT_MASK_CACHE)
    threads: int | None = None  # per Session; None: default_threads(workers)
    workers: int = 1
    limit: int | None = None  # first N samples of each dataset
    engine: str = "local"  # "local" (this process / a process pool) or "ray"
    misleading: int = 0  # misleading clicks per sample (evaluation.misleading), 0: the standard protocol
    misleading_seed: int = 0
    cfr: str | None = None  # cascade-forward refinement spec (runtime.cfr.parse_cfr), e.g. "1", "a4"
    merge: str = "official"  # Progressive Merge: "official" or "paper" (runtime.paper_merge)
    ray_address: str | None = None  # None: start a local Ray (engine "ray" only)


@dataclass
class EvalResults:
    settings: EvalSettings
    threads: int | None  # what the Sessions were built with
    workers: int  # processes actually used (at most one per task)
    datasets: dict[str, str]  # name -> folder
    names: dict[str, list[str]]  # dataset -> sample names, in evaluation order
    results: dict[tuple[str, str], list[SampleResult]]  # (dataset, run) -> one per sample
    init_masks: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # dataset -> {iou, file}
    wall_s: float = 0.0
    thread_settings: dict[str, Any] = field(default_factory=dict)  # as a worker process runs


# ---------------------------------------------------------------------------------------------- worker
_STATE: dict[str, Any] = {}


def _build_state(settings: EvalSettings, datasets: list[tuple[str, SegmentationDataset]],
                 threads: int | None) -> None:
    from ..runtime import Session

    sessions = {}
    for run in settings.runs:
        spec = get_run(run)
        sessions[run] = Session(settings.model_dir, backend=spec.backend, precision=spec.precision, threads=threads,
                                refiner_precision=spec.refiner_precision)
    if settings.cfr or settings.merge != "official":
        from ..runtime.cfr import parse_cfr
        from ..runtime.paper_merge import wrap_session

        sessions = {run: wrap_session(s, settings.merge, parse_cfr(settings.cfr)) for run, s in sessions.items()}
    cache = None
    if settings.from_init_mask:
        cache = InitialMaskCache(settings.cache_dir or cache_dir(INIT_MASK_CACHE))
    _STATE.update(settings=settings, datasets=datasets, sessions=sessions, cache=cache)


def _init_worker(settings: EvalSettings, datasets: list[tuple[str, SegmentationDataset]], threads: int | None,
                 cv_threads: int | None) -> None:
    if cv_threads is not None:
        configure_worker_threads(cv_threads)  # OpenCV / BLAS pools would compete with the other workers
    try:
        _build_state(settings, datasets, threads)
    except Exception as exc:
        # A Pool whose initializer raises restarts the worker forever; hand the error to the first task.
        _STATE["error"] = exc


def _worker_thread_settings(threads: int | None) -> dict[str, Any]:
    return {**thread_settings(threads), "start_method": "spawn"}


def _run_task(task: tuple[int, int]) -> tuple[int, int, str, dict[str, SampleResult], dict[str, Any] | None]:
    if "error" in _STATE:
        raise _STATE["error"]
    ds_index, index = task
    settings: EvalSettings = _STATE["settings"]
    ds_name, ds = _STATE["datasets"][ds_index]
    try:
        sample = ds[index]
    except ValueError as exc:  # unreadable image / mask, size mismatch: the loader's message says which
        raise UserError(str(exc)) from None
    init_mask, init_info = None, None
    if settings.from_init_mask:
        cache: InitialMaskCache = _STATE["cache"]
        init_mask = cache.get_or_create(ds_name, sample.name, sample.image, sample.gt, settings.init_mask_seed)
        init_info = {"file": str(cache.path(ds_name, sample.name, settings.init_mask_seed))}
    per_run = {}
    plan = None
    if settings.misleading:
        from .misleading import MisleadingClicker, plan_for

        plan = plan_for(sample.name, settings.misleading, settings.misleading_seed, settings.max_clicks)
    for run, session in _STATE["sessions"].items():
        clicker = None if plan is None else MisleadingClicker(sample.gt, plan)
        per_run[run] = evaluate_sample(session, sample.image, sample.gt, max_clicks=settings.max_clicks,
                                       stop_iou=settings.stop_iou, init_mask=init_mask, clicker=clicker)
    if init_info is not None:
        init_info["iou"] = next(iter(per_run.values())).init_iou
    return ds_index, index, sample.name, per_run, init_info


# ---------------------------------------------------------------------------------------------- driver
def ray_engine(settings: EvalSettings, datasets: Sequence[tuple[str, SegmentationDataset]], workers: int,
               threads: int | None) -> Any:
    """A ``ray_engine.RayEngine`` whose actors run this module's worker functions (at ``settings.ray_address``,
    or a local Ray)."""
    from .ray_engine import RayEngine

    return RayEngine(settings, datasets, workers, threads, settings.ray_address, _build_state, _run_task)


def _progress(total: int, enabled: bool) -> Any:
    from tqdm import tqdm

    tty = sys.stderr.isatty()
    # In a log file a bar redrawn 10x a second is noise; every 30 s still shows it is alive.
    return tqdm(total=total, desc="eval", unit="session", disable=not enabled, file=sys.stderr,
                mininterval=0.5 if tty else 30.0, dynamic_ncols=tty)


def evaluate(datasets: Sequence[tuple[str, SegmentationDataset]], settings: EvalSettings,
             progress: bool = True) -> EvalResults:
    """Run every sample of every dataset through every run of ``settings.runs``."""
    if not settings.runs:
        raise UserError("no runs to evaluate")
    if settings.workers < 1:
        raise UserError(f"--workers must be >= 1, got {settings.workers}")
    t0 = time.perf_counter()
    if settings.from_init_mask and settings.cache_dir is None:
        # Resolved once here so that every worker (and the report) names the same folder.
        settings = replace(settings, cache_dir=str(cache_dir(INIT_MASK_CACHE)))
    datasets = list(datasets)
    counts = [len(ds) if settings.limit is None else min(settings.limit, len(ds)) for _, ds in datasets]
    tasks = [(d, i) for d, n in enumerate(counts) for i in range(n)]
    if not tasks:
        raise UserError("no samples to evaluate")
    workers = min(settings.workers, len(tasks))
    threads = settings.threads if settings.threads is not None else default_threads(workers)
    if settings.engine == "ray":  # an actor reserves `threads` CPUs of the cluster, 1 unless asked
        threads = settings.threads or 1
    n_runs = len(settings.runs)

    slots: list[list[Any]] = [[None] * n for n in counts]
    bar = _progress(len(tasks) * n_runs, progress)
    try:
        if settings.engine == "ray":
            engine = ray_engine(settings, datasets, workers, threads)
            try:
                threads_info = engine.thread_settings()
                for out in engine.run(tasks):
                    slots[out[0]][out[1]] = out
                    bar.update(n_runs)
            finally:
                engine.close()
        elif workers == 1:
            # In-process: same code path as a worker, without the process start-up cost.
            _build_state(settings, datasets, threads)
            threads_info = {**thread_settings(threads), "start_method": "in-process"}
            try:
                for task in tasks:
                    out = _run_task(task)
                    slots[out[0]][out[1]] = out
                    bar.update(n_runs)
            finally:
                _STATE.clear()
        else:
            ctx = mp.get_context("spawn")
            with ctx.Pool(workers, initializer=_init_worker,
                          initargs=(settings, datasets, threads, threads or 1)) as pool:
                threads_info = pool.apply(_worker_thread_settings, (threads,))
                # chunksize 1: samples differ a lot in cost (a sample can stop at click 1 or run 20).
                for out in pool.imap_unordered(_run_task, tasks, chunksize=1):
                    slots[out[0]][out[1]] = out
                    bar.update(n_runs)
    finally:
        bar.close()

    results: dict[tuple[str, str], list[SampleResult]] = {}
    names: dict[str, list[str]] = {}
    init_masks: dict[str, list[dict[str, Any]]] = {}
    for (ds_name, _), row in zip(datasets, slots, strict=True):
        names[ds_name] = [out[2] for out in row]
        for run in settings.runs:
            results[(ds_name, run)] = [out[3][run] for out in row]
        if settings.from_init_mask:
            init_masks[ds_name] = [out[4] for out in row]
    return EvalResults(
        settings=settings, threads=threads, workers=workers,
        datasets={name: str(ds.root) for name, ds in datasets}, names=names, results=results,
        init_masks=init_masks, wall_s=time.perf_counter() - t0, thread_settings=threads_info,
    )


__all__ = ["EvalResults", "EvalSettings", "RUN_IDS", "available_runs", "default_threads",
           "evaluate", "run_backend"]
