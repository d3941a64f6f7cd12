"""Model surgery: freeze parameters (or train only some), delete encoder layers, prune attention heads.

Each operation is a plain function on a model. Recipes reach them through the regime step
(`hf_tasks.surgery.regime.apply_regime`, which adds feature-based training and LoRA); `apply_surgery`
runs the surgery alone from `SurgeryArguments` before training, and a callback prunes ranked heads
during training. Models with pruned heads reload through `from_pretrained`
(`hf_tasks.modeling.loading`), which rebuilds the pruned structure before the weights load.
"""

from hf_tasks.surgery.counts import parameter_counts
from hf_tasks.surgery.freeze import freeze, freeze_targets, train_only
from hf_tasks.surgery.heads import (
    HeadGates,
    head_importance,
    lowest_heads,
    parse_head_spec,
    prune_heads,
    pruned_heads_of,
    random_importance,
    remaining_heads,
)
from hf_tasks.surgery.layers import keep_layers
from hf_tasks.modeling.loading import from_pretrained
from hf_tasks.surgery.structure import Encoder, find_encoder, parse_layer_set
from hf_tasks.surgery.training import ScheduledHeadPruning, SurgeryArguments, SurgeryCallback, apply_surgery

__all__ = [
    "Encoder",
    "HeadGates",
    "ScheduledHeadPruning",
    "SurgeryArguments",
    "SurgeryCallback",
    "apply_surgery",
    "find_encoder",
    "freeze",
    "freeze_targets",
    "from_pretrained",
    "head_importance",
    "keep_layers",
    "lowest_heads",
    "parameter_counts",
    "parse_head_spec",
    "parse_layer_set",
    "prune_heads",
    "pruned_heads_of",
    "random_importance",
    "remaining_heads",
    "train_only",
]
