"""Benchmark output: the printed table, the JSON file and the stacked-bar PNG."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..fileio import write_json_atomic
from ..hardware import isa_summary
from .runner import TORCH_RUN

# Stages stacked in the plot and listed in the table (``total`` is their sum plus timer overhead).
PLOT_STAGES = ("preprocess", "segmentor", "focus_crop", "refiner", "merge")
_STAGE_HEAD = {"preprocess": "prep", "segmentor": "seg", "focus_crop": "focus", "refiner": "ref",
               "merge": "merge"}


def all_runs(result: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(run id, entry) for every measured run, the PyTorch reference last."""
    rows = list(result["runs"].items())
    if result.get(TORCH_RUN):
        rows.append((TORCH_RUN, result[TORCH_RUN]))
    return rows


def format_table(result: dict[str, Any]) -> str:
    cpu = result["cpu"]
    proto = result["protocol"]
    hw = result["image"].get("hw")
    size = f" ({hw[1]}x{hw[0]})" if hw else ""
    paper = result["paper"]
    lines = [
        f"{result['variant']} | {result['threads']} thread(s) | {cpu['model']} [{isa_summary(cpu)}] | "
        f"{Path(result['image']['path']).name}{size} | {proto['timed_sessions']} x "
        f"{proto['clicks_per_session']} clicks, warm-up excluded",
    ]
    stage_cols = " ".join(f"{_STAGE_HEAD[s]:>6}" for s in PLOT_STAGES)
    w = max([11, *(len(rid) for rid, _ in all_runs(result))])  # run ids with a Refiner pairing are longer
    head = (f"{'run':<{w}} {'p50 ms':>7} {'p90 ms':>7} | {stage_cols} | {'seg/paper':>9} {'ref/paper':>9} | "
            f"{'load ms':>7} {'RSS MB':>7} | {'vs torch':>8}")
    lines += [head, "-" * len(head)]
    for rid, e in all_runs(result):
        stages = " ".join(f"{e['stages'][s]['p50']:>6.2f}" for s in PLOT_STAGES)
        speed = f"{e['speedup_vs_torch']:>7.2f}x" if "speedup_vs_torch" in e else f"{'-':>8}"
        lines.append(
            f"{rid:<{w}} {e['total_ms_p50']:>7.2f} {e['total_ms_p90']:>7.2f} | {stages} | "
            f"{e['segmentor_vs_paper']:>9.2f} {e['refiner_vs_paper']:>9.2f} | "
            f"{e['load_ms']:>7.0f} {e['peak_rss_mb']:>7.0f} | {speed}"
        )
    lines.append(
        f"paper ({paper['cpu']}): Segmentor {paper['segmentor_ms']:g} ms + Refiner {paper['refiner_ms']:g} ms "
        f"= budget {paper['budget_ms']:g} ms. seg/paper, ref/paper: our p50 over the paper's (< 1 is faster)."
    )
    lines.append("Stage columns are p50 ms; RSS is the run's peak (its own process). "
                 "vs torch: speed-up of total p50 over our PyTorch FP32 eager models.")
    load = [v for v in (result.get("load_avg") or {}).values() if v]
    busiest = max((v[0] for v in load), default=0.0)
    if busiest > 0.5 * max(cpu.get("available_cpus") or 1, 1):
        lines.append(f"warning: the machine was busy (1-min load average up to {busiest:.1f} on "
                     f"{cpu.get('available_cpus')} CPUs); other work inflates these timings.")
    return "\n".join(lines)


def write_json(result: dict[str, Any], path: str | Path) -> None:
    path = Path(path)
    if path.parent and not path.parent.exists():
        raise UserError(f"cannot write {path}: folder {path.parent} does not exist")
    write_json_atomic(path, json.loads(json.dumps(result)))


def write_plot(result: dict[str, Any], path: str | Path) -> None:
    """Stacked bars of stage p50 per run, with the paper's Segmentor + Refiner budget as a line."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only; never needs a display
        import matplotlib.pyplot as plt
    except ImportError:
        raise UserError("--plot needs matplotlib: pip install 'focalclick-edge[plots]'") from None
    path = Path(path)
    if path.parent and not path.parent.exists():
        raise UserError(f"cannot write {path}: folder {path.parent} does not exist")
    rows = all_runs(result)
    names = [rid for rid, _ in rows]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(rows) + 2.5), 4.2), dpi=120)
    bottom = [0.0] * len(rows)
    for stage in PLOT_STAGES:
        vals = [e["stages"][stage]["p50"] for _, e in rows]
        ax.bar(names, vals, bottom=bottom, label=stage, width=0.6)
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    paper = result["paper"]
    ax.axhline(paper["budget_ms"], color="crimson", linestyle="--", linewidth=1.2,
               label=f"paper budget {paper['budget_ms']:g} ms (seg {paper['segmentor_ms']:g} + ref "
                     f"{paper['refiner_ms']:g})")
    for i, total in enumerate(bottom):
        ax.text(i, total, f"{total:.1f}", ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("ms per click (stage p50)")
    ax.set_title(f"{result['variant']}: per-click stages, {result['threads']} thread(s)\n{result['cpu']['model']}",
                 fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
