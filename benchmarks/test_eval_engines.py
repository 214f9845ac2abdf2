"""pytest-benchmark: evaluation throughput (samples/s) of the Ray engine with 1 and 2 workers, and of the
local engine for comparison, over the 6 fixture samples (GrabCut, Berkeley, COCO_MVal) x 3 passes,
5 clicks each.

    python -m pytest benchmarks/test_eval_engines.py --benchmark-only

Ray: the timed part is the stream of sample tasks once the actors are up (steady state, what a long
regression sees); ``extra_info["startup_s"]`` is the actors' start-up (process start, imports, Session
compilation), paid once per evaluation. Local: a whole ``evaluate``. On a 2-core machine two workers
cannot be much faster than one; on a cluster the rate grows with the actors.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from focalclick_edge.evaluation.datasets import load_dataset
from focalclick_edge.evaluation.runner import EvalSettings, evaluate

ray = pytest.importorskip("ray")

DATA = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "data"
DATASETS = ("GrabCut", "Berkeley", "COCO_MVal")
PASSES = 3


@pytest.fixture(scope="module")
def datasets():
    return [(name, load_dataset(name, DATA / name)) for name in DATASETS]


@pytest.fixture(scope="module")
def local_ray():
    from focalclick_edge.evaluation.ray_engine import local_ray_options

    ray.init(**local_ray_options(2))
    yield
    ray.shutdown()


def _settings(model_dir, workers: int, engine: str) -> EvalSettings:
    return EvalSettings(model_dir=str(model_dir), runs=("ort-fp32",), max_clicks=5, workers=workers, engine=engine)


@pytest.mark.parametrize("workers", [1, 2])
def test_ray_engine_throughput(benchmark, model_dir, datasets, local_ray, workers):
    from focalclick_edge.evaluation.runner import ray_engine

    settings = _settings(model_dir, workers, "ray")
    tasks = [(d, i) for d, (_, ds) in enumerate(datasets) for i in range(len(ds))] * PASSES
    t0 = time.perf_counter()
    engine = ray_engine(settings, datasets, workers=workers, threads=1)
    try:
        ray.get([a.pid.remote() for a in engine.actors])  # every actor up, Sessions compiled
        startup = time.perf_counter() - t0
        t1 = time.perf_counter()
        outs = benchmark.pedantic(lambda: list(engine.run(tasks)), rounds=1, iterations=1)
        run_s = time.perf_counter() - t1  # own clock: benchmark.stats is None under --benchmark-disable
    finally:
        engine.close()
    assert len(outs) == len(tasks)
    benchmark.extra_info.update(samples=len(tasks), startup_s=startup, samples_per_s=len(tasks) / run_s)


@pytest.mark.parametrize("workers", [1, 2])
def test_local_engine_throughput(benchmark, model_dir, datasets, workers):
    settings = _settings(model_dir, workers, "local")
    n = sum(len(ds) for _, ds in datasets)
    res = benchmark.pedantic(evaluate, args=(datasets, settings), kwargs={"progress": False}, rounds=1, iterations=1)
    assert sum(len(v) for v in res.results.values()) == n
    benchmark.extra_info.update(samples=n, samples_per_s=n / res.wall_s)
