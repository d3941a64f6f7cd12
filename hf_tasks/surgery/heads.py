"""Attention-head pruning: gates, importance scores and physical removal.

transformers 5.x has neither `head_mask` nor `prune_heads`, so both are built here:

- `HeadGates` multiplies each head's context vector by a gate just before the output projection (a
  forward pre-hook, so any architecture `structure.find_encoder` understands works). A 0/1 gate
  masks heads during training; a differentiable gate ξ_h gives Michel et al. (2019)'s importance
  I_h = E_x |∂L(x)/∂ξ_h|.
- `prune_heads` removes heads physically: their rows of the q/k/v projections and their columns of the
  output projection. The removed heads are recorded in the config (`pruned_heads`, keyed by layer,
  original head numbers) so `hf_tasks.modeling.loading.from_pretrained` rebuilds the same structure.

Heads are numbered as in the unpruned model; layers as in the model after any layer deletion.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

import torch
from torch import nn

from hf_tasks.modeling.pruned_heads import remove_heads
from hf_tasks.surgery.structure import AttentionBlock, Encoder, find_encoder
from hf_tasks.errors import BadInputError

logger = logging.getLogger(__name__)


def _config_holding_record(encoder: Encoder):
    """The config that is saved with the model: the top model's, else the backbone's."""
    config = getattr(encoder.model, "config", None)
    return config if hasattr(config, "to_dict") else encoder.config


def pruned_heads_of(model: nn.Module) -> dict[int, list[int]]:
    """Heads already removed from `model`, per layer, in original numbering."""
    encoder = find_encoder(model)
    recorded = getattr(_config_holding_record(encoder), "pruned_heads", None) or {}
    return {int(layer): sorted(int(head) for head in heads) for layer, heads in recorded.items()}


def _original_head_count(encoder: Encoder) -> int:
    return int(encoder.config.num_attention_heads)


def remaining_heads(model: nn.Module) -> list[list[int]]:
    """Per layer, the original numbers of the heads still present, in their current order."""
    encoder = find_encoder(model)
    pruned = pruned_heads_of(model)
    count = _original_head_count(encoder)
    remaining = [[head for head in range(count) if head not in pruned.get(layer, [])]
                 for layer in range(len(encoder.attention_blocks))]
    for layer, (block, heads) in enumerate(zip(encoder.attention_blocks, remaining)):
        if block.num_heads != len(heads):
            raise ValueError(
                f"Layer {layer} has {block.num_heads} heads but its config records {len(heads)} remaining "
                f"(pruned_heads={pruned.get(layer, [])}); load pruned models with hf_tasks.surgery.from_pretrained."
            )
    return remaining


def _check_prunable(encoder: Encoder) -> list[AttentionBlock]:
    blocks = encoder.attention_blocks
    if not blocks or any(block.output is None for block in blocks):
        raise BadInputError(
            f"{encoder.describe()}: head pruning needs separate query/key/value projections and an output "
            "projection in every layer, which this model does not have."
        )
    return blocks


class HeadGates:
    """A gate per attention head, applied to the head's context vector before the output projection.

    Set `values[layer]` to a tensor of shape (heads,) — the same gate for every example — or
    (batch, heads) — one gate per example; None leaves the layer untouched. Call `remove()` when done.
    A model that runs a batch in pieces, in order (the pooled audio head runs padded clips one at a
    time in evaluation), gets the per-example gates of each piece's rows.
    """

    def __init__(self, model: nn.Module):
        self.blocks = _check_prunable(find_encoder(model))
        self.values: list[torch.Tensor | None] = [None] * len(self.blocks)
        self._next_row = [0] * len(self.blocks)
        self._handles = [
            block.output.register_forward_pre_hook(self._hook(index)) for index, block in enumerate(self.blocks)
        ]

    def _hook(self, index: int):
        def gate_heads(module: nn.Module, args: tuple):
            gate = self.values[index]
            if gate is None:
                return None
            context = args[0]
            if gate.dim() == 2 and context.shape[0] != gate.shape[0]:
                start = self._next_row[index]
                self._next_row[index] = (start + context.shape[0]) % gate.shape[0]
                gate = gate[start : start + context.shape[0]]
            heads = context.view(*context.shape[:-1], gate.shape[-1], -1)
            if gate.dim() == 1:
                broadcast = gate.view(*([1] * (heads.dim() - 2)), -1, 1)
            else:
                broadcast = gate.view(gate.shape[0], *([1] * (heads.dim() - 3)), gate.shape[1], 1)
            return ((heads * broadcast.to(heads.dtype)).view(context.shape), *args[1:])

        return gate_heads

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []


def _move(batch: Mapping, device: torch.device) -> dict:
    return {key: value.to(device) if isinstance(value, torch.Tensor) else value for key, value in batch.items()}


def _batch_size(batch: Mapping) -> int:
    return next(value.shape[0] for value in batch.values() if isinstance(value, torch.Tensor))


def head_importance(model: nn.Module, batches: Iterable[Mapping], *, normalize: bool = True) -> list[torch.Tensor]:
    """Michel et al. (2019) head importance I_h = E_x |∂L(x)/∂ξ_h| on `batches` (dicts with labels).

    Returns one tensor of scores per layer, over the heads present (current order). With `normalize`
    each layer's scores are divided by their L2 norm, as in the paper, so layers compare globally.
    Parameter gradients are left untouched (only the gates are differentiated).
    """
    was_training = model.training
    model.eval()
    gates = HeadGates(model)
    device = next(model.parameters()).device
    scores = [torch.zeros(block.num_heads, device=device) for block in gates.blocks]
    examples = 0
    try:
        for batch in batches:
            batch = _move(batch, device)
            size = _batch_size(batch)
            # One gate per example and head: the gradient of the batch-mean loss with respect to an
            # example's gate is that example's own gradient divided by the batch size.
            per_example = [torch.ones(size, block.num_heads, device=device, requires_grad=True)
                           for block in gates.blocks]
            gates.values = list(per_example)
            loss = getattr(model(**batch), "loss", None)
            if loss is None:
                raise BadInputError(
                    "Head importance needs the model to return a loss: give batches with labels to a model "
                    "with a task head."
                )
            gradients = torch.autograd.grad(loss, per_example, allow_unused=True)
            for layer, gradient in enumerate(gradients):
                if gradient is not None:
                    scores[layer] += (gradient.abs() * size).sum(dim=0)
            examples += size
    finally:
        gates.remove()
        model.train(was_training)
    if examples == 0:
        raise BadInputError("Head importance got no batches: give at least one held-out example.")
    scores = [score / examples for score in scores]
    if normalize:
        scores = [score / score.norm() if score.norm() > 0 else score for score in scores]
    return [score.detach().cpu() for score in scores]


def random_importance(model: nn.Module, seed: int) -> list[torch.Tensor]:
    """Random scores per layer: the random-heads baseline for importance-based pruning."""
    generator = torch.Generator().manual_seed(seed)
    return [torch.rand(block.num_heads, generator=generator) for block in _check_prunable(find_encoder(model))]


def lowest_heads(
    scores: list[torch.Tensor],
    *,
    count: int | None = None,
    per_layer: int | None = None,
    excluded: Mapping[int, Iterable[int]] | None = None,
) -> dict[int, list[int]]:
    """Positions of the least important heads: `count` over all layers, or `per_layer` in each.

    `excluded` heads (e.g. already masked) are neither chosen nor kept; every layer keeps at least one
    head (to remove a whole layer, delete it with `keep_layers`).
    """
    excluded = {layer: set(heads) for layer, heads in (excluded or {}).items()}
    available = {
        layer: [head for head in range(len(score)) if head not in excluded.get(layer, set())]
        for layer, score in enumerate(scores)
    }
    chosen: dict[int, list[int]] = {}
    if per_layer is not None:
        for layer, heads in available.items():
            if per_layer >= len(heads):
                raise BadInputError(
                    f"prune_per_layer={per_layer}: layer {layer} has only {len(heads)} heads left and must keep one."
                )
            ranked = sorted(heads, key=lambda head: float(scores[layer][head]))
            chosen[layer] = sorted(ranked[:per_layer])
        return chosen
    prunable = sum(len(heads) - 1 for heads in available.values())
    if count is None or count < 0 or count > prunable:
        raise BadInputError(
            f"Cannot prune {count} heads: at most {prunable} can go while every layer keeps one head."
        )
    ranked = sorted(
        ((float(scores[layer][head]), layer, head) for layer, heads in available.items() for head in heads)
    )
    left = {layer: len(heads) for layer, heads in available.items()}
    for _, layer, head in ranked:
        if sum(len(heads) for heads in chosen.values()) == count:
            break
        if left[layer] > 1:
            chosen.setdefault(layer, []).append(head)
            left[layer] -= 1
    return {layer: sorted(heads) for layer, heads in sorted(chosen.items())}


def parse_head_spec(spec: Iterable[str]) -> dict[int, list[int]]:
    """Read named heads such as ["0:1,3", "2:0"] (layer:heads) into {0: [1, 3], 2: [0]}."""
    heads: dict[int, list[int]] = {}
    for item in spec:
        layer_text, separator, heads_text = str(item).replace(" ", "").partition(":")
        try:
            if not separator:
                raise ValueError
            heads.setdefault(int(layer_text), []).extend(int(head) for head in heads_text.split(","))
        except ValueError:
            raise BadInputError(
                f"prune_heads item {item!r}: write layer:heads, e.g. '0:1,3' prunes heads 1 and 3 of layer 0."
            ) from None
    return heads


def _remove_positions(block: AttentionBlock, positions: list[int]) -> None:
    remove_heads(block.module, block.output, block.head_size, positions)


def prune_heads(model: nn.Module, heads: Mapping[int, Iterable[int]]) -> dict[int, list[int]]:
    """Physically remove `heads` ({layer: original head numbers}) and record them in the config.

    Returns all heads removed so far, per layer.
    """
    encoder = find_encoder(model)
    blocks = _check_prunable(encoder)
    remaining = remaining_heads(model)
    count = _original_head_count(encoder)
    positions: dict[int, list[int]] = {}
    for layer, named in heads.items():
        named = sorted(set(int(head) for head in named))
        if not 0 <= int(layer) < len(blocks):
            raise BadInputError(f"Head pruning names layer {layer}, but {encoder.describe()}.")
        layer = int(layer)
        missing = [head for head in named if head not in remaining[layer]]
        if missing:
            raise BadInputError(
                f"Head pruning names heads {missing} of layer {layer}, which does not have them: its heads are "
                f"{remaining[layer]} (of 0-{count - 1}; already pruned: "
                f"{sorted(set(range(count)) - set(remaining[layer]))})."
            )
        if len(named) >= len(remaining[layer]):
            raise BadInputError(
                f"Head pruning would remove every head of layer {layer}; keep at least one, or delete the "
                "layer with keep_layers."
            )
        if named:
            positions[layer] = [remaining[layer].index(head) for head in named]
    for layer, layer_positions in positions.items():
        _remove_positions(blocks[layer], layer_positions)
    record = pruned_heads_of(model)
    for layer, named in heads.items():
        record[int(layer)] = sorted(set(record.get(int(layer), [])) | {int(head) for head in named})
    _config_holding_record(encoder).pruned_heads = {
        str(layer): named for layer, named in sorted(record.items()) if named}
    logger.info("Pruned heads %s; %d of %d heads remain.", {k: sorted(v) for k, v in heads.items()},
                sum(block.num_heads for block in blocks), count * len(blocks))
    return {layer: named for layer, named in sorted(record.items()) if named}
