"""The float search (quantization/float_search.py): which layers stay float, chosen by measured error."""
from __future__ import annotations

from focalclick_edge.quantization.float_search import group_key, search

NAMES = [f"/backbone/block{s}.{b}/{m}/{layer}/Conv/WithoutBiases"
         for s in (1, 2) for b in (0, 1) for m in ("attn", "mlp") for layer in ("a", "b")]
NAMES += ["/backbone/patch_embed1/proj/Conv/WithoutBiases", "/folded_head/c1/Conv/WithoutBiases"]


def _error(costs: dict[str, float], base: float = 1.0):
    """A model whose error drops by ``costs[name]`` for each float layer, and the calls it saw."""
    calls: list[list[str]] = []

    def error(float_names: list[str]) -> float:
        calls.append(float_names)
        return base - sum(costs.get(n, 0.0) for n in float_names)

    return error, calls


def test_group_keys_go_from_stage_to_block_to_module_to_layer():
    name = "/backbone/block1.0/attn/sr/Conv/WithoutBiases"
    assert [group_key(name, k) for k in range(4)] == [
        "backbone/block1", "backbone/block1.0", "backbone/block1.0/attn", name]
    assert group_key("/folded_head/c1/Conv/WithoutBiases", 0) == "folded_head/c1"


def test_one_layer_that_carries_the_error_is_found_and_kept_float_alone():
    target = "/backbone/block1.0/attn/b/Conv/WithoutBiases"
    error, calls = _error({target: 0.7, NAMES[0]: 0.01})
    report = search(NAMES, error, budget_s=60)
    assert report["kept_float"] == [target]
    assert report["error_before"] == 1.0 and abs(report["error_after"] - 0.3) < 1e-9
    # Top-down: stages first, then only inside the winning group -- never every layer one by one.
    assert len(calls) < len(NAMES)
    assert [t["float"] for t in report["trials"]][:2] == ["(none)", "backbone/block1"]


def test_error_spread_over_a_block_keeps_that_block_not_one_layer():
    block = [n for n in NAMES if "/block2.1/" in n]
    error, _ = _error({n: 0.15 for n in block})
    report = search(NAMES, error, budget_s=60)
    # No single module keeps 80 % of the block's gain, so the whole block stays float.
    assert sorted(report["kept_float"]) == sorted(block)


def test_no_group_that_cuts_the_error_by_a_quarter_keeps_nothing_float():
    error, _ = _error({n: 0.02 for n in NAMES})
    report = search(NAMES, error, budget_s=60)
    assert report["kept_float"] == [] and report["error_after"] == report["error_before"]


def test_a_spent_time_budget_stops_the_search_and_says_so():
    error, calls = _error({NAMES[3]: 0.9})
    report = search(NAMES, error, budget_s=0)
    assert report["stopped"] == "time budget" and report["kept_float"] == [] and len(calls) == 1
