"""Single-text classification: tweets (Constraint@AAAI-2021 COVID fake news) or any text/label table.

Local files are CSV (or TSV by extension) with a header; fields may hold quoted newlines and very
long text. A hub dataset works too (`--dataset_name`). Texts go through `TweetNormalizer` before
tokenisation; rows are checked before anything trains (labels outside the label set, empty texts,
missing columns, files that are not UTF-8), and every message names the file, the row and the fix.

Rows are numbered as data rows: row 1 is the first row after the header (the number
`python -m hf_tasks.text.tweets --train_file FILE --row N` takes).
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from datasets import ClassLabel, Dataset
from transformers import DataCollatorWithPadding

from hf_tasks.errors import BadInputError
from hf_tasks.data.cache import preprocessing_cache, tokenizer_fingerprint
from hf_tasks.data.sources import load_splits
from hf_tasks.data.splits import SPLITS, limit_splits
from hf_tasks.tasks.classification import ClassificationTask
from hf_tasks.text.tweets import TweetNormalizer

logger = logging.getLogger(__name__)

# How many row numbers a message lists per problem before "and N more".
ROWS_SHOWN = 8
# Bump when `TextClassificationTask.tokenize` changes the features it builds (a test holds its source).
PREPROCESSING_VERSION = 1


@dataclass
class TextArguments:
    text_column: str = field(default="tweet", metadata={"help": "Column holding the text."})
    label_column: str = field(default="label", metadata={"help": "Column holding the class name."})
    id_column: str | None = field(
        default="id", metadata={"help": "Column copied into prediction files to identify rows (none: unset)."}
    )
    class_names: list[str] = field(
        default_factory=lambda: ["real", "fake"],
        metadata={"help": "Class names in label-id order. With --binary_sigmoid the second is the positive class."},
    )
    label_map: str | None = field(
        default=None,
        metadata={"help": "Rename label values before checking them: JSON such as "
                          "'{\"FAKE\": \"fake\", \"0\": \"real\"}' (a mapping in YAML)."},
    )
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

    def __post_init__(self):
        self.label_map = parse_label_map(self.label_map)

    def normalizer(self) -> TweetNormalizer:
        return TweetNormalizer.from_options(self)


def parse_label_map(value: str | dict | None) -> dict[str, str]:
    """`--label_map` as a dict of strings, from JSON text or a YAML mapping."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise BadInputError(
                f"--label_map {value!r} is not JSON ({error}); write it like '{{\"FAKE\": \"fake\", \"0\": \"real\"}}'."
            ) from None
    if not isinstance(value, dict):
        raise BadInputError(f"--label_map must map label values to class names, got {value!r}.")
    return {str(key): str(name) for key, name in value.items()}


def _rows_text(rows: list[int]) -> str:
    shown = ", ".join(str(row) for row in rows[:ROWS_SHOWN])
    more = f" and {len(rows) - ROWS_SHOWN} more" if len(rows) > ROWS_SHOWN else ""
    return f"row{'s' if len(rows) > 1 else ''} {shown}{more}"


def read_text_table(path: str | Path, required_columns: Sequence[str] = ()) -> list[dict[str, str]]:
    """Rows of a UTF-8 CSV (TSV for .tsv/.tab files) with a header, as dicts of strings.

    Quoted fields may contain newlines, commas and quotes. Raises `BadInputError` for a file that
    is not UTF-8, lacks a required column or has rows with the wrong number of fields.
    """
    path = Path(path)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise BadInputError(
            f"{path}: not UTF-8 text (byte 0x{raw[error.start]:02x} on line {line}, byte offset {error.start}). "
            f"Re-save it as UTF-8, e.g. `iconv -f cp1252 -t utf-8 {path.name} > {path.stem}.utf8{path.suffix}`."
        ) from None
    delimiter = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise BadInputError(f"{path}: empty file; expected a header row and data rows.") from None
    header = [name.strip() for name in header]
    missing = [column for column in required_columns if column not in header]
    if missing:
        raise BadInputError(
            f"{path}: no column {', '.join(repr(c) for c in missing)} (the header has {header}). Rename the "
            "column in the file, or name the right one with --text_column / --id_column (--id_column '' when "
            "the file has no ids)."
        )
    rows = []
    for fields in reader:
        if not fields:
            continue  # a blank line between records is not a row
        if len(fields) != len(header):
            raise BadInputError(
                f"{path}: row {len(rows) + 1} (ending on line {reader.line_num}) has {len(fields)} fields but the header "
                f"has {len(header)}. Quote fields that contain '{delimiter}' or line breaks (\"...\")."
            )
        rows.append(dict(zip(header, fields)))
    return rows


class TextClassificationTask(ClassificationTask):
    """One text in, one class out; loading, checking, normalising and tokenising on top of
    `ClassificationTask`'s scoring and prediction files (which show the id and the original text)."""

    def __init__(self, data_args, text_args: TextArguments, tokenizer):
        super().__init__(text_args.class_names, binary_sigmoid=text_args.binary_sigmoid)
        self.data_args, self.text_args, self.tokenizer = data_args, text_args, tokenizer
        self.normalize = text_args.normalizer()
        self.max_seq_length = min(data_args.max_seq_length or 128, tokenizer.model_max_length)
        self.label_ids = {name: index for index, name in enumerate(self.label_names)}
        self.display_columns = tuple(c for c in (text_args.id_column, text_args.text_column) if c)
        self.data_collator = TextCollator(tokenizer, binary_sigmoid=text_args.binary_sigmoid)
        self.skipped_rows: list[dict[str, Any]] = []

    def read_local(self, path: Path) -> Dataset:
        """One local CSV/TSV file, checked; the split is told apart later by `load_splits`."""
        args = self.text_args
        required = [c for c in (args.text_column, args.id_column) if c]
        rows = read_text_table(path, required)
        if rows and args.label_column not in rows[0]:
            columns = list(rows[0])
            if path != Path(self.data_args.test_file or ""):
                raise BadInputError(
                    f"{path}: no column {args.label_column!r} (the header has {columns}). Rename the column in the "
                    "file, or name the right one with --label_column."
                )
            logger.warning("%s has no %r column: predicting without scoring.", path, args.label_column)
        return self.checked(rows, str(path))

    def checked(self, rows: list[dict[str, Any]], source: str) -> Dataset:
        """Rows with class names mapped to ids (-1: unlabelled) and non-empty texts; bad rows raise,
        or with --skip_bad_rows are recorded in `skipped_rows` (written to skipped_rows.json)."""
        args = self.text_args
        bad_labels: dict[str, list[int]] = defaultdict(list)
        empty: list[int] = []
        kept = []
        for number, row in enumerate(rows, start=1):
            text = row.get(args.text_column)
            text = "" if text is None else str(text)
            label = row.get(args.label_column)
            label_id = -1
            if label is not None:
                value = str(label).strip()
                name = args.label_map.get(value, value)
                label_id = self.label_ids.get(name, -2)
            problems = []
            if not text.strip():
                empty.append(number)
                problems.append(f"empty {args.text_column!r}")
            if label_id == -2:
                bad_labels[str(label)].append(number)
                problems.append(f"label {label!r} is not one of {self.label_names}")
            if problems and self.data_args.skip_bad_rows:
                self.skipped_rows.append({
                    "file": source, "row": number, "id": row.get(args.id_column) if args.id_column else None,
                    "reason": "; ".join(problems),
                })
                continue
            record = {column: str(row[column]) for column in self.display_columns}
            record["label"] = label_id
            kept.append(record)
        if not self.data_args.skip_bad_rows:
            problems = []
            if bad_labels:
                values = "; ".join(f"{value!r} ({_rows_text(numbers)})" for value, numbers in bad_labels.items())
                example = json.dumps({value: self.label_names[0] for value in list(bad_labels)[:2]})
                problems.append(
                    f"labels other than {'/'.join(self.label_names)} in column {args.label_column!r}: {values}. "
                    f"Map them with --label_map (e.g. '{example}') or fix the file"
                )
            if empty:
                problems.append(f"empty {args.text_column!r} text in {_rows_text(empty)}. Remove those rows")
            if problems:
                raise BadInputError(
                    f"{source}: " + ". ".join(problems) + ". Or pass --skip_bad_rows to skip such rows "
                    "(listed in skipped_rows.json)."
                )
        if not kept:
            raise BadInputError(f"{source}: no usable rows (all {len(rows)} skipped or the file has no data rows).")
        return Dataset.from_list(kept)

    def _checked_hub_split(self, split: Dataset, source: str) -> Dataset:
        args = self.text_args
        missing = [c for c in (args.text_column, args.label_column, args.id_column) if c and c not in split.column_names]
        if args.label_column in missing and source.endswith("[test]"):
            missing.remove(args.label_column)
        if missing:
            raise BadInputError(
                f"{source}: no column {missing} (columns: {split.column_names}); name the right ones with "
                "--text_column / --label_column / --id_column."
            )
        rows = split.to_list()
        feature = split.features.get(args.label_column)
        if isinstance(feature, ClassLabel):
            for row in rows:
                value = row[args.label_column]
                row[args.label_column] = feature.int2str(value) if value is not None and value >= 0 else None
        return self.checked(rows, source)

    def build_features(self, training_args) -> dict[str, Dataset]:
        splits = limit_splits(load_splits(self.data_args, lambda path, split: self.read_local(path)), self.data_args)
        if self.data_args.dataset_name:
            splits = {name: self._checked_hub_split(split, f"{self.data_args.dataset_name}[{name}]")
                      for name, split in splits.items()}
        self._show_examples(splits)
        built = {}
        with training_args.main_process_first(desc="tokenising texts"):
            for name in SPLITS:
                if name not in splits:
                    continue
                rows = splits[name]
                encoded = rows.map(
                    self.tokenize,
                    batched=True,
                    remove_columns=rows.column_names,
                    num_proc=self.data_args.preprocessing_num_workers,
                    desc=f"Tokenising {name}",
                    **(self.features_cache(rows) or {}),
                )
                unlabelled = sum(label == -1 for label in rows["label"])
                if unlabelled and name != "test":
                    raise BadInputError(
                        f"The {name} split has {unlabelled} rows without a label; training and validation need "
                        f"labels in column {self.text_args.label_column!r}."
                    )
                if unlabelled == len(rows):
                    encoded = encoded.remove_columns("labels")
                truncated = sum(len(ids) >= self.max_seq_length for ids in encoded["input_ids"])
                if truncated:
                    logger.info("%s: %d of %d texts reach max_seq_length=%d and are truncated.",
                                name, truncated, len(encoded), self.max_seq_length)
                if name != "train":
                    self.raw[name] = rows
                built[name] = encoded
        return built

    def features_cache(self, rows: Dataset) -> dict[str, str] | None:
        """An on-disk cache of a split's features, keyed by its rows, the normaliser, tokenizer and settings."""
        return preprocessing_cache(
            self.data_args, rows, "text", PREPROCESSING_VERSION, self.normalize.cache_key(),
            self.text_args.text_column, tokenizer_fingerprint(self.tokenizer), self.max_seq_length,
        )

    def tokenize(self, batch: dict[str, list]) -> dict[str, list]:
        encoded = self.tokenizer(
            [self.normalize(text) for text in batch[self.text_args.text_column]],
            truncation=True,
            max_length=self.max_seq_length,
        )
        encoded["labels"] = batch["label"]
        return encoded

    def _show_examples(self, splits: dict[str, Dataset]) -> None:
        shown = splits.get("train") or next(iter(splits.values()))
        for index in range(min(self.text_args.show_examples, len(shown))):
            text = shown[index][self.text_args.text_column]
            logger.info("example %d: %r\n  → %r", index + 1, text, self.normalize(text))


class TextCollator:
    """Dynamic padding; for a single sigmoid output the labels become float columns (batch, 1), the
    shape `BCEWithLogitsLoss` in `*ForSequenceClassification` heads expects."""

    def __init__(self, tokenizer, binary_sigmoid: bool = False):
        self.pad = DataCollatorWithPadding(tokenizer)
        self.binary_sigmoid = binary_sigmoid

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = self.pad(features)
        if self.binary_sigmoid and "labels" in batch:
            batch["labels"] = batch["labels"].float().unsqueeze(-1)
        return batch
