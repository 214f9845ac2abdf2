"""Cascade-forward refinement (runtime.cfr) and the paper's Progressive Merge (runtime.paper_merge), on the
click-following blob model of test_eval_cli (its Segmentor reads the previous mask, so feedback matters)."""
from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("onnx")

from conftest import FIXTURES  # noqa: E402
from test_eval_cli import _eval, model_dir  # noqa: E402,F401  (the blob model fixture)

from focalclick_edge.errors import UserError  # noqa: E402
from focalclick_edge.evaluation.clicker import Clicker  # noqa: E402
from focalclick_edge.evaluation.datasets import load_dataset  # noqa: E402
from focalclick_edge.runtime import Session  # noqa: E402
from focalclick_edge.runtime import geometry as g  # noqa: E402
from focalclick_edge.runtime.cfr import CFRSession, CFRSpec, parse_cfr  # noqa: E402
from focalclick_edge.runtime.paper_merge import paper_progressive_merge, with_merge  # noqa: E402

GRABCUT = FIXTURES / "data" / "GrabCut"


@pytest.fixture(scope="module")
def sample():
    return load_dataset("GrabCut", GRABCUT)["teddy"]


def _clicks(session, sample, n):
    """n clicks of the standard clicker against ``session``'s own masks: [(x, y, positive)]."""
    clicker = Clicker(sample.gt)
    pred = np.zeros(sample.gt.shape, bool)
    out = []
    session.set_image(sample.image)
    for _ in range(n):
        c = clicker.make_next_click(pred)
        out.append((c.x, c.y, c.positive))
        pred = session.add_click(c.x, c.y, c.positive).mask
    return out


def test_cfr_specs_parse_and_bad_ones_fail_in_one_line():
    assert parse_cfr("1") == CFRSpec(steps=1)
    assert parse_cfr("a4") == CFRSpec(steps=4, adaptive=True)
    assert parse_cfr("a4@1") == CFRSpec(steps=4, adaptive=True, max_clicks=1)
    assert parse_cfr("0") is None and parse_cfr(None) is None
    assert parse_cfr("a4").name == "A-CFR-4" and parse_cfr("2").name == "CFR-2"
    for bad in ("x", "a", "-1", "a4@0"):
        with pytest.raises(UserError, match="--cfr"):
            parse_cfr(bad)


def test_cfr_feeds_the_probability_map_back_with_the_same_clicks(model_dir, sample):  # noqa: F811
    # A refinement pass is the model run again on the same clicks with its own result as the previous
    # mask: exactly what a plain session computes when the same click is given a second time (the
    # click maps of a repeated point are the same disks), before click 11 and after click 1.
    plain = Session(model_dir)
    clicks = _clicks(plain, sample, 3)
    plain.set_image(sample.image)
    plain.add_click(*clicks[0])
    start = plain.snapshot()
    refined = CFRSession(plain.spawn(), CFRSpec(steps=1))
    refined.restore(start)
    got = refined.add_click(*clicks[1])
    assert refined.last_passes == 2
    first = plain.add_click(*clicks[1])
    again = plain.add_click(*clicks[1])
    assert np.array_equal(got.prob, again.prob) and np.array_equal(got.mask, again.mask)
    assert not np.array_equal(got.prob, first.prob)  # the feedback changed something
    assert got.timings["total"] >= first.timings["total"] * 0.5  # both passes are counted
    # One user click is one undo step, and the refined result is the session's result.
    assert refined.clicks == clicks[:2] and refined.result is got
    refined.undo()
    assert refined.clicks == clicks[:1]


def test_adaptive_cfr_stops_once_a_pass_changes_few_pixels(model_dir, sample):  # noqa: F811
    base = Session(model_dir)
    clicks = _clicks(base, sample, 2)
    always = CFRSession(base.spawn(), CFRSpec(steps=4, adaptive=True, threshold=-1))  # never "few"
    at_once = CFRSession(base.spawn(), CFRSpec(steps=4, adaptive=True, threshold=10**9))
    fixed = CFRSession(base.spawn(), CFRSpec(steps=4))
    for s in (always, at_once, fixed):
        s.set_image(sample.image)
        for c in clicks:
            s.add_click(*c)
    assert always.last_passes == 5 and fixed.last_passes == 5 and at_once.last_passes == 2
    assert np.array_equal(always.result.prob, fixed.result.prob)
    first_only = CFRSession(base.spawn(), CFRSpec(steps=2, max_clicks=1))
    first_only.set_image(sample.image)
    first_only.add_click(*clicks[0])
    assert first_only.last_passes == 3
    first_only.add_click(*clicks[1])
    assert first_only.last_passes == 1


def _label0_case():
    prev = np.zeros((30, 30), bool)
    prev[5:15, 5:15] = True
    pred = prev.copy()
    pred[20:25, 20:25] = True  # a change far from the click
    return pred, prev, (2, 27)  # the click: unchanged background


def test_paper_merge_leaves_the_mask_alone_where_the_official_one_floods():
    pred, prev, click = _label0_case()
    official = g.progressive_merge(pred, prev, click)
    assert official.sum() > prev.sum() + 500  # the label-0 flood: every agreeing pixel turns on
    assert np.array_equal(paper_progressive_merge(pred, prev, click), prev)


def test_paper_merge_adds_or_removes_only_the_changed_region_at_the_click():
    pred, prev, _ = _label0_case()
    pred[8:10, 8:10] = False  # a hole inside prev, and the blob outside
    added = paper_progressive_merge(pred, prev, (22, 22))
    assert added.sum() == prev.sum() + 25 and added[8, 8]  # the blob only, the hole untouched
    removed = paper_progressive_merge(pred, prev, (8, 8))
    assert removed.sum() == prev.sum() - 4 and not removed[22, 22]


def test_paper_merge_session_merges_from_click_11_on_from_scratch(model_dir, sample):  # noqa: F811
    plain = Session(model_dir)
    clicks = _clicks(plain, sample, 13)
    paper = with_merge(plain.spawn(), "paper")
    paper.set_image(sample.image)
    plain.set_image(sample.image)
    prev_mask = None
    for i, c in enumerate(clicks, 1):
        r = paper.add_click(*c)
        if i <= 10:
            assert np.array_equal(r.mask, plain.add_click(*c).mask)
        else:
            assert np.array_equal(r.mask, paper_progressive_merge(r.prob > 0.5, prev_mask, (c[1], c[0])))
        prev_mask = r.mask
    paper.undo()
    assert len(paper.clicks) == 12


def test_eval_records_cfr_and_merge_and_runs_them(model_dir, tmp_path):  # noqa: F811
    for args, cfr, merge in ((["--cfr", "1"], "CFR-1", "official"), (["--cfr", "a4"], "A-CFR-4", "official"),
                             (["--merge", "paper"], None, "paper")):
        out = tmp_path / "r.json"
        rc = _eval("--model", model_dir, "--dataset", f"GrabCut={GRABCUT}", "--runs", "ort-fp32",
                   "--max-clicks", 3, "--json", out, *args)
        assert rc == 0
        s = json.loads(out.read_text())["settings"]
        assert (s["cfr"] or {}).get("name") == cfr and s["merge"] == merge
    assert _eval("--model", model_dir, "--dataset", f"GrabCut={GRABCUT}", "--cfr", "b2") == 2
