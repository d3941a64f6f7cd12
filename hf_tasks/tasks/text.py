"""Single-text classification: tweets (Constraint@AAAI-2021 COVID fake news) or any text/label data.

Fed a `DatasetDict` with a text column and a `ClassLabel` `label` (`hf_tasks.data.constraint` builds
one, validated): texts go through `TweetNormalizer` before tokenisation (truncated to
`max_seq_length`), then dynamic padding, softmax or one-sigmoid scoring (base class), and prediction
files that show the id and the original text.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import torch
from datasets import Dataset, DatasetDict
from transformers import DataCollatorWithPadding

from hf_tasks.data.cache import preprocessing_cache, tokenizer_fingerprint
from hf_tasks.data.sources import class_names_of
from hf_tasks.data.splits import SPLITS
from hf_tasks.tasks.base import length_sample, warn_about_truncation
from hf_tasks.tasks.classification import ClassificationTask
from hf_tasks.text.tweets import TweetNormalizer

logger = logging.getLogger(__name__)

# Bump when `TextClassificationTask.tokenize` changes the features it builds (a test holds its source).
PREPROCESSING_VERSION = 1


@dataclass
class TextArguments:
    binary_sigmoid: bool = field(
        default=False,
        metadata={"help": "One sigmoid output trained with binary cross-entropy instead of a softmax over classes."},
    )
    unescape_html: bool = field(default=True, metadata={"help": "Turn HTML entities (&amp; &#128514;) into text."})
    replace_urls: bool = field(default=True, metadata={"help": "Replace URLs by --url_token."})
    replace_mentions: bool = field(default=True, metadata={"help": "Replace @mentions by --mention_token."})
    demojize: bool = field(default=True, metadata={"help": "Write emoji as their names (:face_with_mask:)."})
    collapse_whitespace: bool = field(default=True, metadata={"help": "Newlines, tabs and runs of spaces → one space."})
    url_token: str = field(default=TweetNormalizer.url_token, metadata={"help": "Placeholder for URLs."})
    mention_token: str = field(default=TweetNormalizer.mention_token, metadata={"help": "Placeholder for @mentions."})
    show_examples: int = field(
        default=3, metadata={"help": "Log this many training texts before and after normalisation."}
    )

    def normalizer(self) -> TweetNormalizer:
        return TweetNormalizer.from_options(self)


class TextClassificationTask(ClassificationTask):
    """One text (column `text_column`) in, one class out; normalising and tokenising on top of
    `ClassificationTask`'s scoring and prediction files, which show `display_columns` (id and text)."""

    padding_free_refusal = None

    def __init__(self, data: DatasetDict, tokenizer, data_args, text_args: TextArguments, *, text_column: str,
                 display_columns: tuple[str, ...] = (), id_column: str | None = None):
        super().__init__(class_names_of(data, "label"), binary_sigmoid=text_args.binary_sigmoid)
        self.data, self.tokenizer, self.data_args, self.text_args = data, tokenizer, data_args, text_args
        self.text_column = text_column
        self.normalize = text_args.normalizer()
        self.max_seq_length = min(data_args.max_seq_length or 128, tokenizer.model_max_length)
        self.display_columns = display_columns or (text_column,)
        self.example_id_column = id_column
        self.padding_free = data_args.padding_free
        self.data_collator = TextCollator(tokenizer, binary_sigmoid=text_args.binary_sigmoid,
                                          padding_free=data_args.padding_free)

    def build_features(self, training_args) -> dict[str, Dataset]:
        self._show_examples(self.data)
        built = {}
        with training_args.main_process_first(desc="tokenising texts"):
            for name in SPLITS:
                if name not in self.data:
                    continue
                rows = self.data[name]
                encoded = rows.map(
                    self.tokenize,
                    batched=True,
                    remove_columns=rows.column_names,
                    num_proc=self.data_args.preprocessing_num_workers,
                    desc=f"Tokenising {name}",
                    **(self.features_cache(rows) or {}),
                )
                if all(label == -1 for label in rows["label"]):
                    encoded = encoded.remove_columns("labels")
                if name == "train" and training_args.process_index == 0:
                    sample = length_sample(rows)
                    texts = [self.normalize(text) for text in sample[self.text_column]]
                    lengths = [len(ids) for ids in self.tokenizer(texts, verbose=False)["input_ids"]]
                    warn_about_truncation(lengths, self.max_seq_length, "training texts")
                if name != "train":
                    self.raw[name] = rows
                built[name] = encoded
        return built

    def features_cache(self, rows: Dataset) -> dict[str, str] | None:
        """An on-disk cache of a split's features, keyed by its rows, the normaliser, tokenizer and settings."""
        return preprocessing_cache(
            self.data_args, rows, "text", PREPROCESSING_VERSION, self.normalize.cache_key(),
            self.text_column, tokenizer_fingerprint(self.tokenizer), self.max_seq_length,
        )

    def tokenize(self, batch: dict[str, list]) -> dict[str, list]:
        encoded = self.tokenizer(
            [self.normalize(text) for text in batch[self.text_column]],
            truncation=True,
            max_length=self.max_seq_length,
        )
        encoded["labels"] = batch["label"]
        return encoded

    def _show_examples(self, splits: dict[str, Dataset]) -> None:
        shown = splits.get("train") or next(iter(splits.values()))
        for index in range(min(self.text_args.show_examples, len(shown))):
            text = shown[index][self.text_column]
            logger.info("example %d: %r\n  → %r", index + 1, text, self.normalize(text))


class FlattenedSequences:
    """Padding-free batches (`--padding_free`): the batch's sequences concatenated into one row of
    `input_ids` (and `token_type_ids`), `position_ids` restarting at 0 at each sequence, no attention
    mask, and one label per sequence (`labels`, first in the batch: the Trainer counts a batch's rows by
    its first tensor). The model must read such a row (`hf_tasks.modeling.padding_free`).

    transformers' `DataCollatorWithFlattening` is made for language modelling: it turns labels into
    per-token lists, which fails on one integer label per sequence (transformers #41652).
    """

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch: dict[str, torch.Tensor] = {}
        label_key = next((key for key in ("labels", "label") if key in features[0]), None)
        if label_key is not None:
            batch["labels"] = torch.tensor([feature[label_key] for feature in features])
        batch["input_ids"] = torch.tensor([token for feature in features for token in feature["input_ids"]])[None]
        if "token_type_ids" in features[0]:
            batch["token_type_ids"] = torch.tensor(
                [token for feature in features for token in feature["token_type_ids"]])[None]
        batch["position_ids"] = torch.cat([torch.arange(len(feature["input_ids"])) for feature in features])[None]
        return batch


class TextCollator:
    """Dynamic padding, or with `padding_free` one flattened row (`FlattenedSequences`); for a single
    sigmoid output the labels become float columns (batch, 1), the shape `BCEWithLogitsLoss` in
    `*ForSequenceClassification` heads expects."""

    def __init__(self, tokenizer, binary_sigmoid: bool = False, padding_free: bool = False):
        self.pad = FlattenedSequences() if padding_free else DataCollatorWithPadding(tokenizer)
        self.binary_sigmoid = binary_sigmoid

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = self.pad(features)
        if self.binary_sigmoid and "labels" in batch:
            batch["labels"] = batch["labels"].float().unsqueeze(-1)
        return batch
