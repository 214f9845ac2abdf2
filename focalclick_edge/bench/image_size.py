"""Per-click cost against image size: ``bench --image-mp 0.4,12,48``.

An image and its ground-truth mask are upscaled (bilinear / nearest) to each size; in a fresh process per
size (so that peak RSS is that size's own), one run's Session replays the official clicker's clicks and we
record ``set_image`` (the upscaled array is already in memory: decoding excluded), per-click time around
``add_click`` plus reading ``.mask`` (p50 of clicks ``2..8``), and peak RSS after the clicks. The clicks
come from a first process per size that plays the clicker against the session (its full-image distance
transforms peak at ~0.9 GB at 48 MP, which is the evaluation's cost, not the session's); the measuring
process replays them with neither the clicker nor the ground truth in memory. Sizes are
repeated in interleaved rounds; the report gives each size's figures and their ratios to the smallest
size within the same run (absolute times on a shared machine drift, ratios much less).

``python -m focalclick_edge.bench.image_size SPEC.json OUT.json`` is the per-size worker.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

#: Targets of the image-size curve (issue: per-click cost that does not grow with the photo).
TARGETS = {"per_click_ratio": {12.0: 1.5, 48.0: 2.0}, "set_image_ms_48mp": 300.0, "peak_rss_mb_48mp": 1024.0}
TIMED_CLICKS = range(1, 8)  # clicks 2..8 (0-based indices)


def upscale_to_mp(image: np.ndarray, mask: np.ndarray | None, mp: float) -> tuple[np.ndarray, np.ndarray | None]:
    """``image`` (bilinear) and ``mask`` (nearest; None stays None) resized to ``mp`` megapixels, aspect kept."""
    import cv2

    h, w = image.shape[:2]
    f = (mp * 1e6 / (h * w)) ** 0.5
    size = (max(1, round(w * f)), max(1, round(h * f)))
    img = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    if mask is None:
        return img, None
    return img, cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)


def _peak_rss_mb() -> float:
    from .worker import _peak_rss_mb as peak

    return peak()


def _session(spec: dict[str, Any]) -> Any:
    from ..runtime.session import Session

    return Session(spec["model_dir"], run=spec["run"], threads=int(spec["threads"]), **spec.get("session_kwargs", {}))


def _upscaled_image(spec: dict[str, Any]) -> np.ndarray:
    from ..runtime.images import read_image

    return upscale_to_mp(read_image(spec["image"]), None, float(spec["mp"]))[0]


def official_clicks(spec: dict[str, Any]) -> list[tuple[int, int, bool]]:
    """The official clicker's ``spec["clicks"]`` clicks for this size, played against the session."""
    from ..evaluation.clicker import Clicker
    from ..runtime.images import read_image, read_mask

    image = read_image(spec["image"])
    image, gt = upscale_to_mp(image, read_mask(spec["mask"], image.shape[:2]), float(spec["mp"]))
    session = _session(spec)
    session.set_image(image)
    clicker = Clicker(gt)
    pred = np.zeros(gt.shape, bool)
    clicks = []
    for _ in range(int(spec["clicks"])):
        c = clicker.make_next_click(pred)
        clicks.append((int(c.x), int(c.y), bool(c.positive)))
        pred = session.add_click(c.x, c.y, c.positive).mask
    return clicks


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    """One size in this process: ``sessions`` timed sessions replaying ``spec["replay"]`` (from
    ``official_clicks`` in another process)."""
    image = _upscaled_image(spec)
    session = _session(spec)
    clicks = [tuple(c) for c in spec["replay"]]
    set_image_ms, per_click = [], []
    for _ in range(int(spec["sessions"])):
        t0 = time.perf_counter()
        session.set_image(image)
        set_image_ms.append((time.perf_counter() - t0) * 1e3)
        for k, (x, y, p) in enumerate(clicks):
            t0 = time.perf_counter()
            _ = session.add_click(x, y, p).mask
            if k in TIMED_CLICKS:
                per_click.append((time.perf_counter() - t0) * 1e3)
    return {"mp": float(spec["mp"]), "image_hw": list(image.shape[:2]), "set_image_ms": set_image_ms,
            "per_click_ms": per_click, "peak_rss_mb": _peak_rss_mb()}


def run_image_size_bench(model_dir: Path, run: str, mps: list[float], threads: int, image: Path, mask: Path,
                         rounds: int = 2, sessions: int = 2, clicks: int = 8, session_kwargs: dict | None = None,
                         log=print) -> dict[str, Any]:
    """Every size in its own process, ``rounds`` times interleaved; samples pooled per size."""
    pooled: dict[float, dict[str, Any]] = {}
    replay: dict[float, list] = {}
    with tempfile.TemporaryDirectory(prefix="fce-imgsize-") as tmp:

        def worker(spec: dict[str, Any], what: str) -> dict[str, Any]:
            spec_path, out_path = Path(tmp) / "spec.json", Path(tmp) / "out.json"
            spec_path.write_text(json.dumps(spec))
            proc = subprocess.run([sys.executable, "-m", "focalclick_edge.bench.image_size", str(spec_path),
                                   str(out_path)], capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"image-size worker failed ({what}): {proc.stderr.strip()[-2000:]}")
            return json.loads(out_path.read_text())

        for r in range(rounds):
            for mp in mps:
                spec = {"model_dir": str(model_dir), "run": run, "mp": mp, "threads": threads, "image": str(image),
                        "mask": str(mask), "sessions": sessions, "clicks": clicks,
                        "session_kwargs": session_kwargs or {}}
                if mp not in replay:
                    log(f"{mp} MP: official clicker")
                    replay[mp] = worker({**spec, "phase": "clicks"}, f"clicker at {mp} MP")["clicks"]
                log(f"round {r + 1}/{rounds}: {mp} MP")
                res = worker({**spec, "replay": replay[mp]}, f"{mp} MP")
                p = pooled.setdefault(mp, {"mp": mp, "image_hw": res["image_hw"], "set_image_ms": [],
                                           "per_click_ms": [], "peak_rss_mb": 0.0})
                p["set_image_ms"] += res["set_image_ms"]
                p["per_click_ms"] += res["per_click_ms"]
                p["peak_rss_mb"] = max(p["peak_rss_mb"], res["peak_rss_mb"])
    sizes = []
    base = None
    for mp in mps:
        p = pooled[mp]
        row = {"mp": mp, "image_hw": p["image_hw"], "per_click_p50_ms": float(np.median(p["per_click_ms"])),
               "set_image_ms": float(np.median(p["set_image_ms"])), "peak_rss_mb": p["peak_rss_mb"],
               "n_clicks": len(p["per_click_ms"])}
        base = base or row["per_click_p50_ms"]
        row["per_click_ratio"] = row["per_click_p50_ms"] / base
        sizes.append(row)
    from ..hardware import cpu_fingerprint

    return {"run": run, "threads": threads, "image": str(image), "rounds": rounds, "sizes": sizes,
            "hardware": cpu_fingerprint(), "targets": {"per_click_ratio": {str(k): v for k, v in
                                                                           TARGETS["per_click_ratio"].items()},
                                                       "set_image_ms_48mp": TARGETS["set_image_ms_48mp"],
                                                       "peak_rss_mb_48mp": TARGETS["peak_rss_mb_48mp"]}}


def format_image_size_table(result: dict[str, Any]) -> str:
    lines = [f"run {result['run']}, {result['threads']} threads, {result['rounds']} interleaved rounds; per click = "
             "p50 of clicks 2-8 around add_click + .mask",
             "| image | size | per click | vs smallest | set_image | peak RSS |",
             "| --- | --- | --- | --- | --- | --- |"]
    for s in result["sizes"]:
        h, w = s["image_hw"]
        lines.append(f"| {s['mp']:g} MP | {w}x{h} | {s['per_click_p50_ms']:.1f} ms | {s['per_click_ratio']:.2f}x | "
                     f"{s['set_image_ms']:.0f} ms | {s['peak_rss_mb']:.0f} MB |")
    return "\n".join(lines)



def write_image_size_plot(result: dict[str, Any], path: str | Path) -> None:
    """PNG: per-click p50 and ``set_image`` against megapixels (log-log), the target ratios as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = result["sizes"]
    mps = [s["mp"] for s in sizes]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(mps, [s["per_click_p50_ms"] for s in sizes], "o-", label="per click p50")
    ax.plot(mps, [s["set_image_ms"] for s in sizes], "s-", label="set_image")
    base = sizes[0]["per_click_p50_ms"]
    targets = [(sizes[0]["mp"], base)] + sorted((mp, base * r) for mp, r in TARGETS["per_click_ratio"].items())
    ax.plot([t[0] for t in targets], [t[1] for t in targets], "k--", label="per-click target")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("megapixels")
    ax.set_ylabel("ms")
    ax.set_title(f"{result.get('run', '')}, {result.get('threads', '')} threads")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text())
    out = {"clicks": official_clicks(spec)} if spec.get("phase") == "clicks" else measure(spec)
    Path(argv[1]).write_text(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
