"""Parameter counts, reported in the log and `results.json` by every run."""

from __future__ import annotations

from torch import nn


def parameter_counts(model: nn.Module) -> dict[str, int | float]:
    """Trainable and total parameter counts of `model` (shared weights counted once), and the trainable
    share of the total (what LoRA and freezing are compared by)."""
    unique = {id(parameter): parameter for parameter in model.parameters()}.values()
    trainable = sum(p.numel() for p in unique if p.requires_grad)
    total = sum(p.numel() for p in unique)
    return {"trainable_params": trainable, "total_params": total, "trainable_share": round(trainable / max(total, 1), 6)}
