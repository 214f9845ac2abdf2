"""Prometheus metrics of one app (its own registry, so several apps in one process do not collide)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# Seconds: a b0-s1 click is ~10-60 ms on a CPU, a 12 MP PNG encode up to a few hundred.
BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.stage = Histogram("focalclick_click_stage_seconds", "Per-click time by stage: the Session's stages, "
                               "'wait' for a graph worker, 'encode' of the mask, 'server' for the whole request",
                               ["stage"], buckets=BUCKETS, registry=r)
        self.clicks = Counter("focalclick_clicks", "Click requests answered, by kind", ["kind"], registry=r)
        self.sessions = Gauge("focalclick_sessions", "Live sessions", registry=r)
        self.session_bytes = Gauge("focalclick_session_bytes", "Bytes held by all live sessions' arrays", registry=r)
        self.created = Counter("focalclick_sessions_created", "Sessions created", registry=r)
        self.evictions = Counter("focalclick_session_evictions", "Sessions dropped, by reason (lru: over "
                                 "--max-sessions, memory: over the memory cap, ttl: unused past --session-ttl)",
                                 ["reason"], registry=r)
        self.errors = Counter("focalclick_http_errors", "Error responses, by status", ["status"], registry=r)
        for kind in ("click", "preview", "undo", "reset"):
            self.clicks.labels(kind)
        for reason in ("lru", "memory", "ttl"):
            self.evictions.labels(reason)

    def observe_timings(self, timings: dict[str, float]) -> None:
        for stage, ms in timings.items():
            self.stage.labels(stage).observe(ms / 1e3)

    def render(self) -> bytes:
        return generate_latest(self.registry)
