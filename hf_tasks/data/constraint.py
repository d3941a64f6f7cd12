"""Constraint@AAAI-2021 COVID-19 fake-news tweets, and any id/text/label table, local or from the hub.

Local files are CSV (TSV by extension or header) with a header `id, tweet, label` (labels real, fake);
fields may hold quoted newlines and very long text. Rows are numbered as data rows: row 1 is the first
row after the header (the number `python -m hf_tasks.text.tweets --train_file FILE --row N` takes).
Output: a `DatasetDict` with the id column (when there is one) and the text column under their own
names, and `label` (`ClassLabel` over `--class_names`, -1 where the test split has no label).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

from hf_tasks.data.bad_rows import BadRows, RowProblem, require_usable
from hf_tasks.data.labels import LabelSpellings, parse_label_map
from hf_tasks.data.sources import label_values, load_splits, require_columns
from hf_tasks.data.splits import limit_splits
from hf_tasks.data.tables import read_table

logger = logging.getLogger(__name__)

CONSTRAINT_LABELS = ["real", "fake"]


@dataclass
class ConstraintArguments:
    text_column: str = field(default="tweet", metadata={"help": "Column holding the text."})
    label_column: str = field(default="label", metadata={"help": "Column holding the class name."})
    id_column: str | None = field(
        default="id", metadata={"help": "Column copied into prediction files to identify rows (none: unset)."}
    )
    class_names: list[str] = field(
        default_factory=lambda: list(CONSTRAINT_LABELS),
        metadata={"help": "Class names in label-id order. With --binary_sigmoid the second is the positive class."},
    )
    label_map: str | None = field(
        default=None,
        metadata={"help": "Rename label values before checking them: JSON such as "
                          "'{\"FAKE\": \"fake\", \"0\": \"real\"}' (a mapping in YAML)."},
    )

    def __post_init__(self):
        self.label_map = parse_label_map(self.label_map)

    @property
    def kept_columns(self) -> tuple[str, ...]:
        """The id (when set) and text columns, in the order prediction files show them."""
        return tuple(column for column in (self.id_column, self.text_column) if column)


def load(data_args, constraint_args: ConstraintArguments, *, bad_rows: BadRows) -> DatasetDict:
    """The validated splits of `--dataset_name` or `--train_file`/`--validation_file`/`--test_file`,
    limited by `--max_*_samples`; bad rows go to `bad_rows` (the run's log)."""
    args = constraint_args
    spellings = LabelSpellings(args.class_names, label_map=args.label_map)

    def read_local(path: Path, split: str) -> Dataset:
        # The test split may come without labels: it is predicted, not scored.
        required = [*args.kept_columns, *([args.label_column] if split != "test" else [])]
        table = read_table(path, required, "--text_column / --label_column / --id_column "
                                           "(--id_column '' when the file has no ids)")
        labelled = args.label_column in table.columns
        if not labelled:
            logger.warning("%s has no %r column: predicting without scoring.", path, args.label_column)
        records = [{**{column: row.values[column] for column in args.kept_columns},
                    "label": row.values[args.label_column] if labelled else None, "row": row.row, "line": row.line}
                   for row in table]
        return _validated(records, str(path), split, args, spellings, bad_rows)

    splits = load_splits(data_args, read_local)
    if data_args.dataset_name:
        splits = {name: _hub_split(split, f"{data_args.dataset_name}[{name}]", name, args, spellings, bad_rows)
                  for name, split in splits.items()}
    return DatasetDict(limit_splits(splits, data_args))


def _hub_split(split: Dataset, source: str, name: str, args: ConstraintArguments, spellings: LabelSpellings,
               bad_rows: BadRows) -> Dataset:
    needed = [*args.kept_columns, *([args.label_column] if name != "test" else [])]
    require_columns(split.column_names, needed, source, "--text_column / --label_column / --id_column")
    labels = (label_values(split, args.label_column) if args.label_column in split.column_names
              else [None] * len(split))
    columns = {column: split[column] for column in args.kept_columns}
    records = [{**{column: values[index] for column, values in columns.items()}, "label": label, "row": index + 1}
               for index, label in enumerate(labels)]
    return _validated(records, source, name, args, spellings, bad_rows)


def _validated(records: list[dict[str, Any]], source: str, split: str, args: ConstraintArguments,
               spellings: LabelSpellings, bad_rows: BadRows) -> Dataset:
    """Records with class ids; empty texts, unknown labels, unlabelled rows outside the test split and ids
    seen on an earlier row (prediction files and `compare` pair examples by id) go to the run's bad-row
    policy, each listed by data row (and id)."""
    problems: list[RowProblem] = []
    unknown: list[str] = []
    kept = []
    first_row_of_id: dict[str, int] = {}
    for record in records:
        details = {"line": record["line"]} if "line" in record else {}
        reasons = []
        if args.id_column:
            details["id"] = record[args.id_column]
            first = first_row_of_id.setdefault(str(record[args.id_column]), record["row"])
            if first != record["row"]:
                reasons.append(f"{args.id_column} {record[args.id_column]!r} repeats row {first}'s")
        text = record[args.text_column]
        if text is None or not str(text).strip():
            reasons.append(f"empty {args.text_column!r} text")
        label = None if record["label"] is None else str(record["label"]).strip()
        label_id = -1
        if not label:
            if split != "test":
                reasons.append("no label")
        else:
            label_id = spellings.id_of(label)
            if label_id is None:
                unknown.append(label)
                reasons.append(f"unknown label {label!r}")
        if reasons:
            problems.append(RowProblem("row", record["row"], "; ".join(reasons), details))
        else:
            kept.append({**{column: str(record[column]) for column in args.kept_columns}, "label": label_id})
    bad_rows.settle(source, problems, _fix(problems, unknown, args, spellings))
    require_usable(source, len(kept), len(records))
    features = Features({**{column: Value("string") for column in args.kept_columns},
                         "label": ClassLabel(names=spellings.class_names)})
    return Dataset.from_list(kept, features=features)


def _fix(problems: list[RowProblem], unknown: list[str], args: ConstraintArguments, spellings: LabelSpellings) -> str:
    fixes = []
    if unknown:
        fixes.append(f"labels must be {'/'.join(spellings.class_names)} in column {args.label_column!r}: map other "
                     f"values with --label_map '{spellings.label_map_suggestion(unknown)}' (fill in any <...>) "
                     "or fix the file")
    if any("no label" in problem.reason for problem in problems):
        fixes.append(f"training and validation rows need a label in column {args.label_column!r}")
    if any("empty" in problem.reason for problem in problems):
        fixes.append("remove the rows with empty texts")
    return "; ".join(fixes)
