"""The trainer end to end on 4 tiny COCO-MVal images: finite losses, an official-format checkpoint that
``load_checkpoint`` reads, and ``--resume`` continuing from the saved step."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import load_manifest  # noqa: E402

from focalclick_edge.training.checkpoints import official_config  # noqa: E402
from focalclick_edge.training.clicks import disk_maps, points_to_focus  # noqa: E402
from focalclick_edge.training.data import boundary_map  # noqa: E402
from focalclick_edge.training.losses import boundary_weighted_nfl, normalized_focal_loss  # noqa: E402
from focalclick_edge.training.trainer import TrainConfig, check_training_sets, train  # noqa: E402

DATA = Path(__file__).parent / "fixtures" / "data" / "train"


def _read_log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_train_save_reload_resume(tmp_path: Path) -> None:
    from focalclick_edge.models import load_checkpoint

    out = tmp_path / "run"
    cfg = TrainConfig(variant="b0-s1", data=[("COCO_MVal", str(DATA))], out=str(out), iters=2, batch=2,
                      warmup=1, save_every=100, threads=1, seed=3, max_next_clicks=1,
                      bn_recal_batches=2)
    summary = train(cfg)
    assert summary["step"] == 2
    log = _read_log(out / "train_log.jsonl")
    assert [r["step"] for r in log] == [1, 2]
    for rec in log:
        for key in ("loss", "nfl", "boundary_bce", "refine_nfl"):
            assert np.isfinite(rec[key]), rec

    # Official format: plain tensors + the @serialize config, readable with weights_only=True.
    raw = torch.load(out / "last.pth", map_location="cpu", weights_only=True)
    assert set(raw) == {"state_dict", "config"}
    model = load_checkpoint(out / "last.pth")
    assert model.variant.id == "b0-s1"

    cfg.iters, cfg.resume = 3, True
    summary = train(cfg)
    assert summary["step"] == 3
    log = _read_log(out / "train_log.jsonl")
    assert [r["step"] for r in log] == [1, 2, 3]
    resume = torch.load(out / "resume.pt", map_location="cpu", weights_only=True)
    assert resume["step"] == 3


def test_official_config_matches_reference() -> None:
    ref = load_manifest("b0-s1")["checkpoint_config"]
    ours = json.loads(json.dumps(official_config("b0-s1")))  # tuples -> lists, as in the manifest
    assert ours == ref
    assert list(ours["params"]) == list(ref["params"])


def test_refuses_benchmarks_as_training_data() -> None:
    with pytest.raises(ValueError, match="benchmark"):
        check_training_sets([("GrabCut", "/data/GrabCut")])
    with pytest.raises(ValueError, match="benchmark"):
        check_training_sets([("mine", "/data/Berkeley")])


def test_disk_maps_match_runtime_disks() -> None:
    from focalclick_edge.runtime.geometry import click_disks

    pts = np.array([[10.0, 20.0, 1.0], [100.5, 37.25, 0.0], [-1.0, -1.0, -1.0], [250.0, 3.0, 1.0]],
                   np.float32)
    ours = disk_maps(torch.from_numpy(pts)[None], (256, 256), 3.0)[0].numpy()
    ref = click_disks(pts, (256, 256), 3.0)
    np.testing.assert_array_equal(ours, ref)
    focus = points_to_focus(torch.from_numpy(pts)[None], torch.tensor([[16.0, 0.0, 144.0, 128.0]]))[0]
    assert focus[0, 0] == pytest.approx(20.0) and focus[0, 1] == pytest.approx(8.0)
    assert (focus[2] == -1).all()


def test_losses_behave() -> None:
    target = torch.zeros(2, 1, 32, 32)
    target[:, :, 8:24, 8:24] = 1
    good = (target * 2 - 1) * 8
    assert normalized_focal_loss(good, target) < normalized_focal_loss(-good, target)
    bnd = torch.from_numpy(boundary_map(target[0, 0].numpy()))[None, None].expand(2, 1, 32, 32)
    flat = torch.zeros_like(good)
    assert boundary_weighted_nfl(good, target, bnd) < boundary_weighted_nfl(flat, target, bnd)


def test_noc_validation_runs_the_click_loop() -> None:
    from focalclick_edge.evaluation.datasets import load_dataset
    from focalclick_edge.models import build_model
    from focalclick_edge.training.validate import noc_validation

    ds = load_dataset("COCO_MVal", DATA)
    samples = [(ds[0].image, ds[0].gt)]
    res = noc_validation(build_model("b0-s1"), samples, max_clicks=2)
    assert 1 <= res["NoC@90"] <= 2 and 0.0 <= res["mIoU@1"] <= 1.0 and res["samples"] == 1


def test_published_card_takes_the_noc_figures_of_eval_results(tmp_path):
    import json

    from focalclick_edge.training.card import add_evaluation

    run = {"dataset": "GrabCut", "n_samples": 50, "max_clicks": 20, "noc85": 3.5, "noc90": 5.25, "noc95": 9.0,
           "nof85": 1, "nof90": 2, "nof95": 7, "miou": [0.5, 0.75]}
    ev = tmp_path / "eval.json"
    ev.write_text(json.dumps({"runs": {"ort-fp32": run, "ov-int8": {**run, "noc90": 5.5}}}))
    card = tmp_path / "b0-s1.card.json"
    card.write_text(json.dumps({"variant": "b0-s1"}))
    add_evaluation(card, [("scratch", str(ev))])
    rows = json.loads(card.read_text())["evaluation"]["results"]
    assert [(r["run"], r["mode"], r["noc90"]) for r in rows] == [("ort-fp32", "scratch", 5.25),
                                                                 ("ov-int8", "scratch", 5.5)]
    assert rows[0]["miou_at_k"] == [0.5, 0.75] and rows[0]["dataset"] == "GrabCut"


def test_init_starts_from_given_weights_with_ema_and_cosine_schedule(tmp_path: Path) -> None:
    """--init loads the weights (step 0, fresh optimiser), the EMA copy is saved as ema.pth and kept in
    resume.pt, and the cosine schedule ends at min_lr_frac x lr."""
    from focalclick_edge.models.checkpoint import read_checkpoint
    from focalclick_edge.training.trainer import lr_at

    first = tmp_path / "a"
    cfg = TrainConfig(variant="b0-s1", data=[("COCO_MVal", str(DATA))], out=str(first), iters=1, batch=2,
                      warmup=1, save_every=100, threads=1, seed=3, max_next_clicks=0, bn_recal_batches=1)
    train(cfg)
    init_state, _ = read_checkpoint(first / "last.pth")

    out = tmp_path / "b"
    cfg2 = TrainConfig(variant="b0-s1", data=[("COCO_MVal", str(DATA))], out=str(out), iters=2, batch=2,
                       warmup=1, save_every=100, threads=1, seed=4, max_next_clicks=0, bn_recal_batches=1,
                       init=str(first / "last.pth"), schedule="cosine", ema=0.5, lr=1e-9)
    summary = train(cfg2)
    assert summary["step"] == 2
    # lr 1e-9 barely moves the weights: the run really started from the --init weights, not from scratch.
    state, _ = read_checkpoint(out / "last.pth")
    key = next(k for k, t in init_state.items() if t.is_floating_point() and t.ndim == 4)
    assert torch.allclose(state[key], init_state[key], atol=1e-5)
    assert (out / "ema.pth").exists()
    resume = torch.load(out / "resume.pt", map_location="cpu", weights_only=True)
    assert set(resume["ema"]) == set(state)
    sched = TrainConfig(iters=100, warmup=10, lr=1.0, schedule="cosine", min_lr_frac=0.02)
    assert lr_at(sched, 10) == pytest.approx(1.0)
    assert lr_at(sched, 100) == pytest.approx(0.02)
    assert lr_at(sched, 55) == pytest.approx(0.51)


def test_bf16_autocast_trains_with_losses_close_to_fp32(tmp_path: Path) -> None:
    """--autocast bf16 runs the forwards in bfloat16 (the loss differs from fp32 in its low bits) and the
    losses stay within a few percent of fp32 on the same samples."""
    losses = {}
    for mode in ("off", "bf16"):
        out = tmp_path / mode
        cfg = TrainConfig(variant="b0-s1", data=[("COCO_MVal", str(DATA))], out=str(out), iters=2, batch=2,
                          warmup=1, save_every=100, threads=1, seed=3, max_next_clicks=1, bn_recal_batches=1,
                          autocast=mode)
        train(cfg)
        losses[mode] = [r["loss"] for r in _read_log(out / "train_log.jsonl")]
    assert losses["off"] != losses["bf16"]
    for a, b in zip(losses["off"], losses["bf16"], strict=True):
        assert np.isfinite(b) and abs(a - b) <= 0.05 * abs(a), losses
