"""The one parameter counter: reported in the log and `results.json` by every run."""

from __future__ import annotations

from torch import nn

from hf_tasks.surgery.freeze import backbone_parameters


def parameter_counts(model: nn.Module, by_part: bool = False) -> dict[str, int | float]:
    """Trainable and total parameter counts of `model` (shared weights counted once), and the trainable
    share of the total (what LoRA and freezing are compared by).

    `by_part` adds the same counts for the backbone (what the freeze language calls `backbone`) and
    the head (everything else): `backbone_params`, `backbone_trainable_params`, `head_params`,
    `head_trainable_params`.
    """
    unique = {id(parameter): parameter for parameter in model.parameters()}.values()
    trainable = sum(p.numel() for p in unique if p.requires_grad)
    total = sum(p.numel() for p in unique)
    counts: dict[str, int | float] = {
        "trainable_params": trainable, "total_params": total, "trainable_share": round(trainable / max(total, 1), 6)
    }
    if by_part:
        in_backbone = {id(parameter) for parameter in backbone_parameters(model)}
        for part, selected in (("backbone", True), ("head", False)):
            members = [p for p in unique if (id(p) in in_backbone) is selected]
            counts[f"{part}_params"] = sum(p.numel() for p in members)
            counts[f"{part}_trainable_params"] = sum(p.numel() for p in members if p.requires_grad)
    return counts
