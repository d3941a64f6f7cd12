"""Surgery in a training run: its arguments (part of the regime group, `hf_tasks.surgery.regime`),
`change_structure` / `apply_surgery`, and the callback that prunes heads during training.

Order: delete layers → prune named heads → freeze. Layer numbers in later steps refer to the model
after deletion. Everything that changes parameters runs before the Trainer builds its optimizer:
`apply_surgery` is called before `run(...)`, and `SurgeryCallback` acts at `on_init_end`. Heads
ranked by importance are masked at epoch ends (the parameters stay, so the optimizer stays valid) and
removed physically when training ends, before the runner saves the model: at every epoch end for
the iterative schedule, once after fine-tuning for the one-shot one.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass, field
from typing import Callable

import torch
from datasets import Dataset
from torch import nn
from torch.utils.data import DataLoader
from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState

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
from hf_tasks.errors import BadInputError

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
        metadata={"help": "'one_shot': fine-tune, rank heads on the fine-tuned model, prune them, then train "
                          "--prune_recovery_epochs more (without --do_train: rank and prune the loaded model); "
                          "'iterative': mask more heads at each epoch end (all by the second-to-last epoch, so "
                          "the last one recovers). Masked heads are removed when training ends."},
    )
    prune_recovery_epochs: int = field(
        default=0,
        metadata={"help": "prune_schedule one_shot: how many of the last num_train_epochs train the pruned model "
                          "(0: prune when training ends)."},
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
        if self.prune_recovery_epochs < 0:
            raise BadInputError(f"prune_recovery_epochs must be 0 or more, got {self.prune_recovery_epochs}.")
        if self.prune_recovery_epochs and not (self.ranks_heads and self.prune_schedule == "one_shot"):
            raise BadInputError(
                "prune_recovery_epochs is the recovery after one-shot pruning of ranked heads: give prune_fraction "
                "or prune_heads_per_layer with prune_schedule one_shot (iterative pruning recovers in its last epoch)."
            )
        if self.prune_importance_split not in IMPORTANCE_SPLITS:
            raise BadInputError(
                f"prune_importance_split must be one of {sorted(IMPORTANCE_SPLITS)}, "
                f"got {self.prune_importance_split!r}."
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


def _stored_attributes(state, name: str, current: dict) -> dict:
    """The attributes a checkpoint saved for the stateful callback `name` (the current, initial ones on
    a fresh run). Registers `current` when a checkpoint has no entry (one written before this callback
    saved state), since the Trainer expects an entry for every stateful callback when it saves."""
    return state.stateful_callbacks.setdefault(name, current)["attributes"]


def _refuse_rebuild(args) -> None:
    if args.restore_callback_states_from_checkpoint:
        raise BadInputError(
            "--restore_callback_states_from_checkpoint rebuilds callbacks from their saved arguments, which head "
            "pruning cannot be rebuilt from (it holds the model's importance data). Pruning restores its own "
            "masks when training resumes: leave that flag false."
        )


class ScheduledHeadPruning(TrainerCallback, ExportableState):
    """Masks the least important heads at epoch ends as the schedule says, and removes the masked heads
    physically when training ends (so the saved model is the small one).

    - iterative: more heads at each epoch end, reaching the target at the end of the second-to-last
      epoch (the last one recovers; a one-epoch run masks all at its end);
    - one_shot: all heads at once, ranked on the fine-tuned model (Michel et al. 2019 score a
      fine-tuned model; before training the classifier is random and would decide the ranking): at
      the end of epoch num_train_epochs - recovery_epochs, or when training ends without recovery.

    Masked heads are gated to zero, which is exactly what removing them does; their parameters stay
    in the optimizer until the end, so nothing about the optimizer changes during training. The masks,
    the number of rankings so far (the random baseline draws a new ranking each time) and the latest
    importance scores are saved in every checkpoint (`TrainerState.stateful_callbacks`) and restored
    when training resumes, so a resumed run prunes exactly like an uninterrupted one. With
    `load_best_model_at_end`, the final masks are applied to the best checkpoint's weights.
    """

    def __init__(self, surgery_args: SurgeryArguments, ranker: HeadRanker, model: nn.Module):
        self.schedule = surgery_args.prune_schedule
        self.recovery_epochs = surgery_args.prune_recovery_epochs
        self.per_layer = surgery_args.prune_heads_per_layer
        self.target = _prune_target(surgery_args, model)
        self.ranker = ranker
        self.gates: HeadGates | None = None
        self.masked: dict[int, set[int]] = {}
        self.importance: list[list[float]] | None = None

    def state(self) -> dict:
        return {"args": {}, "attributes": {
            "masked": {str(layer): sorted(heads) for layer, heads in sorted(self.masked.items())},
            "rankings": self.ranker.calls,
            "importance": self.importance,
        }}

    def begin(self, state, model: nn.Module, attributes: dict) -> None:
        """At train begin: gate the model and put back the masks, rankings and importance of
        `attributes` (what `state()` gave when the checkpoint was saved)."""
        if self.recovery_epochs >= round(float(state.num_train_epochs or 1)):
            raise BadInputError(
                f"prune_recovery_epochs={self.recovery_epochs} leaves no epoch to fine-tune before pruning: "
                f"give fewer than num_train_epochs ({state.num_train_epochs})."
            )
        gates = self._ensure_gates(model)
        self.masked = {int(layer): set(heads) for layer, heads in attributes["masked"].items()}
        self.ranker.calls = attributes["rankings"]
        self.importance = attributes["importance"]
        for layer, heads in self.masked.items():
            for head in heads:
                gates.values[layer][head] = 0.0

    def _ensure_gates(self, model: nn.Module) -> HeadGates:
        if self.gates is None:
            self.gates = HeadGates(model)
            device = next(model.parameters()).device
            self.gates.values = [torch.ones(block.num_heads, device=device) for block in self.gates.blocks]
        return self.gates

    def _new_heads(self, scores: list[torch.Tensor], share: float) -> dict[int, list[int]]:
        if self.per_layer is not None:
            new = {}
            for layer, score in enumerate(scores):
                extra = round(self.per_layer * share) - len(self.masked.get(layer, ()))
                if extra > 0:
                    new[layer] = lowest_heads([score], per_layer=extra, excluded={0: self.masked.get(layer, ())})[0]
            return new
        count = round(self.target * share) - sum(len(heads) for heads in self.masked.values())
        return lowest_heads(scores, count=count, excluded=self.masked) if count > 0 else {}

    def _short_of(self, share: float) -> bool:
        """Whether fewer heads are masked than `share` of the target asks (only then is ranking needed)."""
        if self.per_layer is not None:
            return any(round(self.per_layer * share) > len(self.masked.get(layer, ()))
                       for layer in range(len(self.gates.blocks)))
        return round(self.target * share) > sum(len(heads) for heads in self.masked.values())

    def _mask_up_to(self, model: nn.Module, share: float) -> None:
        gates = self._ensure_gates(model)
        if not self._short_of(share):
            return
        scores = self.ranker.scores(model)
        self.importance = [[float(value) for value in score] for score in scores]
        for layer, heads in _same_on_every_process(self._new_heads(scores, share)).items():
            self.masked.setdefault(layer, set()).update(heads)
            for head in heads:
                gates.values[layer][head] = 0.0
        logger.info(
            "Head pruning (%s): masked %d heads so far %s.", self.schedule,
            sum(len(heads) for heads in self.masked.values()),
            {layer: sorted(heads) for layer, heads in sorted(self.masked.items())},
        )

    def _share_after(self, epoch: int, num_train_epochs: int) -> float:
        if self.schedule == "one_shot":
            # Without recovery the ranking waits for train end, after load_best_model_at_end's weights load.
            return 1.0 if self.recovery_epochs and epoch >= num_train_epochs - self.recovery_epochs else 0.0
        # Reach the target one epoch before the end, so the last epoch trains the pruned structure.
        return min(epoch / max(num_train_epochs - 1, 1), 1.0)

    def on_init_end(self, args, state, control, **kwargs):
        _refuse_rebuild(args)

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.begin(state, model, _stored_attributes(state, type(self).__name__, self.state()))

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        if not float(state.epoch).is_integer():
            return  # stopped mid-epoch (interrupted): the checkpoint already holds this epoch's masks
        self._mask_up_to(model, self._share_after(round(state.epoch), round(float(state.num_train_epochs or 1))))

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self.prune(model)

    def prune(self, model: nn.Module) -> None:
        """Mask the rest of the target now and remove every masked head physically."""
        self._mask_up_to(model, 1.0)
        self.gates.remove()
        self.gates = None
        positions = {layer: sorted(heads) for layer, heads in self.masked.items() if heads}
        prune_heads(model, _to_original(model, positions))
        counts = parameter_counts(model)
        logger.info("Removed the masked heads: %(trainable_params)s trainable of %(total_params)s parameters.", counts)


def change_structure(
    model: nn.Module,
    surgery_args: SurgeryArguments,
    *,
    training: bool,
    splits: Callable[[], dict[str, Dataset]] | None = None,
    data_collator=None,
    seed: int = 0,
) -> list[TrainerCallback]:
    """Delete layers and prune named heads as `surgery_args` asks, now; heads ranked by importance are
    pruned during `training` by the returned callback (pass it to the Trainer), and a run that does not
    train takes the loaded model as the fine-tuned one and prunes them now. `splits()` gives the task's
    features keyed "train"/"validation", asked for only when gradient importance needs data."""
    callbacks: list[TrainerCallback] = []
    if surgery_args.keep_layers:
        keep_layers(model, surgery_args.keep_layers)
    if surgery_args.prune_heads:
        prune_heads(model, parse_head_spec(surgery_args.prune_heads))
    if surgery_args.ranks_heads:
        batches = None
        if surgery_args.needs_importance_data:
            dataset = (splits() if splits is not None else {}).get(surgery_args.prune_importance_split)
            if dataset is None:
                raise BadInputError(
                    f"Head importance is computed on the {surgery_args.prune_importance_split} split, which this "
                    "run does not have: give that data file or set --prune_importance_split."
                )
            batches = importance_batches(
                model, dataset, data_collator, surgery_args.prune_importance_batch_size,
                surgery_args.prune_importance_samples,
            )
        pruning = ScheduledHeadPruning(surgery_args, HeadRanker(surgery_args, batches, seed), model)
        if training:
            callbacks.append(pruning)
        else:
            pruning.prune(model)
    return callbacks


def apply_surgery(
    model: nn.Module,
    surgery_args: SurgeryArguments,
    *,
    training: bool,
    splits: dict[str, Dataset] | None = None,
    data_collator=None,
    seed: int = 0,
) -> list[TrainerCallback]:
    """`change_structure`, then `--freeze`: surgery alone, for a model trained outside the recipes'
    regime step (`hf_tasks.surgery.regime`, which adds feature-based training and LoRA)."""
    before = parameter_counts(model)
    callbacks = change_structure(model, surgery_args, training=training, splits=lambda: splits or {},
                                 data_collator=data_collator, seed=seed)
    if surgery_args.freeze:
        freeze(model, surgery_args.freeze)
    after = parameter_counts(model)
    if after != before or callbacks:
        logger.info(
            "Surgery: %s trainable of %s parameters (before: %s of %s)%s.",
            after["trainable_params"], after["total_params"], before["trainable_params"], before["total_params"],
            f"; heads are ranked and masked during training ({surgery_args.prune_schedule}) and removed at its end"
            if callbacks else "",
        )
    return callbacks


class SurgeryCallback(TrainerCallback, ExportableState):
    """`apply_surgery` as a callback, for a Trainer built elsewhere: surgery at `on_init_end` (the
    Trainer has not built its optimizer yet), then head pruning during training, its state saved in
    checkpoints under this callback's name. Without `training` (an evaluation-only Trainer), ranked
    heads are pruned at `on_init_end`."""

    def __init__(self, surgery_args: SurgeryArguments, *, training: bool = True,
                 splits: dict[str, Dataset] | None = None, data_collator=None, seed: int = 0):
        self.surgery_args = surgery_args
        self.training = training
        self.splits = splits
        self.data_collator = data_collator
        self.seed = seed
        self.pruning: ScheduledHeadPruning | None = None

    def state(self) -> dict:
        return {"args": {}, "attributes": {"pruning": self.pruning.state()["attributes"] if self.pruning else None}}

    def on_init_end(self, args, state, control, model=None, **kwargs):
        callbacks = apply_surgery(model, self.surgery_args, training=self.training, splits=self.splits,
                                  data_collator=self.data_collator, seed=self.seed)
        self.pruning = next(iter(callbacks), None)
        if self.pruning is not None:
            _refuse_rebuild(args)

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if self.pruning is not None:
            self.pruning.begin(state, model, _stored_attributes(state, type(self).__name__, self.state())["pruning"])

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        if self.pruning is not None:
            self.pruning.on_epoch_end(args, state, control, model=model)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        if self.pruning is not None:
            self.pruning.prune(model)
