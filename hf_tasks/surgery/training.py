"""Surgery in a training run: the arguments recipes add to their parser, `apply_surgery`, and the
callbacks that act during training.

Order: delete layers → prune heads (one-shot) → freeze. Layer numbers in later steps refer to the
model after deletion. Everything that changes parameters runs before the Trainer builds its
optimizer: `apply_surgery` is called before `run(...)`, and `SurgeryCallback` acts at `on_init_end`.
Iterative pruning masks heads at epoch ends (the parameters stay, so the optimizer stays valid) and
removes them physically when training ends, before the runner saves the model.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass, field
from typing import Any

import torch
from datasets import Dataset
from torch import nn
from torch.utils.data import DataLoader
from transformers import TrainerCallback

from hf_tasks.surgery.counts import parameter_counts
from hf_tasks.surgery.freeze import FREEZE_HELP, freeze
from hf_tasks.surgery.heads import (
    HeadGates,
    head_importance,
    lowest_heads,
    parse_head_spec,
    prune_heads,
    random_importance,
    remaining_heads,
)
from hf_tasks.surgery.layers import keep_layers
from hf_tasks.surgery.structure import LAYER_SET_HELP, find_encoder
from hf_tasks.tasks.base import FEATURE_KEY_OF_SPLIT, BadInputError

logger = logging.getLogger(__name__)

# Held-out or training data, never the test split.
IMPORTANCE_SPLITS = ("train", "validation")


@dataclass
class SurgeryArguments:
    freeze: list[str] | None = field(default=None, metadata={"help": FREEZE_HELP})
    keep_layers: str | None = field(
        default=None, metadata={"help": f"Encoder layers to keep, deleting the rest: {LAYER_SET_HELP}."}
    )
    prune_heads: list[str] | None = field(
        default=None, metadata={"help": "Heads to prune by name, layer:heads, e.g. 0:1,3 2:0."}
    )
    prune_fraction: float | None = field(
        default=None, metadata={"help": "Fraction of all attention heads to prune, least important first (e.g. 0.5)."}
    )
    prune_heads_per_layer: int | None = field(
        default=None, metadata={"help": "Heads to prune in every layer, least important first."}
    )
    prune_importance: str = field(
        default="gradient",
        metadata={"help": "How heads are ranked: 'gradient' (Michel et al. 2019, E|dL/dgate|) or 'random' (baseline)."},
    )
    prune_schedule: str = field(
        default="one_shot",
        metadata={"help": "'one_shot': prune before training; 'iterative': mask more heads at each epoch end "
                          "(all by the second-to-last epoch, so the last one recovers) and remove them when "
                          "training ends."},
    )
    prune_importance_split: str = field(
        default="validation",
        metadata={"help": "Held-out split the importance is computed on: 'validation' or 'train' (never test)."},
    )
    prune_importance_samples: int = field(default=256, metadata={"help": "Examples used for head importance."})
    prune_importance_batch_size: int = field(default=32, metadata={"help": "Batch size for head importance."})

    def __post_init__(self):
        chosen = [name for name in ("prune_heads", "prune_fraction", "prune_heads_per_layer") if getattr(self, name)]
        if len(chosen) > 1:
            raise BadInputError(f"Give one of prune_heads, prune_fraction, prune_heads_per_layer; got {chosen}.")
        if self.prune_fraction is not None and not 0 < self.prune_fraction < 1:
            raise BadInputError(f"prune_fraction must be between 0 and 1, got {self.prune_fraction}.")
        if self.prune_heads_per_layer is not None and self.prune_heads_per_layer < 1:
            raise BadInputError(f"prune_heads_per_layer must be at least 1, got {self.prune_heads_per_layer}.")
        if self.prune_importance not in ("gradient", "random"):
            raise BadInputError(f"prune_importance must be 'gradient' or 'random', got {self.prune_importance!r}.")
        if self.prune_schedule not in ("one_shot", "iterative"):
            raise BadInputError(f"prune_schedule must be 'one_shot' or 'iterative', got {self.prune_schedule!r}.")
        if self.prune_schedule == "iterative" and self.prune_heads:
            raise BadInputError("prune_schedule 'iterative' ranks heads; named prune_heads are removed one-shot.")
        if self.prune_importance_split not in IMPORTANCE_SPLITS:
            raise BadInputError(
                f"prune_importance_split must be one of {sorted(IMPORTANCE_SPLITS)}, got {self.prune_importance_split!r}."
            )

    @property
    def ranks_heads(self) -> bool:
        return bool(self.prune_fraction or self.prune_heads_per_layer)

    @property
    def needs_importance_data(self) -> bool:
        return self.ranks_heads and self.prune_importance == "gradient"


def importance_batches(model: nn.Module, dataset: Dataset, data_collator, batch_size: int, samples: int) -> list[dict]:
    """Collated batches of the first `samples` rows, with only the columns the model's forward takes."""
    accepted = set(inspect.signature(model.forward).parameters) | {"label", "labels", "label_ids"}
    dropped = [column for column in dataset.column_names if column not in accepted]
    rows = dataset.select(range(min(samples, len(dataset)))).remove_columns(dropped)
    loader = DataLoader(rows.with_format(None), batch_size=batch_size, collate_fn=data_collator)
    return list(loader)


class HeadRanker:
    """Ranks heads by the configured importance, on held-out batches (gradient) or by seed (random)."""

    def __init__(self, surgery_args: SurgeryArguments, batches: list[dict] | None, seed: int):
        self.kind = surgery_args.prune_importance
        self.batches = batches
        self.seed = seed
        self.calls = 0

    def scores(self, model: nn.Module) -> list[torch.Tensor]:
        self.calls += 1
        if self.kind == "random":
            return random_importance(model, self.seed + self.calls)
        return head_importance(model, self.batches)


def _same_on_every_process(chosen: dict[int, list[int]]) -> dict[int, list[int]]:
    """Rank 0's choice of heads, so that floating-point ties or nondeterministic kernels can never
    make processes prune different heads and their models diverge."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return chosen
    shared = [chosen]
    torch.distributed.broadcast_object_list(shared, src=0)
    return shared[0]


def _total_heads(model: nn.Module) -> int:
    return sum(block.num_heads for block in find_encoder(model).attention_blocks)


def _to_original(model: nn.Module, positions: dict[int, list[int]]) -> dict[int, list[int]]:
    remaining = remaining_heads(model)
    return {layer: [remaining[layer][position] for position in heads] for layer, heads in positions.items()}


def _prune_target(surgery_args: SurgeryArguments, model: nn.Module) -> int | None:
    """Heads to prune over all layers for prune_fraction (None when pruning per layer)."""
    if surgery_args.prune_fraction is None:
        return None
    return round(surgery_args.prune_fraction * _total_heads(model))


class IterativeHeadPruning(TrainerCallback):
    """Masks the least important heads at each epoch end, reaching the target at the end of the
    second-to-last epoch (the last one recovers; a one-epoch run masks all at its end), and removes the
    masked heads physically when training ends (so the saved model is the small one).

    Masked heads are gated to zero, which is exactly what removing them does; their parameters stay
    in the optimizer until the end, so nothing about the optimizer changes during training. Masks are
    not stored in checkpoints: a resumed run starts masking again from its next epoch end. With
    `load_best_model_at_end`, the final masks are applied to the best checkpoint's weights.
    """

    def __init__(self, surgery_args: SurgeryArguments, ranker: HeadRanker, model: nn.Module):
        self.per_layer = surgery_args.prune_heads_per_layer
        self.target = _prune_target(surgery_args, model)
        self.ranker = ranker
        self.gates: HeadGates | None = None
        self.masked: dict[int, set[int]] = {}

    def _ensure_gates(self, model: nn.Module) -> HeadGates:
        if self.gates is None:
            self.gates = HeadGates(model)
            device = next(model.parameters()).device
            self.gates.values = [torch.ones(block.num_heads, device=device) for block in self.gates.blocks]
        return self.gates

    def _mask_up_to(self, model: nn.Module, share: float) -> None:
        gates = self._ensure_gates(model)
        scores = self.ranker.scores(model)
        if self.per_layer is not None:
            goal = round(self.per_layer * share)
            new = {}
            for layer, score in enumerate(scores):
                extra = goal - len(self.masked.get(layer, ()))
                if extra > 0:
                    chosen = lowest_heads([score], per_layer=extra, excluded={0: self.masked.get(layer, ())})
                    new[layer] = chosen[0]
        else:
            count = round(self.target * share) - sum(len(heads) for heads in self.masked.values())
            new = lowest_heads(scores, count=max(count, 0), excluded=self.masked) if count > 0 else {}
        for layer, heads in _same_on_every_process(new).items():
            self.masked.setdefault(layer, set()).update(heads)
            for head in heads:
                gates.values[layer][head] = 0.0
        logger.info(
            "Iterative head pruning: masked %d heads so far %s.",
            sum(len(heads) for heads in self.masked.values()),
            {layer: sorted(heads) for layer, heads in sorted(self.masked.items())},
        )

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self._ensure_gates(model)

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        # Reach the target one epoch before the end, so the last epoch trains the pruned structure.
        pruning_epochs = max(round(float(state.num_train_epochs or 1)) - 1, 1)
        self._mask_up_to(model, min(round(state.epoch) / pruning_epochs, 1.0))

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self._mask_up_to(model, 1.0)
        self.gates.remove()
        self.gates = None
        positions = {layer: sorted(heads) for layer, heads in self.masked.items() if heads}
        prune_heads(model, _to_original(model, positions))
        counts = parameter_counts(model)
        logger.info("Removed the masked heads: %(trainable_params)s trainable of %(total_params)s parameters.", counts)


def apply_surgery(
    model: nn.Module,
    surgery_args: SurgeryArguments,
    *,
    splits: dict[str, Dataset] | None = None,
    data_collator=None,
    seed: int = 0,
) -> list[TrainerCallback]:
    """Delete layers, prune heads one-shot and freeze, as `surgery_args` asks, now.

    `splits` are the task's features keyed "train"/"eval" (needed for gradient importance). Returns
    the callbacks to pass to the Trainer for what happens during training (iterative pruning).
    """
    before = parameter_counts(model)
    callbacks: list[TrainerCallback] = []
    if surgery_args.keep_layers:
        keep_layers(model, surgery_args.keep_layers)
    if surgery_args.prune_heads:
        prune_heads(model, parse_head_spec(surgery_args.prune_heads))
    if surgery_args.ranks_heads:
        batches = None
        if surgery_args.needs_importance_data:
            key = FEATURE_KEY_OF_SPLIT[surgery_args.prune_importance_split]
            dataset = (splits or {}).get(key)
            if dataset is None:
                raise BadInputError(
                    f"Head importance is computed on the {surgery_args.prune_importance_split} split, which this "
                    "run does not have: give that data file or set --prune_importance_split."
                )
            batches = importance_batches(
                model, dataset, data_collator, surgery_args.prune_importance_batch_size,
                surgery_args.prune_importance_samples,
            )
        ranker = HeadRanker(surgery_args, batches, seed)
        if surgery_args.prune_schedule == "iterative":
            callbacks.append(IterativeHeadPruning(surgery_args, ranker, model))
        else:
            scores = ranker.scores(model)
            chosen = lowest_heads(scores, count=_prune_target(surgery_args, model), per_layer=surgery_args.prune_heads_per_layer)
            prune_heads(model, _to_original(model, _same_on_every_process(chosen)))
    if surgery_args.freeze:
        freeze(model, surgery_args.freeze)
    after = parameter_counts(model)
    if after != before or callbacks:
        logger.info(
            "Surgery: %s trainable of %s parameters (before: %s of %s)%s.",
            after["trainable_params"], after["total_params"], before["trainable_params"], before["total_params"],
            "; heads are masked during training and removed at its end" if callbacks else "",
        )
    return callbacks


class SurgeryCallback(TrainerCallback):
    """`apply_surgery` as a callback, for a Trainer built elsewhere: surgery at `on_init_end` (the
    Trainer has not built its optimizer yet), then the iterative-pruning events it needs."""

    def __init__(self, surgery_args: SurgeryArguments, *, splits: dict[str, Dataset] | None = None,
                 data_collator=None, seed: int = 0):
        self.surgery_args = surgery_args
        self.splits = splits
        self.data_collator = data_collator
        self.seed = seed
        self.during_training: list[TrainerCallback] = []

    def on_init_end(self, args, state, control, model=None, **kwargs):
        self.during_training = apply_surgery(
            model, self.surgery_args, splits=self.splits, data_collator=self.data_collator, seed=self.seed
        )

    def _forward(self, event: str, *args: Any, **kwargs: Any) -> None:
        for callback in self.during_training:
            getattr(callback, event)(*args, **kwargs)

    def on_train_begin(self, *args, **kwargs):
        self._forward("on_train_begin", *args, **kwargs)

    def on_epoch_end(self, *args, **kwargs):
        self._forward("on_epoch_end", *args, **kwargs)

    def on_train_end(self, *args, **kwargs):
        self._forward("on_train_end", *args, **kwargs)
