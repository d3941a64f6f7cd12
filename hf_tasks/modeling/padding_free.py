"""Padding-free sequence classification: a batch's sequences concatenated into one row, nothing padded.

The collator (`hf_tasks.tasks.text.FlattenedSequences`) gives the model one row of token ids, position
ids restarting at 0 at each sequence and no attention mask. The encoder keeps the sequences apart from
those position ids (transformers 5.25 builds a block-diagonal mask from them for eager and SDPA
attention; flash-attention takes them as variable-length sequences). The head must then read each
sequence at its own boundary instead of row 0's first token:

- a model that reads flattened rows itself says so with `reads_flattened_sequences = True`
  (`BiGRUForSequenceClassification` runs its GRU over each sequence's own span);
- any other sequence classifier whose head reads the first token of each row ([CLS]: BERT's pooler,
  ELECTRA's and ALBERT's heads) gets `FirstTokens`: two hooks that hand the head the first token of each
  sequence as a row of its own, so its logits come out one row per sequence.

`enable_padding_free` installs that and then checks it on two short sequences: the logits of the
flattened pair must equal the padded pair's. A model or attention implementation that cannot honour
the flattened layout (a head reading the last token, positions counted from another start as
RoBERTa's are) fails that check and is refused in one line. Hooks are not saved: the run folder's
model is the ordinary model and reads padded batches anywhere.
"""

from __future__ import annotations

import torch
from torch import nn

from hf_tasks.errors import BadInputError
from hf_tasks.modeling.feature_cache import FeatureCache

#: Largest difference between the flattened and the padded logits of the check (float32 on the CPU
#: gives ~1e-7; the encoder's own summation order explains anything up to this).
LOGITS_TOLERANCE = 1e-4


def sequence_starts(position_ids: torch.Tensor) -> torch.Tensor:
    """Indices, in the flattened row, of the first token of each sequence (position id 0)."""
    return (position_ids[0] == 0).nonzero().squeeze(-1)


class FirstTokens:
    """Hands a first-token head the first token of each flattened sequence, one sequence per row.

    A pre-hook on the model notes the position ids it was called with; a hook on its encoder replaces the
    encoder's token states (1, tokens, hidden) by (sequences, 1, hidden), the states at the sequence
    starts. Pooler and classifier then read "row i, token 0" as sequence i's [CLS]. Calls without position
    ids, or with an attention mask (ordinary padded batches), pass through untouched.
    """

    def __init__(self, model: nn.Module, encoder: nn.Module):
        self.starts: torch.Tensor | None = None
        self.handles = [model.register_forward_pre_hook(self.note_positions, with_kwargs=True),
                        encoder.register_forward_hook(self.first_tokens)]

    def note_positions(self, module, args, kwargs):
        position_ids = kwargs.get("position_ids")
        flattened = position_ids is not None and kwargs.get("attention_mask") is None and position_ids.shape[0] == 1
        self.starts = sequence_starts(position_ids) if flattened else None

    def first_tokens(self, module, args, output):
        if self.starts is None:
            return output
        states = output[0][0, self.starts].unsqueeze(1)
        if isinstance(output, tuple):
            return (states, *output[1:])
        output.last_hidden_state = states
        return output

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def enable_padding_free(model: nn.Module) -> FirstTokens | None:
    """Make `model` read flattened batches (see the module docstring) and check it does; returns the
    hooks it installed (None when the model reads flattened rows itself). Refuses in one line otherwise."""
    classifier = model.get_base_model() if hasattr(model, "get_base_model") else model  # under LoRA's wrapper
    name = type(classifier).__name__
    if any(isinstance(getattr(vars(module).get("forward"), "__self__", None), FeatureCache)
           for module in classifier.modules()):
        raise BadInputError("--padding_free with --cache_features: the cache stores padded rows; drop one of them.")
    hooks = None
    if not getattr(classifier, "reads_flattened_sequences", False):
        encoder = getattr(classifier.base_model, "encoder", None)
        if classifier.base_model is classifier or not isinstance(encoder, nn.Module):
            raise BadInputError(f"--padding_free: {name} has no encoder whose token states a first-token head reads; "
                                "leave --padding_free out.")
        hooks = FirstTokens(classifier, encoder)
    difference = _flattened_logits_difference(model)
    if not difference <= LOGITS_TOLERANCE:
        if hooks is not None:
            hooks.remove()
        attention = getattr(classifier.config, "_attn_implementation", None)
        raise BadInputError(
            f"--padding_free: {name} ({classifier.config.model_type}, {attention} attention) gives two flattened "
            f"sequences other logits than the same two padded (max difference {difference:.2g}): its head or "
            "attention does not keep sequences apart by position ids; leave --padding_free out.")
    return hooks


def _flattened_logits_difference(model: nn.Module) -> float:
    """Largest difference between the logits of two short sequences padded into a batch and flattened
    into one row, in evaluation mode, without gradients."""
    lengths = (3, 5)
    vocab = model.get_input_embeddings().num_embeddings
    generator = torch.Generator().manual_seed(0)
    ids = [torch.randint(1, vocab, (length,), generator=generator) for length in lengths]
    padded = torch.zeros(len(lengths), max(lengths), dtype=torch.long)
    mask = torch.zeros_like(padded)
    for row, sequence in enumerate(ids):
        padded[row, :len(sequence)], mask[row, :len(sequence)] = sequence, 1
    flat = torch.cat(ids)[None]
    positions = torch.cat([torch.arange(length) for length in lengths])[None]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            separate = model(input_ids=padded.to(device), attention_mask=mask.to(device)).logits
            flattened = model(input_ids=flat.to(device), position_ids=positions.to(device)).logits
    finally:
        model.train(was_training)
    if flattened.shape != separate.shape:
        return float("inf")
    return float((flattened.float() - separate.float()).abs().max())
