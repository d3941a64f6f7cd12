"""Feature-based training: a frozen backbone in inference mode, its outputs computed once per example.

With the backbone frozen, every epoch would run the same encoder on the same inputs again; only the
head learns. `FeatureCache` memoises the backbone's forward per example, keyed by the example's
real tokens (padding excluded), so the first epoch computes each example once and later epochs and
evaluations only run the head. The model, the Trainer and the run folder stay as they are: the
cache replaces the backbone's `forward` on the instance and holds no parameters, so checkpoints and
`save_pretrained` are unchanged.

A frozen backbone here also means inference mode (no dropout): cached features must be the
features the backbone gives, and then cached and uncached training see exactly the same inputs.

The cache needs right padding. Left padding shifts an example's real tokens to positions that depend
on the longest example in its batch, so absolute position embeddings give it different states in
every batch: no per-example cache can stand for that, and a left-padded batch is refused in one line.
"""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
import torch
from torch import nn
from transformers.modeling_outputs import BaseModelOutputWithPooling

from hf_tasks.errors import BadInputError

logger = logging.getLogger(__name__)

#: "tokens": every token state (for heads that read the sequence, such as the BiGRU).
#: "first_token": the first token's state and the pooler output only (for [CLS]/pooler heads).
CacheMode = Literal["tokens", "first_token"]

LEFT_PADDING = (
    "--cache_features needs right padding, but the batch is padded on the left (the tokenizer's padding_side); "
    "save the tokenizer with padding_side='right' or drop --cache_features."
)
FEATURE_BASED_LORA = (
    "--feature_based trains only the head on a frozen backbone, and LoRA trains adapters inside the backbone, "
    "so the two cannot be combined (nor can cached features be reused); drop --feature_based or --peft lora."
)


def backbone_of(model: nn.Module) -> nn.Module:
    """The pretrained encoder inside a task model (`model.bert`, `model.encoder`, ...)."""
    backbone = getattr(model, "base_model", model)
    if backbone is model:
        raise ValueError(
            f"{type(model).__name__} has no separate backbone (base_model_prefix "
            f"{getattr(model, 'base_model_prefix', None)!r}); feature-based mode needs an encoder plus a head."
        )
    return backbone


def keep_in_inference_mode(module: nn.Module) -> torch.utils.hooks.RemovableHandle:
    """Run `module` without dropout even while the Trainer puts the model in training mode."""

    def to_inference_mode(inner: nn.Module, _inputs) -> None:
        if inner.training:
            inner.eval()

    return module.register_forward_pre_hook(to_inference_mode)


class FeatureCache:
    """Memoises a frozen backbone's outputs per example (see the module docstring).

    Stored tensors stay on the device they were computed on: for `tokens` that is
    examples × tokens × hidden floats (the Constraint data at 128 tokens with BERT-base: ~1.5 GB).
    Under DDP each process keeps its own cache; as the sampler reshuffles shards every epoch, each
    one fills up to the whole dataset within a few epochs.
    """

    def __init__(self, backbone: nn.Module, mode: CacheMode = "tokens"):
        if mode not in ("tokens", "first_token"):
            raise ValueError(f"Feature cache mode must be 'tokens' or 'first_token', got {mode!r}.")
        trainable = [name for name, parameter in backbone.named_parameters() if parameter.requires_grad]
        if trainable:
            raise ValueError(
                f"Caching features needs a frozen backbone, but {len(trainable)} of its parameter tensors "
                f"train (e.g. {trainable[0]}); freeze the backbone first (feature-based mode)."
            )
        self.backbone, self.mode = backbone, mode
        self.features: dict[bytes, tuple[torch.Tensor, torch.Tensor | None]] = {}
        self.hits = self.misses = 0
        self._compute = backbone.forward
        backbone.forward = self._forward

    def remove(self) -> None:
        """Restore the backbone's own forward and drop the stored features."""
        if self.backbone.__dict__.get("forward") == self._forward:
            del self.backbone.forward
        self.features.clear()

    def _keys(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None):
        ids = input_ids.cpu().numpy()
        mask = attention_mask.cpu().numpy().astype(bool)
        if (mask[:, 1:] > mask[:, :-1]).any():  # a real token after padding
            raise BadInputError(LEFT_PADDING)
        types = None if token_type_ids is None else token_type_ids.cpu().numpy()
        keys = []
        for row in range(len(ids)):
            key = ids[row, mask[row]].astype(np.int64).tobytes()
            if types is not None:
                key += b"|" + types[row, mask[row]].astype(np.int64).tobytes()
            keys.append(key)
        return keys, mask.sum(axis=1)

    def _forward(self, input_ids=None, attention_mask=None, token_type_ids=None, return_dict=None, **kwargs):
        # Calls the cache does not cover (embeddings given, attentions or hidden states asked for, ...)
        # run the backbone as usual.
        if input_ids is None or any(value is not None for value in kwargs.values()):
            given = {"attention_mask": attention_mask, "token_type_ids": token_type_ids, "return_dict": return_dict}
            return self._compute(input_ids, **{k: v for k, v in {**given, **kwargs}.items() if v is not None})
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        keys, lengths = self._keys(input_ids, attention_mask, token_type_ids)
        missing = [row for row, key in enumerate(keys) if key not in self.features]
        self.misses += len(missing)
        self.hits += len(keys) - len(missing)
        if missing:
            self._store(missing, keys, lengths, input_ids, attention_mask, token_type_ids)
        outputs = self._assemble(keys, input_ids.shape[1])
        return outputs if return_dict is not False else outputs.to_tuple()

    @torch.no_grad()
    def _store(self, rows, keys, lengths, input_ids, attention_mask, token_type_ids) -> None:
        index = torch.tensor(rows, device=input_ids.device)
        width = int(lengths[rows].max())
        inputs = {"input_ids": input_ids[index, :width], "attention_mask": attention_mask[index, :width]}
        if token_type_ids is not None:
            inputs["token_type_ids"] = token_type_ids[index, :width]
        training = self.backbone.training
        self.backbone.eval()
        try:
            outputs = self._compute(**inputs, return_dict=True)
        finally:
            self.backbone.train(training)
        states, pooled = outputs.last_hidden_state, getattr(outputs, "pooler_output", None)
        for position, row in enumerate(rows):
            kept = int(lengths[row]) if self.mode == "tokens" else 1
            # clone: a slice would keep the whole batch's tensor alive.
            self.features[keys[row]] = (
                states[position, :kept].clone(),
                None if pooled is None else pooled[position].clone(),
            )

    def _assemble(self, keys: list[bytes], width: int) -> BaseModelOutputWithPooling:
        stored = [self.features[key] for key in keys]
        first_states = stored[0][0]
        width = width if self.mode == "tokens" else 1
        states = first_states.new_zeros((len(keys), width, first_states.shape[-1]))
        for row, (row_states, _) in enumerate(stored):
            states[row, : len(row_states)] = row_states
        pooled = None if stored[0][1] is None else torch.stack([row_pooled for _, row_pooled in stored])
        return BaseModelOutputWithPooling(last_hidden_state=states, pooler_output=pooled)


def cache_mode(model: nn.Module) -> CacheMode | None:
    """What a cache must keep for `model`'s head: "first_token" for the stock sequence classifiers (they
    read the [CLS] state or the pooler), "tokens" for heads that read the sequence (BiGRU, QA spans);
    None for models that do not read token ids (speech, images), whose inputs the cache cannot key."""
    if getattr(model, "main_input_name", None) != "input_ids":
        return None
    if getattr(model, "reads_token_states", False) or not type(model).__name__.endswith("ForSequenceClassification"):
        return "tokens"
    return "first_token"


def feature_based(model: nn.Module, cache: CacheMode | None = None) -> FeatureCache | None:
    """Feature-based mode on a model whose backbone is already frozen (the regime step freezes it): run
    the backbone without dropout and, with `cache`, memoise its outputs. Returns the cache, if any."""
    if hasattr(model, "peft_config"):
        raise BadInputError(FEATURE_BASED_LORA)
    backbone = backbone_of(model)
    trainable = [name for name, parameter in backbone.named_parameters() if parameter.requires_grad]
    if trainable:
        raise ValueError(f"Feature-based mode needs a frozen backbone, but {trainable[0]} trains; freeze it first.")
    keep_in_inference_mode(backbone)
    if cache is None:
        return None
    feature_cache = FeatureCache(backbone, cache)
    logger.info("Caching the frozen backbone's outputs (%s) per example.", cache)
    return feature_cache
