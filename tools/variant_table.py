"""The six-variant table of the README: each variant's fastest run against our PyTorch FP32 and the paper.

    python tools/variant_table.py BENCH.json [BENCH.json ...] --out docs/results/variants_bench

Reads ``focalclick-edge bench --vs-torch --json`` results (one per variant, all from one machine) and writes
``OUT.json``, ``OUT.md`` (the table) and ``OUT.png`` (per-click p50 of the best run and of PyTorch, and the
paper's Segmentor + Refiner budget).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def summarise(bench: dict[str, Any]) -> dict[str, Any]:
    """One variant's row: the fastest run by total p50, its stages, PyTorch's total, the paper's budget."""
    runs = bench["runs"]
    best = min(runs, key=lambda r: runs[r]["total_ms_p50"])
    b = runs[best]
    torch_ms = (bench.get("torch-fp32") or {}).get("total_ms_p50")
    paper = bench.get("paper") or {}
    stages = {k: round(v["p50"], 2) for k, v in b["stages"].items()}
    int8 = [r for r in runs if runs[r].get("precision") == "int8"]  # INT8 Segmentor, any Refiner
    best_int8 = min(int8, key=lambda r: runs[r]["total_ms_p50"]) if int8 else None
    return {
        "variant": bench["variant"], "best_run": best, "best_ms_p50": round(b["total_ms_p50"], 2),
        "segmentor_ms_p50": stages.get("segmentor"), "refiner_ms_p50": stages.get("refiner"),
        "glue_ms_p50": round(sum(v for k, v in stages.items() if k not in ("segmentor", "refiner")), 2),
        "torch_fp32_ms_p50": None if torch_ms is None else round(torch_ms, 2),
        "speedup_vs_torch": None if not torch_ms else round(torch_ms / b["total_ms_p50"], 2),
        "paper_segmentor_ms": paper.get("segmentor_ms"), "paper_refiner_ms": paper.get("refiner_ms"),
        "best_int8_run": best_int8,
        "best_int8_ms_p50": None if best_int8 is None else round(runs[best_int8]["total_ms_p50"], 2),
        "all_runs_ms_p50": {r: round(v["total_ms_p50"], 2) for r, v in runs.items()},
    }


def table(rows: list[dict[str, Any]]) -> str:
    head = ("| variant | best run | per click p50 | Segmentor + Refiner | fastest INT8 run | our PyTorch FP32 | "
            "speed-up | paper Segmentor + Refiner (4-core i5) |\n| --- | --- | --- | --- | --- | --- | --- | --- |\n")
    lines = [f"| {r['variant']} | {r['best_run']} | {r['best_ms_p50']:.1f} ms | {r['segmentor_ms_p50']:.1f} + "
             f"{r['refiner_ms_p50']:.1f} ms | {_int8(r)} | {r['torch_fp32_ms_p50'] or float('nan'):.1f} ms | "
             f"{r['speedup_vs_torch'] or float('nan'):.2f}x | {r['paper_segmentor_ms']} + {r['paper_refiner_ms']} ms |"
             for r in rows]
    return head + "\n".join(lines) + "\n"


def _int8(row: dict[str, Any]) -> str:
    return "-" if row["best_int8_run"] is None else f"{row['best_int8_run']} {row['best_int8_ms_p50']:.1f} ms"


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["variant"] for r in rows]
    x = range(len(rows))
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.bar([i - 0.27 for i in x], [r["best_ms_p50"] for r in rows], 0.27, label="best run (per click p50)")
    ax.bar(list(x), [r["torch_fp32_ms_p50"] or 0 for r in rows], 0.27, label="our PyTorch FP32")
    ax.bar([i + 0.27 for i in x], [(r["paper_segmentor_ms"] or 0) + (r["paper_refiner_ms"] or 0) for r in rows],
           0.27, label="paper budget (4-core i5)")
    ax.set_xticks(list(x), names)
    ax.set_ylabel("ms")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("bench", nargs="+", help="bench --json results, one per variant")
    p.add_argument("--out", required=True, help="output stem (OUT.json, OUT.md, OUT.png)")
    a = p.parse_args(argv)
    benches = [json.loads(Path(b).read_text()) for b in a.bench]
    rows = [summarise(b) for b in benches]
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {k: benches[0].get(k) for k in ("cpu", "threads", "image", "protocol")}
    out.with_suffix(".json").write_text(json.dumps({"machine": meta, "variants": rows}, indent=1) + "\n")
    md = table(rows)
    out.with_suffix(".md").write_text(md)
    plot(rows, out.with_suffix(".png"))
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
