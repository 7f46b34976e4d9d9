"""The supervised ceiling's loss: pixel binary cross-entropy against the rasterized box masks."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def box_bce(logits: torch.Tensor, box_mask: torch.Tensor) -> torch.Tensor:
    """Mean pixel BCE of ``logits`` (B, 1, H, W) against 0/1 box masks of the same shape (Healthy
    images have empty masks, so every one of their pixels is a negative)."""
    if logits.shape != box_mask.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and box masks {tuple(box_mask.shape)} differ in shape")
    return F.binary_cross_entropy_with_logits(logits, box_mask.to(logits.dtype))
