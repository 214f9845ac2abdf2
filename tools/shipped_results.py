#!/usr/bin/env python
"""Evaluate an export of the shipped checkpoint on GrabCut and Berkeley and record the results.

For each dataset and mode (from scratch, from initial masks) it runs ``focalclick-edge eval`` over every
run of the export, writes ``docs/results/<prefix>_<dataset>_<mode>.{json,png}`` and puts the summaries
into the checkpoint card's ``evaluation`` section (with each INT8 run's NoC@90 drop against the FP32 run
of its backend), so that the README, the card and the results folder come from one measurement:

  python tools/shipped_results.py --model EXPORT_DIR --prefix b0s1_step14000 \\
      --grabcut ../shared/data/GrabCut --berkeley ../shared/data/Berkeley
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from focalclick_edge.fileio import write_json_atomic  # noqa: E402
from focalclick_edge.runtime.runs import RUN_IDS, gated_pairs, get_run  # noqa: E402

CARD = ROOT / "focalclick_edge" / "assets" / "checkpoints" / "b0-s1.card.json"
MODES = {"scratch": [], "init": ["--from-init-mask"]}


def run_eval(model: Path, name: str, path: Path, mode: str, out: Path, workers: int) -> dict[str, Any]:
    json_path, png_path = out.with_suffix(".json"), out.with_suffix(".png")
    cmd = [sys.executable, "-m", "focalclick_edge", "eval", "--model", str(model), "--dataset", f"{name}={path}",
           "--runs", ",".join(RUN_IDS), "--workers", str(workers), "--threads", "1", "--json", str(json_path),
           "--plot", str(png_path), "--no-progress", *MODES[mode]]
    print(" ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, check=True)
    return json.loads(json_path.read_text())


def summaries(report: dict[str, Any], name: str, mode: str) -> list[dict[str, Any]]:
    rows = []
    for rid, r in report["runs"].items():
        rows.append({"dataset": name, "mode": mode, "run": rid, "images": r["n_samples"],
                     "max_clicks": r["max_clicks"],
                     **{k: r[k] for k in ("noc85", "noc90", "noc95", "nof85", "nof90", "nof95")},
                     "miou_at_k": [round(float(v), 4) for v in r["miou"]]})
    by_run = {row["run"]: row for row in rows}
    for rid, base in gated_pairs(list(by_run)):
        by_run[rid]["noc90_drop_vs_" + base] = round(by_run[rid]["noc90"] - by_run[base]["noc90"], 2)
    return rows


def markdown_table(results: list[dict[str, Any]]) -> str:
    """NoC@85/90/95 per run, one column pair per dataset and mode (the README's table)."""
    cols = [(d, m) for d in ("GrabCut", "Berkeley") for m in MODES]
    head = ["run", *[f"{d} {'scratch' if m == 'scratch' else 'init mask'} NoC@85/90/95" for d, m in cols]]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for rid in RUN_IDS:
        cells = [rid]
        for d, m in cols:
            row = next((r for r in results if (r["dataset"], r["mode"], r["run"]) == (d, m, rid)), None)
            if row is None:
                cells.append("-")
                continue
            drop = next((v for k, v in row.items() if k.startswith("noc90_drop")), None)
            cells.append(f"{row['noc85']:.2f} / {row['noc90']:.2f} / {row['noc95']:.2f}"
                         + (f" ({drop:+.2f})" if drop is not None else ""))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True, help="an export of the shipped checkpoint (all runs)")
    ap.add_argument("--prefix", required=True, help="file name prefix in docs/results, e.g. b0s1_step14000")
    ap.add_argument("--grabcut", type=Path, required=True)
    ap.add_argument("--berkeley", type=Path, required=True)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-card", action="store_true", help="do not touch the checkpoint card")
    args = ap.parse_args()
    missing = [r for r in RUN_IDS if not (args.model / get_run(r).graph_file("segmentor")).is_file()]
    if missing:
        print(f"error: {args.model} lacks runs {missing}; export with --int8 (all five runs)", file=sys.stderr)
        return 2
    results: list[dict[str, Any]] = []
    hardware: dict[str, Any] = {}
    for name, path in (("GrabCut", args.grabcut), ("Berkeley", args.berkeley)):
        for mode in MODES:
            out = ROOT / "docs" / "results" / f"{args.prefix}_{name.lower()}_{mode}"
            report = run_eval(args.model, name, path, mode, out, args.workers)
            hardware = report["hardware"]
            results += summaries(report, name, mode)
    print(markdown_table(results))
    if not args.no_card:
        card = json.loads(CARD.read_text())
        card["evaluation"] = {
            "protocol": ("focalclick-edge eval: official clicker, max 20 clicks, NoC@85/90/95 and NoF, mIoU after "
                         "k clicks; from scratch and from the generated initial masks (--from-init-mask, seed 0); "
                         "exported graphs (ONNX Runtime / OpenVINO) of this very checkpoint, all five runs"),
            "files": f"docs/results/{args.prefix}_{{grabcut,berkeley}}_{{scratch,init}}.{{json,png}}",
            "hardware": hardware,
            "results": results,
        }
        write_json_atomic(CARD, card)
        print(f"updated {CARD.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
