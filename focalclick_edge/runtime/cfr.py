"""Cascade-Forward Refinement (CFR-ICL, Sun et al.): after a user click, run the model again with the
same clicks and its own result as the previous mask, ``n`` times (CFR-n), or until a pass changes at
most ``threshold`` mask pixels (A-CFR-n, threshold 20 as in the paper's code).

What is fed back, following the CFR-ICL code (``BasePredictor.get_prediction`` with ``cascade_step``):
every forward stores its **probability map** (after the inverse transforms and the sigmoid) as the
predictor's previous prediction, and the next forward re-encodes the **same click list** against it.
Here that is one more ``add_click`` of the last click on a session state whose clicks are the clicks
before it and whose previous-mask state (probabilities, Zoom-In mask, Progressive-Merge mask) is the
pass just made; Zoom-In and the Focus Crop are recomputed from it as for any click. The adaptive rule
compares each refinement with the pass before it (``(p > 0.49) != (prev > 0.49)`` there; here the
Session's own masks, ``prob > 0.5`` or the merged mask) and stops once at most ``threshold`` pixels
differ. The official evaluation applies CFR to the first ``--cf-click`` clicks (default 1); here it is
every click unless the spec says ``@K`` (``a4@1`` = the official default).

A refined click is one step of the session: ``undo`` goes back to the state before the user's click,
and the timings are the sums over all passes (so latency includes the refinement).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..errors import UserError
from .session import ClickResult

DEFAULT_THRESHOLD = 20
_SPEC = re.compile(r"^(a?)(\d+)(?:@(\d+))?$")


@dataclass(frozen=True)
class CFRSpec:
    steps: int  # refinement passes after the user's click
    adaptive: bool = False  # A-CFR: stop once a pass changes <= threshold pixels
    threshold: int = DEFAULT_THRESHOLD
    max_clicks: int | None = None  # refine only the first K clicks (CFR-ICL's --cf-click); None: all

    @property
    def name(self) -> str:
        base = f"{'A-' if self.adaptive else ''}CFR-{self.steps}"
        return base if self.max_clicks is None else f"{base} (first {self.max_clicks} clicks)"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "steps": self.steps, "adaptive": self.adaptive, "threshold": self.threshold,
                "max_clicks": self.max_clicks, "feedback": "probability map, same clicks re-encoded"}


def parse_cfr(text: str | None) -> CFRSpec | None:
    """``"1"`` -> CFR-1, ``"a4"`` -> A-CFR-4, ``"a4@1"`` -> A-CFR-4 on the first click only; ``"0"`` or
    None -> no refinement."""
    if text is None:
        return None
    m = _SPEC.match(text.strip().lower())
    if not m:
        raise UserError(f"--cfr {text!r} is not a CFR spec; use N (CFR-N, e.g. 1), aN (A-CFR-N, e.g. a4), "
                        "optionally @K to refine only the first K clicks (e.g. a4@1)")
    steps = int(m.group(2))
    if steps == 0:
        return None
    if m.group(3) is not None and int(m.group(3)) < 1:
        raise UserError(f"--cfr {text!r}: @K needs K >= 1")
    return CFRSpec(steps=steps, adaptive=bool(m.group(1)),
                   max_clicks=None if m.group(3) is None else int(m.group(3)))


class CFRSession:
    """A Session (or a wrapper of one) whose ``add_click`` refines by cascade-forward passes; every other
    attribute is the wrapped session's. ``last_passes`` is the number of forwards of the last click."""

    def __init__(self, session: Any, spec: CFRSpec) -> None:
        self._inner = session
        self.cfr = spec
        self.last_passes = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def spawn(self) -> CFRSession:
        return CFRSession(self._inner.spawn(), self.cfr)

    def _rerun_last_click(self) -> ClickResult:
        s = self._inner
        snap = s.snapshot()
        x, y, positive = snap.state.clicks[-1]  # the state keeps (x, y, positive)
        s.restore(replace(snap, state=replace(snap.state, clicks=snap.state.clicks[:-1], result=None)))
        result = s.add_click(x, y, positive)
        after = s.snapshot()
        s.restore(replace(after, history=snap.history))  # one undo step per user click
        return result

    def add_click(self, x: int, y: int, positive: bool = True) -> ClickResult:
        result = self._inner.add_click(x, y, positive)
        self.last_passes = 1
        spec = self.cfr
        if spec.max_clicks is not None and len(self._inner.clicks) > spec.max_clicks:
            return result
        total = dict(result.timings)
        for _ in range(spec.steps):
            before = result.mask
            result = self._rerun_last_click()
            self.last_passes += 1
            for k, v in result.timings.items():
                total[k] = total.get(k, 0.0) + v
            if spec.adaptive and int(np.count_nonzero(result.mask != before)) <= spec.threshold:
                break
        result = result.with_timings(total)
        snap = self._inner.snapshot()
        self._inner.restore(replace(snap, state=replace(snap.state, result=result)))
        return result


__all__ = ["CFRSession", "CFRSpec", "DEFAULT_THRESHOLD", "parse_cfr"]
