"""FocalClick training losses (ClickSEG ``NormalizedFocalLossSigmoid``, ``WFNL``, BCE on the trimap).

All take logits. Log-probabilities come from ``logsigmoid`` rather than ``log(sigmoid)`` so that the
large logits of a confident from-scratch net never produce ``log(0)``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _focal_terms(logits: torch.Tensor, target: torch.Tensor, alpha: float, gamma: float
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel ``-alpha_t * log(p_t)`` and the normalised focal factor ``beta``."""
    pos = target > 0.5
    prob = torch.sigmoid(logits)
    pt = torch.where(pos, prob, 1.0 - prob)
    log_pt = torch.where(pos, F.logsigmoid(logits), F.logsigmoid(-logits))
    alpha_t = torch.where(pos, torch.full_like(prob, alpha), torch.full_like(prob, 1.0 - alpha))
    beta = (1.0 - pt) ** gamma
    # NFL: rescale the focal factor so that it sums to the pixel count of each sample. The divisor is
    # detached, as in the official loss, so it only re-weights and never becomes a gradient path.
    n = float(logits.shape[-2] * logits.shape[-1])
    mult = (n / (beta.sum(dim=(-2, -1), keepdim=True) + 1e-12)).detach()
    return -alpha_t * log_pt, beta * mult


def normalized_focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 0.5,
                          gamma: float = 2.0) -> torch.Tensor:
    """Normalized Focal Loss (RITM), mean over pixels then over the batch."""
    ce, beta = _focal_terms(logits, target, alpha, gamma)
    return (ce * beta).mean(dim=(-3, -2, -1)).mean()


def boundary_weighted_nfl(logits: torch.Tensor, target: torch.Tensor, boundary: torch.Tensor,
                          boundary_weight: float = 1.5, alpha: float = 0.5, gamma: float = 2.0
                          ) -> torch.Tensor:
    """NFL on the refined output with pixels of the boundary map weighted ``boundary_weight`` (others 1),
    normalised by the weight sum like ClickSEG's ``WFNL``."""
    ce, beta = _focal_terms(logits, target, alpha, gamma)
    w = 1.0 + (boundary_weight - 1.0) * (boundary > 0.5).to(logits.dtype)
    return (ce * beta * w).sum() / (w.sum() + 1e-12)


def boundary_bce(trimap_logits: torch.Tensor, boundary: torch.Tensor) -> torch.Tensor:
    """BCE of the Refiner's boundary head against the changed-pixel map."""
    return F.binary_cross_entropy_with_logits(trimap_logits, boundary)
