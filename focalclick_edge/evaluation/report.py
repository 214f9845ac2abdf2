"""Turning ``EvalResults`` into numbers people read: the summary table, the JSON report, the mIoU plot,
and the INT8-vs-FP32 ``--max-noc-drop`` gate."""
from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from ..fileio import atomic_file, write_json_atomic
from ..runtime.runs import gated_pairs, get_run
from .metrics import summarize
from .runner import EvalResults

THRESHOLDS = (0.85, 0.90, 0.95)
MIOU_AT = 5  # the table's mIoU@k column
# NoC means are sums of integers / n; without a little slack 6.2 - 6.1 would count as a 0.1000...05 drop.
_GATE_EPS = 1e-9


def run_key(dataset: str, run: str, several_datasets: bool) -> str:
    return f"{dataset}/{run}" if several_datasets else run


def _thr_key(thr: float) -> str:
    return f"{round(thr * 100):d}"


def _percentile(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if len(values) else None


def summarize_results(res: EvalResults) -> dict[str, dict[str, Any]]:
    """One summary per (dataset, run), keyed by ``run_key``; insertion order = dataset, then run order."""
    s = res.settings
    several = len(res.datasets) > 1
    out: dict[str, dict[str, Any]] = {}
    for ds in res.datasets:
        for run in s.runs:
            samples = res.results[(ds, run)]
            summary = summarize([np.asarray(r.ious) for r in samples], THRESHOLDS, s.max_clicks)
            for thr in THRESHOLDS:
                # A session stops at the stop IoU, so a higher threshold is never reached: not measurable.
                if np.float32(thr) > np.float32(s.stop_iou):
                    summary[f"noc{_thr_key(thr)}"] = None
                    summary[f"nof{_thr_key(thr)}"] = None
            latencies = [v for r in samples for v in r.latency_ms]
            stages = list(dict.fromkeys(k for r in samples for t in r.timings for k in t))  # Session's order
            spec = get_run(run)
            entry: dict[str, Any] = {"dataset": ds, "run": run, "backend": spec.backend, "precision": spec.precision}
            entry.update(summary)
            entry.update({
                "n_clicks": len(latencies),
                "latency_ms_p50": _percentile(latencies, 50),
                "latency_ms_p90": _percentile(latencies, 90),
                "latency_ms_mean": float(np.mean(latencies)) if latencies else None,
                "stage_ms_p50": {k: _percentile([t[k] for r in samples for t in r.timings if k in t], 50)
                                 for k in stages},
            })
            out[run_key(ds, run, several)] = entry
    return out


# ------------------------------------------------------------------------------------------------- table
def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def format_table(res: EvalResults, summaries: dict[str, dict[str, Any]]) -> str:
    s = res.settings
    k = min(MIOU_AT, s.max_clicks)
    n = {ds: len(names) for ds, names in res.names.items()}
    mode = "from initial masks" if s.from_init_mask else "from scratch"
    if s.misleading:
        mode += f", {s.misleading} misleading clicks (seed {s.misleading_seed})"
    if s.cfr:
        from ..runtime.cfr import parse_cfr

        spec = parse_cfr(s.cfr)
        mode += f", {spec.name if spec else 'no CFR'}"
    if s.merge != "official":
        mode += f", {s.merge} merge"
    head_line = (f"{', '.join(f'{d} ({n[d]} samples)' for d in n)} | {mode} | max {s.max_clicks} clicks, "
                 f"stop at IoU {s.stop_iou:g} | {res.workers} worker(s) x {res.threads or 'default'} threads")
    width = max([len("run")] + [len(key) for key in summaries])
    cols = f"{'run':<{width}}  {'NoC85':>6} {'NoC90':>6} {'NoC95':>6} {'NoF90':>6} {f'mIoU@{k}':>7} {'p50 ms':>8}"
    lines = [head_line, cols, "-" * len(cols)]
    for key, e in summaries.items():
        lines.append(
            f"{key:<{width}}  {_fmt(e['noc85'], '6.2f')} {_fmt(e['noc90'], '6.2f')} {_fmt(e['noc95'], '6.2f')} "
            f"{_fmt(e['nof90'], '6d')} {e['miou'][k - 1]:>7.4f} {_fmt(e['latency_ms_p50'], '8.1f')}"
        )
    if s.from_init_mask and res.init_masks:
        ious = [m["iou"] for rows in res.init_masks.values() for m in rows]
        lines.append(f"initial masks: mean IoU {np.mean(ious):.4f} (seed {s.init_mask_seed})")
    return "\n".join(lines)


# -------------------------------------------------------------------------------------------------- JSON
def _versions() -> dict[str, str]:
    out = {}
    # importlib.metadata reads the installed dists without importing the (heavy) packages.
    for dist in ("focalclick-edge", "numpy", "opencv-python-headless", "opencv-python", "onnxruntime", "openvino"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cfr_json(text: str | None) -> dict[str, Any] | None:
    from ..runtime.cfr import parse_cfr

    spec = parse_cfr(text)
    return None if spec is None else spec.to_json()


def _click_protocol(s: Any) -> dict[str, Any]:
    if not s.misleading:
        return {"name": "standard"}
    return {"name": "misleading (FDRN)", "misleading_per_sample": s.misleading, "seed": s.misleading_seed,
            "kinds": ["repetitive: positive click inside the previous predicted mask",
                      "false: the standard click with its label flipped"],
            "notes": "positions and kinds drawn per sample from (seed, sample name), never click 1, the same "
                     "for every run; samples.*.kinds says what each click was"}


def build_report(res: EvalResults, summaries: dict[str, dict[str, Any]]) -> dict[str, Any]:
    s = res.settings
    several = len(res.datasets) > 1
    samples: dict[str, dict[str, Any]] = {}
    for ds in res.datasets:
        for run in s.runs:
            samples[run_key(ds, run, several)] = {
                name: {"ious": r.ious, "clicks": [[x, y, int(p)] for x, y, p in r.clicks],
                       **({"kinds": r.kinds} if r.kinds is not None else {})}
                for name, r in zip(res.names[ds], res.results[(ds, run)], strict=True)
            }
    report: dict[str, Any] = {
        "runs": summaries,
        "samples": samples,
        "settings": {
            "model_dir": str(Path(s.model_dir).resolve()),
            "datasets": res.datasets,
            "runs": list(s.runs),
            "mode": "init_mask" if s.from_init_mask else "scratch",
            "click_protocol": _click_protocol(s),
            "cfr": _cfr_json(s.cfr),
            "merge": s.merge,
            "max_clicks": s.max_clicks,
            "thresholds": list(THRESHOLDS),
            "stop_iou": s.stop_iou,
            "pred_thresh": 0.5,
            "limit": s.limit,
            "init_mask_seed": s.init_mask_seed if s.from_init_mask else None,
            "init_mask_cache": str(Path(s.cache_dir).resolve()) if s.from_init_mask and s.cache_dir else None,
            "workers": res.workers,
            "engine": s.engine,
            "ray_address": s.ray_address,
            "threads": res.threads,
            "thread_settings": res.thread_settings,
            "notes": ("Sessions stop at stop_iou (0.95 by default; the official --target-iou is 0.90) so "
                      "NoC85/90/95 come from one pass; mIoU@k carries the last IoU forward after a stop. "
                      "samples.*.clicks are [x, y, positive]. Latency = the Session's total per click"
                      + (f", measured while {res.workers} workers ran at once." if res.workers > 1 else ".")),
        },
        "hardware": {"cpu": _cpu_name(), "cpu_count": os.cpu_count(), "platform": platform.platform(),
                     "python": platform.python_version()},
        "versions": _versions(),
        "wall_s": round(res.wall_s, 2),
    }
    if s.from_init_mask:
        report["initial_masks"] = {ds: dict(zip(res.names[ds], rows, strict=True))
                                   for ds, rows in res.init_masks.items()}
    return report


def write_report_json(path: str | Path, report: dict[str, Any]) -> None:
    write_json_atomic(path, report)


# -------------------------------------------------------------------------------------------------- plot
def require_matplotlib() -> None:
    """Fail before a long evaluation, not after it, when --plot cannot be honoured."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UserError("--plot needs matplotlib, which is not installed; `pip install matplotlib` "
                        "(or drop --plot)") from None


def write_plot(path: str | Path, res: EvalResults, summaries: dict[str, dict[str, Any]]) -> None:
    """mIoU vs number of clicks, one line per run, one panel per dataset; written atomically."""
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")  # no display needed, and no GUI backend picked up from the environment
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    s = res.settings
    path = Path(path)
    datasets = list(res.datasets)
    fig, axes = plt.subplots(1, len(datasets), figsize=(6.0 * len(datasets), 4.2), squeeze=False)
    x = np.arange(1, s.max_clicks + 1)
    mode = "from initial masks" if s.from_init_mask else "from scratch"
    # Runs often agree to the last digit (ort-fp32 vs ov-fp32); varied dashes keep both lines visible.
    styles = ["-", "--", "-.", ":"]
    for ax, ds in zip(axes[0], datasets, strict=True):
        ds_runs = [e for e in summaries.values() if e["dataset"] == ds]
        for i, e in enumerate(ds_runs):
            label = e["run"] if e["noc90"] is None else f"{e['run']} (NoC90 {e['noc90']:.2f})"
            ax.plot(x, e["miou"], linestyle=styles[i % len(styles)], marker="o", markersize=3, label=label)
        ax.set_title(f"{ds}: {mode}, {len(res.names[ds])} samples")
        ax.set_xlabel("clicks")
        ax.set_ylabel("mIoU")
        ax.set_xlim(1, max(s.max_clicks, 2))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fmt = path.suffix.lstrip(".").lower() or "png"
    try:
        with atomic_file(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=120)
    except ValueError as exc:  # matplotlib: unsupported format
        raise UserError(f"cannot write plot {path}: {exc}; use a .png file name") from None
    finally:
        plt.close(fig)


# -------------------------------------------------------------------------------------------------- gate
def check_gate_runs(runs: Sequence[str]) -> list[tuple[str, str]]:
    """The (int8, fp32) pairs ``--max-noc-drop`` compares; a one-line error when it cannot compare anything
    or an INT8 run lacks its FP32 baseline (checked before evaluating, not after)."""
    pairs = []
    for run, base in gated_pairs(runs):
        if base not in runs:
            raise UserError(f"--max-noc-drop compares {run} with {base}, but {base} is not in --runs "
                            f"({','.join(runs)}); add it")
        pairs.append((run, base))
    if not pairs:
        raise UserError(f"--max-noc-drop needs an INT8 run (ort-int8 or ov-int8) or ov-bf16 in --runs "
                        f"({','.join(runs)}); export with --int8 or drop --max-noc-drop")
    return pairs


def max_drop_failures(summaries: dict[str, dict[str, Any]], max_drop: float) -> list[str]:
    """One line per INT8 run whose NoC90 exceeds that of the FP32 run of the same backend (and dataset)
    by more than ``max_drop`` clicks."""
    by_ds_run = {(e["dataset"], e["run"]): (key, e) for key, e in summaries.items()}
    failures = []
    baselines = dict(gated_pairs(run for _, run in by_ds_run))
    for (ds, run), (key, e) in by_ds_run.items():
        base = baselines.get(run)
        if base is None:
            continue
        if (ds, base) not in by_ds_run:
            raise UserError(f"--max-noc-drop compares {run} with {base}, but there is no {base} result for {ds}")
        base_key, b = by_ds_run[(ds, base)]
        if e["noc90"] is None or b["noc90"] is None:
            raise UserError("--max-noc-drop compares NoC90, which needs a stop IoU of at least 0.90")
        drop = e["noc90"] - b["noc90"]
        if drop > max_drop + _GATE_EPS:
            failures.append(f"{key}: NoC90 {e['noc90']:.2f} vs {base_key} {b['noc90']:.2f} "
                            f"(+{drop:.2f} clicks > --max-noc-drop {max_drop:g})")
    return failures


__all__ = ["THRESHOLDS", "build_report", "check_gate_runs", "format_table", "max_drop_failures",
           "require_matplotlib", "run_key", "summarize_results", "write_plot", "write_report_json"]
