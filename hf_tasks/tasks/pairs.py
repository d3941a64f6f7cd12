"""Sentence-pair classification: natural language inference (FarsTail), or any premise/hypothesis data.

Fed a `DatasetDict` with `premise`, `hypothesis` and a `ClassLabel` `label` (`hf_tasks.data.farstail`
builds one): normalise (optionally) → tokenize pairs (`longest_first` truncation to `max_seq_length`)
→ dynamic padding (or padding-free rows, `--padding_free`) → softmax scoring (base class), with the
accuracy of each 0/1 subset column a split has reported as `accuracy_<column>` (FarsTail's test file
marks hard subsets).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from datasets import Dataset, DatasetDict

from hf_tasks.data.cache import preprocessing_cache, tokenizer_fingerprint
from hf_tasks.data.sources import class_names_of
from hf_tasks.data.splits import SPLITS
from hf_tasks.tasks.base import length_sample, warn_about_truncation
from hf_tasks.tasks.classification import ClassificationTask
from hf_tasks.tasks.text import TextCollator
from hf_tasks.text.persian import normalization_key, normalize_persian


DEFAULT_MAX_SEQ_LENGTH = 128
# Columns prediction files show, where the data has them.
DISPLAY_COLUMNS = ("line", "row", "premise", "hypothesis")
# Bump when `PairClassificationTask.tokenize` changes the features it builds (a test holds its source).
PREPROCESSING_VERSION = 1


@dataclass
class PairArguments:
    normalize_persian: bool = field(
        default=False, metadata={"help": "Normalise Persian letters, digits and punctuation before tokenising."}
    )


class PairClassificationTask(ClassificationTask):
    """Premise/hypothesis pairs → one label; `subset_columns` are 0/1 columns whose marked rows'
    accuracy is reported."""

    # The data row of the example in its file (FarsTail's adapter numbers them): what pairs runs on one test set.
    example_id_column = "row"
    padding_free_refusal = None

    def __init__(self, data: DatasetDict, tokenizer, data_args, pair_args: PairArguments,
                 subset_columns: Sequence[str] = ()):
        super().__init__(class_names_of(data, "label"))
        self.data, self.tokenizer, self.data_args, self.pair_args = data, tokenizer, data_args, pair_args
        self.max_seq_length = data_args.max_seq_length or DEFAULT_MAX_SEQ_LENGTH
        self.padding_free = data_args.padding_free
        self.data_collator = TextCollator(tokenizer, padding_free=data_args.padding_free)
        self.display_columns = tuple(column for column in DISPLAY_COLUMNS
                                     if all(column in split.column_names for split in data.values()))
        # Subset columns may mark only some splits (FarsTail's test file): each split scores the ones it has.
        self.subset_columns_of = {name: tuple(column for column in subset_columns if column in split.column_names)
                                  for name, split in data.items()}

    # ---- features ----

    def features_cache(self, raw: Dataset) -> dict[str, str] | None:
        """An on-disk cache of a split's features, keyed by its rows, the normalisation, tokenizer and settings."""
        normalization = normalization_key() if self.pair_args.normalize_persian else None
        return preprocessing_cache(
            self.data_args, raw, "pairs", PREPROCESSING_VERSION, normalization,
            tokenizer_fingerprint(self.tokenizer), self.max_seq_length,
        )

    def _pairs(self, batch: dict[str, list]) -> tuple[list[str], list[str]]:
        premises, hypotheses = batch["premise"], batch["hypothesis"]
        if self.pair_args.normalize_persian:
            premises = [normalize_persian(text) for text in premises]
            hypotheses = [normalize_persian(text) for text in hypotheses]
        return premises, hypotheses

    def tokenize(self, batch: dict[str, list]) -> dict[str, list]:
        premises, hypotheses = self._pairs(batch)
        encoded = self.tokenizer(premises, hypotheses, truncation="longest_first", max_length=self.max_seq_length)
        # -100 is the loss's ignore index; -1 (an unlabelled test row) would make the loss fail.
        encoded["label"] = [-100 if label < 0 else label for label in batch["label"]]
        return encoded

    def build_features(self, training_args) -> dict[str, Dataset]:
        """Tokenised splits keyed train/validation/test."""
        built = {}
        with training_args.main_process_first(desc="tokenising pairs"):
            for name in SPLITS:
                if name not in self.data:
                    continue
                raw = self.data[name]
                built[name] = raw.map(
                    self.tokenize,
                    batched=True,
                    remove_columns=[column for column in raw.column_names if column != "label"],
                    num_proc=self.data_args.preprocessing_num_workers,
                    load_from_cache_file=not self.data_args.overwrite_cache,
                    desc=f"Tokenising {name} pairs",
                    **(self.features_cache(raw) or {}),
                )
                if name != "train":
                    self.raw[name] = raw
                elif training_args.process_index == 0:
                    premises, hypotheses = self._pairs(length_sample(raw)[:])
                    lengths = [len(ids) for ids in self.tokenizer(premises, hypotheses, verbose=False)["input_ids"]]
                    warn_about_truncation(lengths, self.max_seq_length, "training pairs")
        return built

    def _subset_accuracies(self, split, scored):
        self.subset_columns = self.subset_columns_of.get(split, ())
        return super()._subset_accuracies(split, scored)
