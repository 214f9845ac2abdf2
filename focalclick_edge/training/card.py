"""Publishing a trained checkpoint into the package with a small model card.

``python -m focalclick_edge.training.card RUN_DIR`` copies ``RUN_DIR/best.pth`` (else ``last.pth``) to
``focalclick_edge/assets/checkpoints/<variant>.pth`` and writes ``<variant>.card.json`` next to it,
filled from the run's ``run.json``, ``train_log.jsonl`` and ``val_log.jsonl``.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import time
from pathlib import Path
from typing import Any

from ..fileio import atomic_file, sha256_file, write_json_atomic

DATA_SOURCES = {
    "DUTS-TR": {
        "citation": "Wang et al., Learning to Detect Salient Objects with Image-level Supervision, CVPR 2017",
        "source": "github:Nithurshen/salient-object-detection @ 80fe22116f44ff0f568740296582ed4007302564, "
                  "extracted with shared/data/extract_duts.sh; masks binarised at > 127",
        "terms": "DUTS images are ImageNet / SUN photographs distributed under their authors' research terms "
                 "(non-commercial research use); the weights inherit that provenance",
    },
    "COCO_MVal": {
        "citation": "COCO-MVal: an 800-instance COCO val subset used by f-BRS / RITM",
        "source": "the copy distributed with public interactive segmentation evaluation code (shared/data)",
        "terms": "COCO images are Flickr photographs under their individual licences (COCO terms of use)",
    },
    "DUTS-TE": {
        "citation": "Wang et al., CVPR 2017 (test split)",
        "source": "same DUTS snapshot as DUTS-TR",
        "terms": "as DUTS-TR",
    },
}

RECIPE = {
    "initialisation": "from scratch (no ImageNet-pretrained backbone was available); MiT init: truncated "
                      "normal 0.02 for Linear, fan-out normal for convs",
    "input": "256x256 Target Crop (S1: the net halves it to 128 internally); Refiner Focus Crop 256x256",
    "target_crop": "40%: whole image squeezed to 256 with scale 0.75-1.4 (first-click view); 60%: object box "
                   "expanded 1.15-2.0 per axis, centre jitter, clamped (Zoom-In view)",
    "focus_crop": "object box x1.1-1.7 with bias, or (objects > 80x80 px, p=0.4) a 1/1.5-1/4 window on the "
                  "boundary; resampled from the source image as at inference",
    "augmentation": "horizontal flip, brightness +-0.25, contrast -0.15..+0.4, RGB shift +-10 (p=0.75 each), "
                    "copy-paste of object cut-outs from other training images (p=0.25)",
    "clicks": "RITM protocol: 1+k positive / k' negative initial clicks, P ~ 0.8^k, up to 24 each "
              "(first near the object centre, negatives mostly in a band around the object); then 0-3 "
              "clicks at error centres of the model's own predictions (threshold 0.49)",
    "losses": "Normalized Focal Loss (alpha 0.5, gamma 2) on the coarse output; BCE on the boundary head "
              "(target: mask x8 down/up-sampled XOR mask, dilated 3x3 twice); boundary-weighted NFL "
              "(boundary pixels x1.5) on the refined output; weights 1/1/1",
    "optimiser": "Adam (0.9, 0.999), eps 1e-8, linear warm-up then step decay x0.1 at 83% and 92% of the "
                 "iterations, gradient-norm clip 2.0",
    "batchnorm": "precise-BN recalibration (running statistics = mean over 40 fresh training batches) before "
                 "each validation and the final save; the EMA statistics of batch-4 training made eval-mode "
                 "outputs much worse than train-mode ones",
}

DEVIATIONS = [
    "No ImageNet pre-training: the paper fine-tunes an ImageNet-pretrained MiT-B0; this model starts from "
    "random weights, so expect far weaker NoC than the published numbers.",
    "Training data is DUTS-TR + COCO-MVal (about 11k images), not COCO+LVIS (about 100k images, 1.6M "
    "instances): the only data available offline here.",
    "Compute: one core of a shared 2-vCPU machine for about three hours (batch 4, about 11k iterations in "
    "two lr cycles) instead of 230 epochs x 30k samples at batch 28 on GPUs.",
    "Learning rate 6e-4 with warm-up (the official B0 config uses Adam 5e-3 with a pretrained backbone); "
    "warm-up and gradient clipping keep a from-scratch transformer stable at small batch.",
    "The Focus Crop image and mask are resampled from the source image (as the predictor does at inference) "
    "rather than upsampled from the 256 Target Crop as in the official trainer.",
    "Validation: NoC on a fixed 24-image DUTS-TE subset during training (never GrabCut, Berkeley or DAVIS).",
]


def _jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by a concurrent write
            continue
    return out


def build_card(run_dir: str | Path, checkpoint: Path, which: str) -> dict[str, Any]:
    run_dir = Path(run_dir)
    run = json.loads((run_dir / "run.json").read_text())
    cfg = run["config"]
    train_log = _jsonl(run_dir / "train_log.jsonl")
    val_log = _jsonl(run_dir / "val_log.jsonl")
    steps = train_log[-1]["step"] if train_log else 0
    # The log keeps earlier lines of resumed runs; count each step once (the latest record wins).
    by_step = {r["step"]: r for r in train_log}
    wall = sum(r.get("step_s", 0.0) for r in by_step.values())
    recent = [by_step[s] for s in sorted(by_step)[-100:]]
    best = min((v for v in val_log if "NoC@90" in v), key=lambda v: v["NoC@90"], default=None)
    # Free-form remarks about this particular run (restarts, changes), from RUN_DIR/notes.json.
    notes_file = run_dir / "notes.json"
    notes = json.loads(notes_file.read_text()) if notes_file.exists() else []
    use_best = best is not None and which.startswith("best")
    ckpt_step = int(best["step"]) if use_best else steps
    if not use_best and val_log and val_log[-1].get("step") == steps:
        best = val_log[-1]  # the last checkpoint's own validation
    data = []
    for name, info in run["data"].items():
        data.append({"name": name, "samples": info["samples"], "skipped": info["skipped"],
                     **DATA_SOURCES.get(name, {})})
    return {
        "variant": cfg["variant"],
        "file": checkpoint.name,
        "sha256": sha256_file(checkpoint),
        "bytes": checkpoint.stat().st_size,
        "format": "official ClickSEG checkpoint {'state_dict', 'config'}; fp32; "
                  "torch.load(weights_only=True)",
        "selected": which,
        "status": "work in progress: a from-scratch demo model, far below the paper's pretrained numbers",
        "training_data": data,
        "never_trained_on": ["GrabCut", "Berkeley", "DAVIS"],
        # The shipped weights are those of the best validation step; the run may have gone on since.
        "checkpoint_iteration": ckpt_step,
        "checkpoint_train_wall_hours": best.get("wall_h") if use_best else round(wall / 3600, 2),
        "run_iterations_so_far": steps,
        "batch": cfg["batch"],
        "samples_seen_by_checkpoint": ckpt_step * cfg["batch"],
        "run_train_wall_hours": round(wall / 3600, 2),
        "recent_train_loss": round(sum(r["loss"] for r in recent) / max(1, len(recent)), 4),
        "recent_train_iou_coarse": round(sum(r["train_iou"] for r in recent) / max(1, len(recent)), 4),
        "hardware": f"{platform.machine()} CPU, {os.cpu_count()} vCPUs shared with other jobs, "
                    f"{cfg['threads']} torch thread(s), device {run.get('device')}, torch {run.get('torch')}",
        "recipe": {**RECIPE, "batch": cfg["batch"], "lr": cfg["lr"], "warmup": cfg["warmup"],
                   "iterations_planned": cfg["iters"]},
        "deviations_from_paper": DEVIATIONS,
        "validation": {
            "data": [n for n, _ in cfg["val"]],
            "protocol": "official click loop (Zoom-In, Focus Crop, Refiner), official clicker, "
                        "max 20 clicks, mask = prob > 0.5",
            "samples": best.get("samples") if best else None,
            "shipped_checkpoint": best,
            "latest": val_log[-1] if val_log else None,
        },
        "run_notes": notes,
        "written": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def evaluation_summary(eval_json: str | Path, mode: str) -> list[dict[str, Any]]:
    """The card's figures from one ``focalclick-edge eval --json`` result (every run in it)."""
    res = json.loads(Path(eval_json).read_text())
    rows = []
    for run, r in res["runs"].items():
        rows.append({
            "dataset": r["dataset"], "mode": mode, "run": run, "images": r["n_samples"],
            "max_clicks": r["max_clicks"],
            **{k: r[k] for k in ("noc85", "noc90", "noc95", "nof85", "nof90", "nof95")},
            "miou_at_k": [round(float(v), 4) for v in r["miou"]],
        })
    return rows


def add_evaluation(card_path: str | Path, evals: list[tuple[str, str]]) -> None:
    """Put ``(mode, eval.json)`` results (e.g. GrabCut / Berkeley from scratch) into a published card."""
    card_path = Path(card_path)
    card = json.loads(card_path.read_text())
    rows = [row for mode, path in evals for row in evaluation_summary(path, mode)]
    card["evaluation"] = {
        "protocol": "focalclick-edge eval: official clicker, max 20 clicks, NoC@85/90/95 and NoF, mIoU after "
                    "k clicks; exported graphs (ONNX Runtime / OpenVINO) of this very checkpoint",
        "results": rows,
    }
    write_json_atomic(card_path, card)


def publish(run_dir: str | Path, dest_dir: str | Path | None = None, which: str = "best") -> Path:
    """Copy the run's best (else last) checkpoint into the package assets with its card.

    ``which="last"`` ships the final weights instead (e.g. when NoC@90 is saturated at the click limit
    and the best-NoC pick is noise)."""
    from ..assets import CHECKPOINT_DIR

    run_dir = Path(run_dir)
    dest = Path(dest_dir) if dest_dir else CHECKPOINT_DIR
    if which == "best" and (run_dir / "best.pth").exists():
        src, which = run_dir / "best.pth", "best validation NoC@90"
    else:
        src, which = run_dir / "last.pth", "last"
    variant = json.loads((run_dir / "run.json").read_text())["config"]["variant"]
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / f"{variant}.pth"
    with atomic_file(target) as tmp:
        shutil.copyfile(src, tmp)
    write_json_atomic(dest / f"{variant}.card.json", build_card(run_dir, target, which))
    return target


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="publish a run's checkpoint into the package with its card")
    ap.add_argument("run_dir")
    ap.add_argument("dest_dir", nargs="?")
    ap.add_argument("--which", choices=("best", "last"), default="best")
    ap.add_argument("--eval", action="append", default=[], metavar="MODE=EVAL.json",
                    help="only add evaluation results (e.g. scratch=grabcut.json) to the published card")
    a = ap.parse_args()
    if a.eval:
        from ..assets import CHECKPOINT_DIR

        variant = json.loads((Path(a.run_dir) / "run.json").read_text())["config"]["variant"]
        card = Path(a.dest_dir or CHECKPOINT_DIR) / f"{variant}.card.json"
        add_evaluation(card, [tuple(e.split("=", 1)) for e in a.eval])
        print(card)
    else:
        print(publish(a.run_dir, a.dest_dir, a.which))
