"""`eval --engine ray`: the samples run as Ray tasks on actors that each hold the runs' Sessions.

Each actor is one worker process: it pins its library thread pools and compiles every run's
Session once, when it starts, then evaluates whole samples (one sample through every run, as the
local engine does) with the same ``runner._run_task``. The driver keeps every actor busy with a
bounded queue of sample tasks, streams results back as they finish (progress bar) and files them by
(dataset, sample index), so the report is in sample order and identical to the local engine's.

A killed actor loses nothing: actors restart (``max_restarts``) and Ray retries the call that was
running (``max_task_retries``); a call whose retries are used up is resubmitted by the driver, up to
``MAX_RESUBMITS`` times per sample. Samples are pure functions of their inputs, so a retried sample
gives the same result.

Each actor reserves ``threads`` CPUs (default 1) and runs its Sessions with that many threads.
Without an address a local Ray is started with workers x threads CPUs and stopped at the end; with
``--ray-address`` (``auto``, ``ray://host:10001`` or ``host:6379``) the driver joins that cluster.
Ray's usage statistics are switched off before ``ray`` is imported, and its token authentication is
left as Ray sets it up (on by default for a local cluster since Ray 2.52).
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ..errors import UserError

ACTOR_MAX_RESTARTS = 4
TASK_RETRIES = 3
MAX_RESUBMITS = 3
IN_FLIGHT_PER_ACTOR = 2  # one running, one queued: no idle gap between samples


def import_ray() -> Any:
    """``ray`` with usage statistics off (they are read once, at import and at ``ray.init``)."""
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    try:
        import ray
    except ModuleNotFoundError as exc:
        if exc.name != "ray":
            raise
        raise UserError("--engine ray needs Ray, which is not installed; pip install 'focalclick-edge[ray]' "
                        "(or pip install ray), or use --engine local") from None
    return ray


def local_ray_options(num_cpus: int) -> dict[str, Any]:
    """``ray.init`` options of a private local Ray: no dashboard, quiet, and workers that import this
    very ``focalclick_edge`` (a checkout as well as an install)."""
    root = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    return {"num_cpus": int(num_cpus), "include_dashboard": False, "log_to_driver": False,
            "configure_logging": True, "logging_level": "ERROR", "runtime_env": {"env_vars": {"PYTHONPATH": path}}}


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """A one-line error for a ``HOST:PORT`` / ``ray://HOST:PORT`` address nothing listens on (Ray itself
    keeps retrying for minutes); ``auto`` and addresses without a port are left to Ray."""
    import socket

    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit() or not host:
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise UserError(f"--ray-address {address}: nothing answers there ({exc.strerror or exc}); start the "
                        "cluster with `ray start --head` or check the address") from None


class _EvalActor:
    """One worker process: Sessions built once (``build_state``), then one sample per call (``run_task``).

    The two functions come from the caller (evaluation.runner), pickled by reference, so this module
    needs nothing from the runner that drives it."""

    def __init__(self, settings: Any, datasets: Any, threads: int | None, build_state: Callable[..., None],
                 run_task: Callable[[tuple[int, int]], Any]) -> None:
        from .determinism import configure_worker_threads

        configure_worker_threads(threads or 1)
        build_state(settings, datasets, threads)
        self._run_task = run_task

    def thread_settings(self, threads: int | None) -> dict[str, Any]:
        from .determinism import thread_settings

        return {**thread_settings(threads), "start_method": "ray actor", "pid": os.getpid()}

    def run(self, task: tuple[int, int]) -> Any:
        return self._run_task(task)

    def pid(self) -> int:
        return os.getpid()


class RayEngine:
    """Actors over a local or remote Ray; ``run(tasks)`` yields each task's result as it finishes."""

    def __init__(self, settings: Any, datasets: Sequence[Any], workers: int, threads: int | None,
                 address: str | None, build_state: Callable[..., None],
                 run_task: Callable[[tuple[int, int]], Any]) -> None:
        self.ray = ray = import_ray()
        self.started_ray = False
        if address:
            check_reachable(address)
        if not ray.is_initialized():
            if address:
                kwargs: dict[str, Any] = {"address": address, "include_dashboard": False, "log_to_driver": False,
                                          "configure_logging": True, "logging_level": "ERROR"}
            else:
                kwargs = local_ray_options(workers * (threads or 1))
            try:
                ray.init(**kwargs)
            except ConnectionError as exc:
                raise UserError(f"--ray-address {address}: cannot connect to a Ray cluster ({exc}); "
                                "start one with `ray start --head` or check the address") from None
            self.started_ray = True
        remote = ray.remote(num_cpus=threads or 1, max_restarts=ACTOR_MAX_RESTARTS, max_task_retries=TASK_RETRIES)
        self.actors = [remote(_EvalActor).remote(settings, list(datasets), threads, build_state, run_task)
                       for _ in range(workers)]
        self.threads = threads

    def thread_settings(self) -> dict[str, Any]:
        return self.ray.get(self.actors[0].thread_settings.remote(self.threads))

    def run(self, tasks: Sequence[tuple[int, int]],
            on_submit: Callable[[tuple[int, int], Any], None] | None = None) -> Iterator[Any]:
        """Yield ``_run_task`` results in completion order; a failed sample is resubmitted."""
        ray = self.ray
        pending = list(reversed(tasks))  # pop() takes them in sample order
        in_flight: dict[Any, tuple[tuple[int, int], int, int]] = {}  # ref -> (task, actor index, attempt)
        load = [0] * len(self.actors)
        attempts: dict[tuple[int, int], int] = {}

        def submit(task: tuple[int, int], attempt: int) -> None:
            i = min(range(len(self.actors)), key=load.__getitem__)
            ref = self.actors[i].run.remote(task)
            in_flight[ref] = (task, i, attempt)
            load[i] += 1
            if on_submit is not None:
                on_submit(task, self.actors[i])

        def fill() -> None:
            while pending and min(load) < IN_FLIGHT_PER_ACTOR:
                submit(pending.pop(), 0)

        fill()
        while in_flight:
            done, _ = ray.wait(list(in_flight), num_returns=1)
            ref = done[0]
            task, i, attempt = in_flight.pop(ref)
            load[i] -= 1
            try:
                out = ray.get(ref)
            except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError,
                    ray.exceptions.WorkerCrashedError):
                # Ray's own retries are used up (or the actor is between restarts): run it again.
                if attempt >= MAX_RESUBMITS:
                    raise UserError(f"sample {task} failed on {attempt + 1} Ray workers in a row; "
                                    "see the Ray logs (ray logs / the dashboard)") from None
                attempts[task] = attempt + 1
                submit(task, attempt + 1)
                continue
            except ray.exceptions.RayTaskError as exc:
                cause = getattr(exc, "cause", None)
                if isinstance(cause, UserError):  # a bad sample: the same one-line error as the local engine
                    raise UserError(str(cause)) from None
                raise
            fill()
            yield out

    def close(self) -> None:
        for actor in self.actors:
            try:
                self.ray.kill(actor)
            except Exception:  # already gone
                pass
        self.actors = []
        if self.started_ray:
            self.ray.shutdown()


__all__ = ["RayEngine", "import_ray", "local_ray_options"]
