"""Misleading clicks (the FDRN robustness protocol): K of a sample's clicks mislead the model.

Of the ``max_clicks`` click positions of a sample, ``k`` positions (never the first click, which has
no prediction to mislead against) are drawn per sample from ``(seed, sample name)``, each with a kind:

- ``repetitive``: a positive click inside the previously predicted mask, at a pixel not clicked yet
  (it repeats what the model already shows). The pixel is the ``floor(u * n)``-th candidate in raster
  order, ``u`` drawn with the plan, so the choice depends only on the plan and the prediction. With
  an empty previous mask there is nothing to repeat, and the click becomes a ``false`` one.
- ``false``: the standard simulated click with its label flipped.

Every other click is the standard one (``standard``). The plan depends on the sample alone, never on
the run, so every run of an evaluation meets the misleading clicks at the same positions, of the same
kinds; the protocol is identical across runs, workers and engines. Misleading clicks count as clicks
for NoC, and the clicker never places a later click on their pixels.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from .clicker import Click, Clicker, _next_click

KINDS = ("repetitive", "false")
STANDARD = "standard"


@dataclass(frozen=True)
class MisleadingPlan:
    """Which 0-based click indices mislead, how, and the uniform draw each repetitive click uses."""

    kinds: dict[int, str]
    draws: dict[int, float]


def plan_for(name: str, k: int, seed: int, max_clicks: int) -> MisleadingPlan:
    """The plan of sample ``name``: ``k`` distinct click indices in ``1 .. max_clicks-1`` with their kinds."""
    if not 0 <= k <= max_clicks - 1:
        raise ValueError(f"--misleading must be in [0, {max_clicks - 1}] with {max_clicks} clicks, got {k}")
    # A stable per-sample stream: Python's hash() of a str changes between processes.
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(name.encode("utf-8"))]))
    idx = sorted(int(i) for i in rng.choice(np.arange(1, max_clicks), size=k, replace=False))
    kinds = rng.integers(0, len(KINDS), size=k)
    draws = rng.random(k)
    return MisleadingPlan({i: KINDS[int(c)] for i, c in zip(idx, kinds, strict=True)},
                          {i: float(u) for i, u in zip(idx, draws, strict=True)})


class MisleadingClicker(Clicker):
    """The standard clicker, except at the plan's positions; ``kinds`` records what each click was."""

    def __init__(self, gt: np.ndarray, plan: MisleadingPlan) -> None:
        super().__init__(gt)
        self.plan = plan
        self.kinds: list[str] = []

    def make_next_click(self, pred_mask: np.ndarray) -> Click:
        i = len(self.clicks)
        kind = self.plan.kinds.get(i, STANDARD)
        pred = np.asarray(pred_mask, dtype=bool)
        click = None
        if kind == "repetitive":
            ys, xs = np.nonzero(pred & self._not_clicked)
            if ys.size:
                j = min(int(self.plan.draws[i] * ys.size), ys.size - 1)
                click = Click(int(ys[j]), int(xs[j]), True)
            else:
                kind = "false"
        if click is None:
            click = _next_click(self._obj, self._valid, pred, self._not_clicked)
            if kind == "false":
                click = Click(click.y, click.x, not click.positive)
        self.add_click(click)
        self.kinds.append(kind)
        return click

    def reset(self) -> None:
        super().reset()
        self.kinds = []


__all__ = ["KINDS", "STANDARD", "MisleadingClicker", "MisleadingPlan", "plan_for"]
