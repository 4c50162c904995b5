"""Multi-label losses: BCE, and two that down-weight the many easy negatives of sparse labels.

Each returns the sum over labels, averaged over the batch.
"""

from __future__ import annotations

from typing import Any


def make_loss(config: Any):
    import torch
    import torch.nn.functional as F

    if config.loss == "bce":

        def bce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
            return F.binary_cross_entropy_with_logits(logits, targets, reduction="sum") / len(
                logits
            )

        return bce

    if config.loss == "focal":
        gamma = config.focal_gamma

        def focal(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
            bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
            p_true = torch.exp(-bce)
            return ((1 - p_true) ** gamma * bce).sum() / len(logits)

        return focal

    # Asymmetric loss (Ridnik et al., ICCV 2021): negatives are focused harder
    # and very easy ones (p < clip) are dropped entirely.
    gamma_neg, gamma_pos, clip = config.asl_gamma_neg, config.asl_gamma_pos, config.asl_clip

    def asymmetric(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        p = torch.sigmoid(logits)
        p_neg = (p - clip).clamp(min=0) if clip > 0 else p
        log_pos = F.logsigmoid(logits)
        log_neg = torch.log((1 - p_neg).clamp(min=1e-8))
        pos = targets * log_pos * (1 - p) ** gamma_pos
        neg = (1 - targets) * log_neg * p_neg**gamma_neg
        return -(pos + neg).sum() / len(logits)

    return asymmetric
