"""Per-click profiling against the paper's CPU budgets (`focalclick-edge bench`).

Nothing heavy is imported here: the CLI imports this package to register the subcommand.
"""
from __future__ import annotations

__all__ = ["BenchConfig", "run_bench", "RUNS", "TORCH_RUN", "cpu_fingerprint", "format_table",
           "write_json", "write_plot"]


def __getattr__(name: str):  # lazy re-exports (PEP 562)
    if name in ("BenchConfig", "run_bench", "RUNS", "TORCH_RUN"):
        from . import runner

        return getattr(runner, name)
    if name == "cpu_fingerprint":
        from ..hardware import cpu_fingerprint

        return cpu_fingerprint
    if name in ("format_table", "write_json", "write_plot"):
        from . import report

        return getattr(report, name)
    raise AttributeError(name)
