#!/usr/bin/env python
"""Record the runs that need no graph file of their own (ov-bf16, and ov-int8 with the bf16 Refiner) in an
existing model directory's card: their agreement with FP32 on the export's held-out sessions, and the graph
timings of this CPU. For a directory exported before those runs existed (the shipped b0-s1); a fresh
`focalclick-edge export --int8` on a CPU with native bf16 records them itself.

    python tools/record_compute_runs.py --model focalclick_edge/assets/models/b0-s1

Needs a CPU with native bf16 (AVX512-BF16 / AMX) and the built-in calibration set the card names.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from focalclick_edge.errors import UserError  # noqa: E402
from focalclick_edge.fileio import write_json_atomic  # noqa: E402
from focalclick_edge.runtime.model_dir import CARD_NAME, ModelDir  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, required=True)
    a = p.parse_args(argv)
    from focalclick_edge.calibration.dataset import open_calibration_set
    from focalclick_edge.quantization import agreement as ag
    from focalclick_edge.runtime.run_choice import pairing_key, time_graphs

    md = ModelDir.open(a.model)
    if "ov-bf16" not in md.runs():
        raise UserError("this CPU has no native bf16 (or the directory no OpenVINO FP32 IR): nothing to record")
    cal = md.card.get("calibration") or {}
    if cal.get("source") != "built-in":
        raise UserError(f"{a.model} was calibrated on {cal.get('source')!r}: re-export it instead")
    cal_set = open_calibration_set(None, cal.get("count"), int(cal.get("seed", 0)))
    ds, idx, _ = ag.holdout_indices(cal_set)
    refs, _ = ag.reference_sessions(md.path, ds, idx, cal_set.seed)
    agreement = md.card["quantization"]["agreement"]
    if sorted({r.name for r in refs}) != agreement.get("images"):
        raise UserError("the held-out images differ from the card's: re-export instead")
    agreement["openvino/bf16"] = ag.measure(md.path, "openvino", "bf16", refs)
    if ("openvino", "int8") in md.available():
        agreement[pairing_key("bf16")] = ag.measure(md.path, "openvino", "int8", refs, refiner_precision="bf16")
    md.card["run_timings"] = time_graphs(md.path, budget_s=1.0)
    write_json_atomic(md.path / CARD_NAME, md.card)
    for key in ("openvino/int8", "openvino/bf16", pairing_key("bf16")):
        print(key, agreement.get(key))
    print("graphs_ms", md.card["run_timings"]["graphs_ms"])
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as exc:
        print(f"record_compute_runs: {exc}", file=sys.stderr)
        sys.exit(2)
