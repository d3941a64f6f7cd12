"""Shape buckets for compiled steps (`--fast_gpu`): each token batch padded up to the next multiple of 64,
at most the task's `max_seq_length`, so that a compiled model (and its CUDA graphs) meets a few batch
shapes instead of one per longest sequence. The extra padding is masked like any other.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Callable

import torch

BUCKET_MULTIPLE = 64
#: The value each padded key is extended with (input ids take the tokenizer's pad id).
PAD_VALUES = {"attention_mask": 0, "token_type_ids": 0, "special_tokens_mask": 1}


def bucket_lengths(max_length: int, multiple: int = BUCKET_MULTIPLE) -> list[int]:
    """Every length a batch can be padded to: the multiples of `multiple` below `max_length`, and it."""
    return [*range(multiple, max_length, multiple), max_length]


def bucket_of(length: int, max_length: int | None, multiple: int = BUCKET_MULTIPLE) -> int:
    """The bucket a batch whose longest row has `length` tokens is padded to."""
    bucket = math.ceil(length / multiple) * multiple
    return bucket if max_length is None else max(length, min(bucket, max_length))


class ShapeBuckets:
    """Wraps a collator: its batch's `input_ids` (and attention mask, token type ids) are padded on the
    tokenizer's padding side up to `bucket_of` the batch's length. Batches without `input_ids` pass."""

    def __init__(self, collate: Callable, pad_token_id: int, max_length: int | None, padding_side: str = "right"):
        self.collate, self.pad_token_id, self.max_length = collate, pad_token_id, max_length
        self.padding_side = padding_side

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self.collate(features)
        ids = batch.get("input_ids") if isinstance(batch, Mapping) else None  # BatchEncoding is no dict
        if ids is None or ids.dim() != 2:
            return batch
        extra = bucket_of(ids.shape[1], self.max_length) - ids.shape[1]
        if extra == 0:
            return batch
        values = {"input_ids": self.pad_token_id, **PAD_VALUES}
        sides = (0, extra) if self.padding_side == "right" else (extra, 0)
        for key, value in values.items():
            tensor = batch.get(key)
            if torch.is_tensor(tensor) and tensor.dim() == 2 and tensor.shape[1] == ids.shape[1]:
                batch[key] = torch.nn.functional.pad(tensor, sides, value=value)
        return batch
