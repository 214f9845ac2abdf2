"""The FocalClick training loop: iterative click simulation, Segmentor + Refiner losses, Adam with
warm-up and step decay, resumable checkpoints in the official format, periodic NoC validation.

Files in the run folder:

| file | what |
|---|---|
| ``last.pth`` | latest weights, official ``{'state_dict', 'config'}`` format |
| ``best.pth`` | weights with the best validation NoC@90 so far (same format) |
| ``resume.pt`` | optimiser, step, RNG states, best score (``weights_only`` loadable) |
| ``train_log.jsonl`` | one line per iteration: losses, lr, seconds |
| ``val_log.jsonl`` | one line per validation |
| ``run.json`` | configuration and data counts |
"""
from __future__ import annotations

import json
import math
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..variants import get_variant
from .checkpoints import load_resume, save_official_checkpoint, save_resume
from .clicks import disk_maps, next_clicks, pad_points, points_to_focus
from .data import SamplePool, TrainSample, make_sample, open_datasets
from .losses import boundary_bce, boundary_weighted_nfl, normalized_focal_loss

FORBIDDEN_TRAINING_SETS = ("grabcut", "berkeley", "davis")


@dataclass
class TrainConfig:
    variant: str = "b0-s1"
    data: list[tuple[str, str]] = field(default_factory=list)
    out: str = "runs/train"
    iters: int = 20000
    batch: int = 4
    lr: float = 6e-4
    warmup: int = 150
    milestones: tuple[float, float] = (0.83, 0.92)  # fractions of ``iters`` (official: epochs 190/210 of 230)
    lr_gamma: float = 0.1
    grad_clip: float = 2.0
    max_next_clicks: int = 3
    copy_paste_prob: float = 0.25
    boundary_weight: float = 1.5
    bn_recal_batches: int = 40  # precise-BN batches before each validation and the final save
    val: list[tuple[str, str]] = field(default_factory=list)
    val_every: int = 300
    val_count: int = 24
    save_every: int = 25
    threads: int = 2
    seed: int = 0
    device: str = "auto"
    resume: bool = False
    init: str = ""  # official-format checkpoint to start from (fresh optimiser) when nothing is resumed
    schedule: str = "step"  # "step" (milestones) or "cosine" (to min_lr_frac x lr at iters)
    min_lr_frac: float = 0.02
    ema: float = 0.0  # weight EMA decay per step (0 = off); validation and best.pth then use the EMA weights
    autocast: str = "off"  # "bf16": forward passes under bfloat16 autocast (CPUs with AVX512-BF16 / AMX)


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def check_training_sets(specs: Sequence[tuple[str, str]]) -> None:
    """Refuse the evaluation benchmarks as training data (results on them would be meaningless)."""
    for name, path in specs:
        words = (name + " " + Path(path).name).lower()
        for bad in FORBIDDEN_TRAINING_SETS:
            if bad in words:
                raise ValueError(f"refusing to train on {name}={path}: {bad} is an evaluation benchmark")


def init_weights(model: torch.nn.Module) -> None:
    """Initialisation of the official MiT/SegFormer code (truncated normal 0.02 for Linear, fan-out
    normal for convs): the PyTorch defaults train a from-scratch transformer noticeably slower."""
    for m in model.modules():
        if isinstance(m, torch.nn.Linear):
            torch.nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                torch.nn.init.zeros_(m.bias)
        elif isinstance(m, torch.nn.LayerNorm):
            torch.nn.init.ones_(m.weight)
            torch.nn.init.zeros_(m.bias)
        elif isinstance(m, torch.nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
            torch.nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            if m.bias is not None:
                torch.nn.init.zeros_(m.bias)


def lr_at(cfg: TrainConfig, step: int) -> float:
    warm = min(1.0, (step + 1) / max(1, cfg.warmup))
    if cfg.schedule == "cosine":
        t = min(1.0, max(0, step - cfg.warmup) / max(1, cfg.iters - cfg.warmup))
        lo = cfg.lr * cfg.min_lr_frac
        return warm * (lo + (cfg.lr - lo) * 0.5 * (1.0 + math.cos(math.pi * t)))
    decays = sum(step >= int(f * cfg.iters) for f in cfg.milestones)
    return cfg.lr * warm * cfg.lr_gamma**decays


class WeightEMA:
    """Exponential moving average of the float weights; buffers (BN statistics) are copied, since precise-BN
    recalibration replaces them before every use of the averaged model anyway.

    Why: at batch 4 on CPU every step is noisy; the average of the last ~1/(1-decay) steps validates
    better than the last step at no extra forward cost."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.state = {k: t.detach().clone() for k, t in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        for k, t in model.state_dict().items():
            e = self.state[k]
            if t.is_floating_point():
                e.mul_(self.decay).add_(t.detach(), alpha=1.0 - self.decay)
            else:
                e.copy_(t)

    def model_copy(self, model: torch.nn.Module) -> torch.nn.Module:
        import copy

        m = copy.deepcopy(model)
        m.load_state_dict(self.state, strict=True)
        return m


def _stack(samples: list[TrainSample], dev: torch.device) -> dict[str, torch.Tensor]:
    def t(name: str) -> torch.Tensor:
        return torch.from_numpy(np.stack([getattr(s, name) for s in samples])).to(dev)

    return {
        "image": t("image"),
        "mask": t("mask")[:, None],
        "image_focus": t("image_focus"),
        "mask_focus": t("mask_focus")[:, None],
        "boundary_focus": t("boundary_focus")[:, None],
        "roi": t("roi"),
        "points": pad_points([s.points for s in samples]).to(dev),
    }


AUTOCAST_MODES = ("off", "bf16")


def _autocast(cfg: TrainConfig, dev: torch.device) -> Any:
    """bfloat16 autocast for the forwards when asked; a no-op context otherwise."""
    return torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cfg.autocast == "bf16")


def train_step(model: torch.nn.Module, batch: dict[str, torch.Tensor], rng: np.random.Generator,
               cfg: TrainConfig) -> tuple[torch.Tensor, dict[str, float]]:
    """Forward one batch with RITM-style iterative clicks; returns (loss, logged parts)."""
    v = model.variant
    image, mask, points = batch["image"], batch["mask"], batch["points"]
    size = tuple(image.shape[-2:])
    prev = torch.zeros_like(mask)
    n_iter = int(rng.integers(0, cfg.max_next_clicks + 1))
    if n_iter:
        # The extra clicks come from the model's own predictions (eval mode, no gradient), so the
        # net learns to correct its own typical errors and to use the previous mask.
        model.eval()
        with torch.no_grad(), _autocast(cfg, image.device):
            for _ in range(n_iter):
                maps = disk_maps(points, size, v.segmentor_disk_radius)
                prev = torch.sigmoid(model(torch.cat([image, prev], 1), maps)["instances"].float())
                new = next_clicks(prev[:, 0].cpu().numpy(), mask[:, 0].cpu().numpy(), rng)
                rows = [torch.from_numpy(c) if c is not None else torch.full((3,), -1.0) for c in new]
                points = torch.cat([points, torch.stack(rows)[:, None].to(points.device)], 1)
        model.train()
    maps = disk_maps(points, size, v.segmentor_disk_radius)
    roi = batch["roi"]
    focus_pts = points_to_focus(points, roi, batch["image_focus"].shape[-1])
    focus_maps = disk_maps(focus_pts, tuple(batch["image_focus"].shape[-2:]), v.refiner_disk_radius)
    rois5 = torch.cat([torch.arange(len(roi), device=roi.device, dtype=roi.dtype)[:, None], roi], 1)
    with _autocast(cfg, image.device):
        out = model(torch.cat([image, prev], 1), maps)
        ref = model.refine(batch["image_focus"], focus_maps, out["feature"], out["instances"], rois5)
    # Losses in float32: the focal-loss normalisation sums over whole maps.
    out = {k: t.float() if torch.is_tensor(t) else t for k, t in out.items()}
    ref = {k: t.float() if torch.is_tensor(t) else t for k, t in ref.items()}
    l_seg = normalized_focal_loss(out["instances"], mask)
    l_bnd = boundary_bce(ref["trimap"], batch["boundary_focus"])
    l_ref = boundary_weighted_nfl(ref["instances_refined"], batch["mask_focus"], batch["boundary_focus"],
                                  cfg.boundary_weight)
    loss = l_seg + l_bnd + l_ref
    with torch.no_grad():
        pred = out["instances"] > 0
        gt = mask > 0.5
        iou = ((pred & gt).sum((1, 2, 3)).float() / ((pred | gt).sum((1, 2, 3)).float() + 1e-6)).mean()
    parts = {"loss": loss.item(), "nfl": l_seg.item(), "boundary_bce": l_bnd.item(),
             "refine_nfl": l_ref.item(), "train_iou": iou.item(),
             "clicks": (points[..., 2] >= 0).sum(1).float().mean().item()}
    return loss, parts


def recalibrate_bn(model: torch.nn.Module, pool: SamplePool, cfg: TrainConfig, seed: int, batches: int = 40,
                   dev: torch.device | None = None) -> None:
    """Precise BatchNorm: replace the running statistics by the exact average over ``batches`` fresh
    training batches (forward only, train-mode BN, cumulative average).

    Why: at batch 4 the EMA (momentum 0.1, about 40 images) of a fast-changing from-scratch net is
    both noisy and lagging; eval-mode outputs (validation, export, and the iterative-click forwards)
    were measured far worse than train-mode ones (coarse IoU 0.35 vs 0.43 on the same batch) and
    recalibration closed that gap. Only BN buffers change, so checkpoints stay format-compatible."""
    dev = dev or next(model.parameters()).device
    rng = np.random.default_rng(seed)  # own stream: the training RNG (and resume) stays untouched
    v = model.variant
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average = plain mean over the calibration batches
    was_training = model.training
    model.train()
    try:
        with torch.no_grad():
            for _ in range(batches):
                b = _stack([make_sample(pool, rng, cfg.copy_paste_prob) for _ in range(cfg.batch)], dev)
                image, mask, points = b["image"], b["mask"], b["points"]
                size = tuple(image.shape[-2:])
                prev = torch.zeros_like(mask)
                if rng.random() < 0.5:
                    # Also calibrate on inputs that carry a previous mask, as later clicks do.
                    out = model(torch.cat([image, prev], 1), disk_maps(points, size, v.segmentor_disk_radius))
                    prev = torch.sigmoid(out["instances"])
                    new = next_clicks(prev[:, 0].cpu().numpy(), mask[:, 0].cpu().numpy(), rng)
                    rows = [torch.from_numpy(c) if c is not None else torch.full((3,), -1.0) for c in new]
                    points = torch.cat([points, torch.stack(rows)[:, None].to(dev)], 1)
                out = model(torch.cat([image, prev], 1), disk_maps(points, size, v.segmentor_disk_radius))
                roi = b["roi"]
                rois5 = torch.cat([torch.arange(len(roi), device=dev, dtype=roi.dtype)[:, None], roi], 1)
                focus = disk_maps(points_to_focus(points, roi), size, v.refiner_disk_radius)
                model.refine(b["image_focus"], focus, out["feature"], out["instances"], rois5)
    finally:
        for m, mom in zip(bns, momenta, strict=True):
            m.momentum = mom
        model.train(was_training)


def _rng_state(rng: np.random.Generator) -> dict[str, Any]:
    st = rng.bit_generator.state
    # Python ints beyond 64 bits are stored as strings, which any unpickler accepts.
    return {"bit_generator": st["bit_generator"], "state": str(st["state"]["state"]),
            "inc": str(st["state"]["inc"]), "has_uint32": int(st["has_uint32"]),
            "uinteger": int(st["uinteger"])}


def _set_rng_state(rng: np.random.Generator, saved: dict[str, Any]) -> None:
    rng.bit_generator.state = {
        "bit_generator": saved["bit_generator"],
        "state": {"state": int(saved["state"]), "inc": int(saved["inc"])},
        "has_uint32": int(saved["has_uint32"]), "uinteger": int(saved["uinteger"]),
    }


def _val_samples(cfg: TrainConfig) -> list[tuple[np.ndarray, np.ndarray]]:
    if not cfg.val:
        return []
    # Masks are checked only for the chosen samples: reading all 5,019 DUTS-TE masks costs a minute.
    sets = open_datasets(cfg.val, check_masks=False)
    if cfg.val_count <= 0:  # every image of the (already split-off) validation folders
        return [(smp.image, smp.gt) for s in sets for smp in (s.dataset[i] for i in range(len(s)))  # type: ignore[index]
                if (smp.gt == 1).any()]
    per = max(1, cfg.val_count // len(sets))
    out = []
    for s in sets:
        # Evenly spaced over the sorted names: a fixed, reproducible subset that spans the dataset.
        idx = np.unique(np.linspace(0, len(s) - 1, num=min(per, len(s))).round().astype(int))
        for i in idx:
            sample = s.dataset[int(i)]  # type: ignore[index]
            if (sample.gt == 1).any():
                out.append((sample.image, sample.gt))
    return out


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Run (or resume) training; returns a summary dict."""
    check_training_sets(cfg.data)
    if not cfg.data:
        raise ValueError("no training data; pass --data NAME=PATH (repeatable)")
    torch.set_num_threads(cfg.threads)
    dev = torch.device("cuda" if cfg.device == "auto" and torch.cuda.is_available() else
                       ("cpu" if cfg.device == "auto" else cfg.device))
    out_dir = Path(cfg.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    variant = get_variant(cfg.variant)

    sets = open_datasets(cfg.data)
    counts = {s.name: {"path": str(s.path), "samples": len(s),
                       "skipped": {k: len(v) for k, v in s.skipped.items()}} for s in sets}
    for name, c in counts.items():
        _log(f"data {name}: {c['samples']} samples, skipped {c['skipped']}")
    pool = SamplePool(sets)
    val_samples = _val_samples(cfg)
    _log(f"validation: {len(val_samples)} samples from {[n for n, _ in cfg.val] or 'none'}")

    from ..models import build_model

    model = build_model(variant)
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    optim = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.999), eps=1e-8)
    start, best, wall = 0, math.inf, 0.0
    resume_path, last_path, best_path = out_dir / "resume.pt", out_dir / "last.pth", out_dir / "best.pth"
    saved: dict[str, Any] | None = None
    if cfg.resume and resume_path.exists() and last_path.exists():
        from ..models.checkpoint import read_checkpoint

        state, _ = read_checkpoint(last_path)
        model.load_state_dict(state, strict=True)
        saved = load_resume(resume_path)
        optim.load_state_dict(saved["optimizer"])
        start, best, wall = int(saved["step"]), float(saved["best_noc90"]), float(saved.get("wall_s", 0.0))
        _set_rng_state(rng, saved["rng"])
        torch.set_rng_state(saved["torch_rng"])
        _log(f"resumed from step {start} (best NoC@90 {best:.2f}, {wall / 3600:.2f} h trained)")
    elif cfg.init:
        from ..models.checkpoint import read_checkpoint

        state, _ = read_checkpoint(cfg.init)
        model.load_state_dict(state, strict=True)
        saved = None
        _log(f"initialised from {cfg.init} (fresh optimiser, step 0)")
    else:
        saved = None
        init_weights(model)
        if cfg.resume:
            _log(f"--resume: nothing to resume in {out_dir}, starting from scratch")
    model.to(dev).train()
    ema = WeightEMA(model, cfg.ema) if cfg.ema > 0 else None
    if ema is not None and saved is not None and "ema" in saved:
        ema.state = {k: t.to(dev) for k, t in saved["ema"].items()}
    for st in optim.state.values():
        for k, t in st.items():
            if isinstance(t, torch.Tensor):
                st[k] = t.to(dev)
    run_info = {"config": asdict(cfg), "data": counts, "device": str(dev),
                "torch": torch.__version__, "val_samples": len(val_samples)}
    (out_dir / "run.json").write_text(json.dumps(run_info, indent=2))

    stop = {"flag": False}

    def _on_signal(signum: int, frame: Any) -> None:  # noqa: ARG001 - signal handler signature
        stop["flag"] = True

    old_handlers = {s: signal.signal(s, _on_signal) for s in (signal.SIGTERM, signal.SIGINT)}

    def save(step: int) -> None:
        save_official_checkpoint(model, variant, last_path)
        save_resume({"step": step, "optimizer": optim.state_dict(), "rng": _rng_state(rng),
                     "torch_rng": torch.get_rng_state(), "best_noc90": best, "wall_s": wall,
                     "variant": variant.id, **({"ema": ema.state} if ema is not None else {})}, resume_path)

    from tqdm import tqdm

    bar = tqdm(total=cfg.iters, initial=start, desc="train", file=sys.stderr, dynamic_ncols=True,
               mininterval=1.0 if sys.stderr.isatty() else 60.0)
    train_log = open(out_dir / "train_log.jsonl", "a")
    step = start
    last_val: dict[str, float] = {}
    try:
        while step < cfg.iters and not stop["flag"]:
            t0 = time.perf_counter()
            lr = lr_at(cfg, step)
            for g in optim.param_groups:
                g["lr"] = lr
            samples = [make_sample(pool, rng, cfg.copy_paste_prob) for _ in range(cfg.batch)]
            batch = _stack(samples, dev)
            t1 = time.perf_counter()
            loss, parts = train_step(model, batch, rng, cfg)
            if not math.isfinite(parts["loss"]):
                _log(f"step {step}: non-finite loss {parts}; skipping the update")
                optim.zero_grad(set_to_none=True)
            else:
                optim.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                optim.step()
                if ema is not None:
                    ema.update(model)
            step += 1
            dt = time.perf_counter() - t0
            wall += dt
            rec = {"step": step, "lr": lr, "data_s": round(t1 - t0, 3), "step_s": round(dt, 3),
                   **{k: round(v, 5) for k, v in parts.items()}}
            train_log.write(json.dumps(rec) + "\n")
            train_log.flush()
            bar.update(1)
            bar.set_postfix(loss=f"{parts['loss']:.3f}", iou=f"{parts['train_iou']:.2f}", lr=f"{lr:.1e}",
                            refresh=False)
            if step % cfg.save_every == 0 or step == cfg.iters:
                save(step)
            if step == cfg.iters or (val_samples and step % cfg.val_every == 0):
                tv = time.perf_counter()
                if cfg.bn_recal_batches > 0:
                    recalibrate_bn(model, pool, cfg, seed=cfg.seed * 1_000_003 + step,
                                   batches=cfg.bn_recal_batches, dev=dev)
                save(step)
                judged = model
                if ema is not None:
                    # The averaged weights get their own precise-BN statistics (same batches).
                    judged = ema.model_copy(model)
                    if cfg.bn_recal_batches > 0:
                        recalibrate_bn(judged, pool, cfg, seed=cfg.seed * 1_000_003 + step,
                                       batches=cfg.bn_recal_batches, dev=dev)
                    save_official_checkpoint(judged, variant, out_dir / "ema.pth")
            if val_samples and (step % cfg.val_every == 0 or step == cfg.iters):
                last_val = noc_validation_safe(judged, val_samples)
                last_val.update({"step": step, "seconds": round(time.perf_counter() - tv, 1),
                                 "wall_h": round(wall / 3600, 3)})
                with open(out_dir / "val_log.jsonl", "a") as fh:
                    fh.write(json.dumps(last_val) + "\n")
                _log(f"validation at step {step}: {last_val}")
                if last_val.get("NoC@90", math.inf) < best:
                    best = last_val["NoC@90"]
                    save_official_checkpoint(judged, variant, best_path)
                    _log(f"new best NoC@90 {best:.2f} -> {best_path}")
                save(step)
    finally:
        bar.close()
        train_log.close()
        save(step)
        for s, h in old_handlers.items():
            signal.signal(s, h)
    _log(f"stopped at step {step} ({'signal' if stop['flag'] else 'done'}); unreadable samples "
         f"skipped while training: {pool.unreadable}")
    return {"step": step, "best_noc90": best, "last_val": last_val, "wall_s": wall, "out": str(out_dir)}


def noc_validation_safe(model: torch.nn.Module, samples: list[tuple[np.ndarray, np.ndarray]]
                        ) -> dict[str, float]:
    from .validate import noc_validation

    with torch.no_grad():
        return noc_validation(model, samples)
