"""Which layers of an INT8 graph stay float: a top-down search by the logits error each choice leaves.

The SQNR rule (sensitivity.py) looks at each layer's int8 *input*; it misses layers whose rounding
matters for what the network does with it. Measured on the shipped b0-s1 Segmentor (OpenVINO, NNCF
TRANSFORMER preset; logits vs FP32 on 80 held-out DUTS-TE click inputs, rel. mean abs error / sign
flips): all int8 0.075 / 1.12 %; each of the 17 blocks float in turn: 0.071-0.075, except
``block1.0`` 0.018 / 0.17 %; inside it, only its attention's spatial-reduction conv (``attn/sr``, an
8x8 stride-8 conv on the first stage's normalised tokens) matters: 0.022 / 0.23 % with that one conv
float -- as close to FP32 as ONNX Runtime's int8 graph (0.018 / 0.21 %). Such a layer is found by
measuring, not by a rule, so the search measures:

1. group the candidate layers by name into stages (``/backbone/block1`` from ``/backbone/block1.0/..``),
   blocks, sub-modules and single layers;
2. quantize with each stage float in turn and keep the best stage if it removes at least ``GAIN`` of
   the error (else nothing changes);
3. descend: the best sub-group replaces its group while it alone keeps ``SHARE`` of the group's gain,
   so the fewest layers stay float for most of the benefit.

``search`` is the pure driver (the caller supplies ``error(float_names) -> float``), bounded by a
time budget; the card records every trial.
"""
from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from typing import Any

GAIN = 0.25
SHARE = 0.8
LEVELS = 4  # stage, block, sub-module, layer


def group_key(name: str, level: int) -> str:
    """The group of layer ``name`` at ``level`` (0 = stage ... 3 = the layer itself)."""
    if level >= LEVELS - 1:
        return name
    parts = name.strip("/").split("/")
    if len(parts) < 3:
        return "/".join(parts[:2])
    if level == 0:
        return "/".join([parts[0], re.sub(r"\.\d+$", "", parts[1])])
    return "/".join(parts[: level + 1])


def _groups(names: Sequence[str], level: int) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for n in names:
        out.setdefault(group_key(n, level), []).append(n)
    return out


def search(names: Sequence[str], error: Callable[[list[str]], float], budget_s: float,
           log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The layers of ``names`` to keep float (possibly none) and the trials that chose them."""
    deadline = time.perf_counter() + budget_s
    trials: list[dict[str, Any]] = []

    def trial(group: str, members: list[str]) -> float:
        e = float(error(list(members)))
        trials.append({"float": group, "layers": len(members), "error": round(e, 5)})
        if log is not None:
            log(f"float search: {group} ({len(members)} layers) float -> error {e:.4f}")
        return e

    Best = tuple[str, list[str], float]

    def best_of(groups: dict[str, list[str]]) -> tuple[Best | None, bool]:
        """The group whose float leaves the least error, and whether the budget ran out first."""
        found: Best | None = None
        for key, members in groups.items():
            if time.perf_counter() >= deadline:
                return found, True
            e = trial(key, members)
            if found is None or e < found[2]:
                found = (key, members, e)
        return found, False

    base = trial("(none)", [])
    level = 0
    best, out_of_time = best_of(_groups(names, level))
    if best is None or best[2] > (1 - GAIN) * base:
        return {"kept_float": [], "error_before": round(base, 5), "error_after": round(base, 5),
                "trials": trials, "stopped": _stopped(out_of_time), "gain_needed": GAIN}
    while len(best[1]) > 1 and level < LEVELS - 1 and not out_of_time:
        level += 1
        subs = _groups(best[1], level)
        if len(subs) == 1:
            continue  # this level does not split the group: look one level finer
        floor = base - SHARE * (base - best[2])
        sub_best, out_of_time = best_of(subs)
        if sub_best is None or sub_best[2] > floor:
            break
        best = sub_best
    return {"kept_float": list(best[1]), "group": best[0], "error_before": round(base, 5),
            "error_after": round(best[2], 5), "trials": trials,
            "stopped": _stopped(out_of_time), "gain_needed": GAIN, "share_kept": SHARE}


def _stopped(out_of_time: bool) -> str:
    return "time budget" if out_of_time else "searched"
