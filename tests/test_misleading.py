"""Misleading clicks (FDRN protocol): per-sample plans from the seed, the two kinds, and `eval --misleading`."""
from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("onnx")

from conftest import FIXTURES  # noqa: E402
from test_eval_cli import _eval, model_dir  # noqa: E402,F401  (the blob model fixture)

from focalclick_edge.evaluation.clicker import Clicker  # noqa: E402
from focalclick_edge.evaluation.misleading import MisleadingClicker, MisleadingPlan, plan_for  # noqa: E402

GRABCUT = FIXTURES / "data" / "GrabCut"


def test_plans_are_drawn_per_sample_from_the_seed_and_never_mislead_the_first_click():
    a = plan_for("teddy", 5, 0, 20)
    assert a == plan_for("teddy", 5, 0, 20)  # the same in every process: no hash() randomisation
    assert len(a.kinds) == 5 and all(1 <= i <= 19 for i in a.kinds)
    assert set(a.kinds.values()) <= {"repetitive", "false"}
    assert plan_for("227092", 5, 0, 20) != a and plan_for("teddy", 5, 1, 20) != a
    assert plan_for("teddy", 0, 0, 20).kinds == {}
    with pytest.raises(ValueError, match="misleading"):
        plan_for("teddy", 20, 0, 20)


def _gt_and_pred():
    gt = np.zeros((40, 50), np.int8)
    gt[10:30, 10:30] = 1
    pred = np.zeros(gt.shape, bool)
    pred[12:28, 12:40] = True  # misses a border, spills to the right
    return gt, pred


def test_a_false_click_is_the_standard_click_with_its_label_flipped():
    gt, pred = _gt_and_pred()
    standard = Clicker(gt).make_next_click(pred)
    clicker = MisleadingClicker(gt, MisleadingPlan({0: "false"}, {0: 0.5}))
    click = clicker.make_next_click(pred)
    assert (click.y, click.x) == (standard.y, standard.x) and click.positive != standard.positive
    assert clicker.kinds == ["false"]
    assert clicker.make_next_click(pred) != click  # its pixel is taken, like any click's


def test_a_repetitive_click_is_positive_inside_the_predicted_mask_and_needs_one():
    gt, pred = _gt_and_pred()
    for u in (0.0, 0.37, 0.999):
        clicker = MisleadingClicker(gt, MisleadingPlan({0: "repetitive"}, {0: u}))
        click = clicker.make_next_click(pred)
        assert click.positive and pred[click.y, click.x] and clicker.kinds == ["repetitive"]
    clicker = MisleadingClicker(gt, MisleadingPlan({0: "repetitive"}, {0: 0.5}))
    clicker.make_next_click(np.zeros(gt.shape, bool))  # nothing predicted: nothing to repeat
    assert clicker.kinds == ["false"]


def test_eval_misleading_records_each_clicks_kind_the_same_for_every_run(model_dir, tmp_path):  # noqa: F811
    reports = []
    for i, seed in enumerate((0, 0, 1)):
        out = tmp_path / f"r{i}.json"
        rc = _eval("--model", model_dir, "--dataset", f"GrabCut={GRABCUT}", "--runs", "ort-fp32,ov-fp32",
                   "--max-clicks", 6, "--stop-iou", 1.01, "--misleading", 3, "--seed", seed, "--json", out)
        assert rc == 0
        reports.append(json.loads(out.read_text()))
    r0, r0_again, r1 = reports
    assert r0["samples"] == r0_again["samples"]  # identical across invocations
    assert r0["settings"]["click_protocol"]["name"] == "misleading (FDRN)"
    assert r0["settings"]["click_protocol"]["misleading_per_sample"] == 3
    for name in ("227092", "teddy"):
        kinds = {run: r0["samples"][run][name]["kinds"] for run in ("ort-fp32", "ov-fp32")}
        plan = plan_for(name, 3, 0, 6)
        for k in kinds.values():
            assert len(k) == 6 and k[0] == "standard"
            assert [i for i, v in enumerate(k) if v != "standard"] == sorted(plan.kinds)
        assert kinds["ort-fp32"] == kinds["ov-fp32"]  # every run meets the same protocol
    assert any(r1["samples"]["ort-fp32"][n]["kinds"] != r0["samples"]["ort-fp32"][n]["kinds"]
               for n in ("227092", "teddy"))


def test_eval_misleading_rejects_bad_counts_in_one_line(model_dir, capsys):  # noqa: F811
    assert _eval("--model", model_dir, "--dataset", f"GrabCut={GRABCUT}", "--max-clicks", 5, "--misleading", 5) == 2
    assert "--misleading must be in [0, 4]" in capsys.readouterr().err
    assert _eval("--model", model_dir, "--dataset", f"GrabCut={GRABCUT}", "--seed", 3) == 2
    assert "--seed only applies with --misleading" in capsys.readouterr().err
