"""Sentence-pair classification: natural language inference on FarsTail, or any premise/hypothesis data.

FarsTail files are tab-separated with a header `premise, hypothesis, label` (labels e, c, n); the
test file adds 0/1 columns `hard(hypothesis)` and `hard(overlap)`, whose accuracies are reported as
`test_accuracy_hard_hypothesis` and `test_accuracy_hard_overlap`. Fields may be quoted and hold tabs,
so files are read with real CSV quoting (`csv` module), never split on tabs.

read (TSV/CSV or hub dataset) → validate (columns, empty texts, unknown labels) → tokenize pairs
(`longest_first` truncation to `max_seq_length`) → dynamic padding → softmax scoring (base class).
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datasets import ClassLabel, Dataset
from transformers import DataCollatorWithPadding

from hf_tasks.errors import BadInputError
from hf_tasks.data.cache import preprocessing_cache, tokenizer_fingerprint
from hf_tasks.data.sources import load_splits
from hf_tasks.data.splits import SPLITS, limit_splits
from hf_tasks.tasks.classification import ClassificationTask
from hf_tasks.text.persian import normalization_key, normalize_persian

logger = logging.getLogger(__name__)

FARSTAIL_LABELS = ["entailment", "contradiction", "neutral"]
HARD_COLUMNS = ("hard(hypothesis)", "hard(overlap)")
DEFAULT_MAX_SEQ_LENGTH = 128
# Bump when `PairClassificationTask.tokenize` changes the features it builds (a test holds its source).
PREPROCESSING_VERSION = 1


@dataclass
class PairArguments:
    premise_column: str = field(default="premise", metadata={"help": "Column of the first sentence."})
    hypothesis_column: str = field(default="hypothesis", metadata={"help": "Column of the second sentence."})
    label_column: str = field(default="label", metadata={"help": "Column of the class label."})
    class_names: list[str] = field(
        default_factory=lambda: list(FARSTAIL_LABELS),
        metadata={"help": "Classes in id order. Data may spell a class by its name or, when the names' first "
                          "letters differ, by that letter (FarsTail's e, c, n)."},
    )
    normalize_persian: bool = field(
        default=False, metadata={"help": "Normalise Persian letters, digits and punctuation before tokenising."}
    )


def _delimiter(header_line: str) -> str:
    # FarsTail ships tab-separated files named .csv; a header with a tab means tabs.
    return "\t" if "\t" in header_line else ","


def read_pair_table(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and (line number, fields) rows of a tab- or comma-separated file with CSV quoting."""
    try:
        with Path(path).open(newline="", encoding="utf-8-sig") as handle:
            first = handle.readline()
            handle.seek(0)
            reader = csv.reader(handle, delimiter=_delimiter(first))
            header = [name.strip() for name in next(reader, [])]
            rows = []
            for fields in reader:
                if fields and any(value.strip() for value in fields):
                    rows.append((reader.line_num, fields))
    except UnicodeDecodeError as error:
        raise BadInputError(f"{path}: not UTF-8 text ({error}); save the file as UTF-8.") from error
    except csv.Error as error:
        raise BadInputError(f"{path}: unreadable CSV/TSV ({error}); check quoting of fields that hold tabs.") from error
    return header, rows


class PairClassificationTask(ClassificationTask):
    """Premise/hypothesis pairs → one label; FarsTail by default."""

    display_columns = ("row", "premise", "hypothesis")

    def __init__(self, data_args, pair_args: PairArguments, tokenizer):
        super().__init__(pair_args.class_names)
        self.data_args, self.pair_args, self.tokenizer = data_args, pair_args, tokenizer
        self.max_seq_length = data_args.max_seq_length or DEFAULT_MAX_SEQ_LENGTH
        self.data_collator = DataCollatorWithPadding(tokenizer)
        self.skipped_rows: list[dict[str, Any]] = []
        self.label_ids = self._label_spellings()
        self.subset_columns_of: dict[str, tuple[str, ...]] = {}

    def _label_spellings(self) -> dict[str, int]:
        spellings = {name.lower(): index for index, name in enumerate(self.label_names)}
        initials = [name[0].lower() for name in self.label_names]
        if len(set(initials)) == len(initials):
            spellings.update({initial: index for index, initial in enumerate(initials)})
        return spellings

    # ---- loading and validation ----

    def read_local(self, path: Path) -> Dataset:
        header, rows = read_pair_table(path)
        columns = {"premise": self.pair_args.premise_column, "hypothesis": self.pair_args.hypothesis_column,
                   "label": self.pair_args.label_column}
        missing = [name for name in columns.values() if name not in header]
        if missing:
            raise BadInputError(
                f"{path}: missing column(s) {missing}; the header has {header}. FarsTail files need a header "
                "row premise, hypothesis, label (tab-separated); other names: --premise_column, "
                "--hypothesis_column, --label_column."
            )
        records = []
        for line, fields in rows:
            if len(fields) != len(header):
                raise BadInputError(
                    f"{path}: line {line} has {len(fields)} fields, the header {len(header)}; a field holding "
                    "a tab or newline must be quoted (\"...\")."
                )
            values = dict(zip(header, fields))
            record = {key: values[name] for key, name in columns.items()}
            record.update({name: values[name] for name in HARD_COLUMNS if name in values})
            record["row"] = line
            records.append(record)
        test_file = self.data_args.test_file
        is_test = test_file is not None and Path(path).resolve() == Path(test_file).resolve()
        return self._validated(records, str(path), "line", unlabelled_ok=is_test)

    def _from_hub(self, split: Dataset, source: str) -> Dataset:
        columns = [self.pair_args.premise_column, self.pair_args.hypothesis_column, self.pair_args.label_column]
        missing = [name for name in columns if name not in split.column_names]
        if missing:
            raise BadInputError(
                f"{source}: missing column(s) {missing}; columns are {split.column_names}. Name them with "
                "--premise_column, --hypothesis_column, --label_column."
            )
        label_feature = split.features[self.pair_args.label_column]
        records = []
        for index, values in enumerate(split):
            label = values[self.pair_args.label_column]
            if isinstance(label_feature, ClassLabel):
                label = "" if label is None or label < 0 else label_feature.int2str(label)
            record = {"premise": values[columns[0]], "hypothesis": values[columns[1]], "label": label, "row": index}
            record.update({name: values[name] for name in HARD_COLUMNS if name in values})
            records.append(record)
        return self._validated(records, source, "row", unlabelled_ok=source.endswith("[test]"))

    def _validated(self, records: list[dict], source: str, unit: str, unlabelled_ok: bool) -> Dataset:
        """Rows with label ids; empty texts and unknown labels raise (or are skipped on request). Only the
        test split may leave labels empty (scored as unlabelled)."""
        problems: dict[int, str] = {}
        unknown: dict[str, list[int]] = {}
        for record in records:
            for key in ("premise", "hypothesis"):
                text = record[key]
                if text is None or not str(text).strip():
                    problems.setdefault(record["row"], f"empty {key}")
            label = str(record["label"] if record["label"] is not None else "").strip()
            if label.lower() in self.label_ids:
                record["label"] = self.label_ids[label.lower()]
            elif label == "" and unlabelled_ok:
                record["label"] = -1
            else:
                unknown.setdefault(label, []).append(record["row"])
                problems.setdefault(record["row"], f"unknown label {label!r}")
        if problems and not self.data_args.skip_bad_rows:
            allowed = ", ".join(sorted(self.label_ids))
            if unknown:
                listed = "; ".join(f"{value!r} at {unit}s {rows[:10]}{' ...' if len(rows) > 10 else ''}"
                                   for value, rows in unknown.items())
                raise BadInputError(
                    f"{source}: unknown labels: {listed}. Labels must be one of {allowed} (set the classes with "
                    "--class_names), or pass --skip_bad_rows to skip such rows."
                )
            row, problem = next(iter(problems.items()))
            raise BadInputError(
                f"{source}: {unit} {row}: {problem} ({len(problems)} such rows); fix the file or pass "
                "--skip_bad_rows to skip them (they are listed in skipped_rows.json)."
            )
        for row, problem in problems.items():
            self.skipped_rows.append({"file": source, unit: row, "reason": problem})
        kept = [record for record in records if record["row"] not in problems]
        if not kept:
            raise BadInputError(f"{source}: no usable rows.")
        for record in kept:
            record["premise"], record["hypothesis"] = str(record["premise"]), str(record["hypothesis"])
        return Dataset.from_list(kept)

    # ---- features ----

    def features_cache(self, raw: Dataset) -> dict[str, str] | None:
        """An on-disk cache of a split's features, keyed by its rows, the normalisation, tokenizer and settings."""
        normalization = normalization_key() if self.pair_args.normalize_persian else None
        return preprocessing_cache(
            self.data_args, raw, "pairs", PREPROCESSING_VERSION, normalization,
            tokenizer_fingerprint(self.tokenizer), self.max_seq_length,
        )

    def tokenize(self, batch: dict[str, list]) -> dict[str, list]:
        premises, hypotheses = batch["premise"], batch["hypothesis"]
        if self.pair_args.normalize_persian:
            premises = [normalize_persian(text) for text in premises]
            hypotheses = [normalize_persian(text) for text in hypotheses]
        encoded = self.tokenizer(premises, hypotheses, truncation="longest_first", max_length=self.max_seq_length)
        # -100 is the loss's ignore index; -1 (an unlabelled test row) would make the loss fail.
        encoded["label"] = [-100 if label < 0 else label for label in batch["label"]]
        return encoded

    def build_features(self, training_args) -> dict[str, Dataset]:
        """Tokenised splits keyed train/validation/test."""
        splits = limit_splits(load_splits(self.data_args, lambda path, split: self.read_local(path)), self.data_args)
        if self.data_args.dataset_name:
            splits = {name: self._from_hub(split, f"{self.data_args.dataset_name}[{name}]")
                      for name, split in splits.items()}
        built = {}
        with training_args.main_process_first(desc="tokenising pairs"):
            for name in SPLITS:
                if name not in splits:
                    continue
                raw = splits[name]
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
                    self.subset_columns_of[name] = tuple(c for c in HARD_COLUMNS if c in raw.column_names)
        logger.info("Pairs: %s; classes %s", ", ".join(f"{k} {len(v)}" for k, v in built.items()), self.label_names)
        return built

    def _subset_accuracies(self, split, scored):
        # Only FarsTail's test file has the hard-subset columns: score the ones each split has.
        self.subset_columns = self.subset_columns_of.get(split, ())
        return super()._subset_accuracies(split, scored)
