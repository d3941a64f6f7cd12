"""Parameter counts, reported in the log and `results.json` by every run."""

from __future__ import annotations

from torch import nn


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """Trainable and total parameter counts of `model` (shared weights counted once)."""
    unique = {id(parameter): parameter for parameter in model.parameters()}.values()
    return {
        "trainable_params": sum(p.numel() for p in unique if p.requires_grad),
        "total_params": sum(p.numel() for p in unique),
    }
