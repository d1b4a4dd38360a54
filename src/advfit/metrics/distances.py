"""Distances between adversarial and original images (the paper's Tables 2-5)."""

from __future__ import annotations

import torch


def perturbation_norms(x: torch.Tensor, x_adv: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-example norms of ``x_adv - x`` for images of shape ``(N, C, H, W)``.

    - ``l0``: pixel positions changed in any channel (at most H*W; 1024 for 32x32);
    - ``l0_elements``: elements changed (at most C*H*W);
    - ``l2`` and ``linf``: over all elements.

    "Changed" means any difference at all, as in the paper: CW's tanh reparametrisation moves
    every pixel a little, which is why its L0 is the full image there.
    """
    delta = (x_adv - x).flatten(2)  # N, C, H*W
    changed = delta != 0
    flat = delta.flatten(1)
    return {
        "l0": changed.any(dim=1).sum(dim=1).float(),
        "l0_elements": changed.sum(dim=(1, 2)).float(),
        "l2": flat.norm(p=2, dim=1),
        "linf": flat.abs().amax(dim=1),
    }


def summarize_norms(norms: dict[str, torch.Tensor], mask: torch.Tensor) -> dict[str, float]:
    """Mean and (population) std of each norm over the examples where ``mask`` is true.

    NaN when no example is selected.
    """
    out: dict[str, float] = {}
    for key, values in norms.items():
        chosen = values[mask].double()
        empty = chosen.numel() == 0
        out[f"{key}_mean"] = float("nan") if empty else chosen.mean().item()
        out[f"{key}_std"] = float("nan") if empty else chosen.std(correction=0).item()
    return out
