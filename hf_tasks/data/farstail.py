"""FarsTail (Persian NLI) and any premise/hypothesis/label data, local tables or a hub dataset.

FarsTail ships tab-separated files (named .csv) with a header `premise, hypothesis, label`, labels
spelled e, c, n; the test file adds 0/1 columns `hard(hypothesis)` and `hard(overlap)` that mark its
hard subsets. Output: a `DatasetDict` with `premise`, `hypothesis`, `label` (`ClassLabel`, -1 for an
unlabelled test row), the hard-subset columns on the splits that have them (as text "0"/"1"), and
for display `row` (data row number) and, for local files, `line` (the file line the record starts on).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

from hf_tasks.data.bad_rows import BadRows, RowProblem, require_usable
from hf_tasks.data.labels import LabelSpellings
from hf_tasks.data.sources import label_values, load_splits, require_columns
from hf_tasks.data.splits import limit_splits
from hf_tasks.data.tables import read_table

FARSTAIL_LABELS = ["entailment", "contradiction", "neutral"]
HARD_COLUMNS = ("hard(hypothesis)", "hard(overlap)")
COLUMN_FLAGS = "--premise_column, --hypothesis_column, --label_column"


@dataclass
class FarsTailArguments:
    premise_column: str = field(default="premise", metadata={"help": "Column of the first sentence."})
    hypothesis_column: str = field(default="hypothesis", metadata={"help": "Column of the second sentence."})
    label_column: str = field(default="label", metadata={"help": "Column of the class label."})
    class_names: list[str] = field(
        default_factory=lambda: list(FARSTAIL_LABELS),
        metadata={"help": "Classes in id order. Data may spell a class by its name or, when the names' first "
                          "letters differ, by that letter (FarsTail's e, c, n)."},
    )


def load(data_args, farstail_args: FarsTailArguments, *, bad_rows: BadRows) -> DatasetDict:
    """The validated splits of `--dataset_name` or `--train_file`/`--validation_file`/`--test_file`,
    limited by `--max_*_samples`; bad rows go to `bad_rows` (the run's log)."""
    spellings = LabelSpellings(farstail_args.class_names, ignore_case=True, initials=True)
    columns = (farstail_args.premise_column, farstail_args.hypothesis_column, farstail_args.label_column)

    def read_local(path: Path, split: str) -> Dataset:
        table = read_table(path, columns, COLUMN_FLAGS)
        records = [_record(row.values, columns, row=row.row, line=row.line) for row in table]
        return _validated(records, str(path), "line", split, spellings, bad_rows)

    splits = load_splits(data_args, read_local)
    if data_args.dataset_name:
        splits = {name: _hub_split(split, f"{data_args.dataset_name}[{name}]", name, columns, spellings, bad_rows)
                  for name, split in splits.items()}
    return DatasetDict(limit_splits(splits, data_args))


def _record(values: dict[str, Any], columns: tuple[str, str, str], **position: int) -> dict[str, Any]:
    premise, hypothesis, label = columns
    record = {"premise": values[premise], "hypothesis": values[hypothesis], "label": values[label], **position}
    record.update({name: str(values[name]) for name in HARD_COLUMNS if name in values})
    return record


def _hub_split(split: Dataset, source: str, name: str, columns: tuple[str, str, str], spellings: LabelSpellings,
               bad_rows: BadRows) -> Dataset:
    require_columns(split.column_names, columns, source, COLUMN_FLAGS)
    labels = label_values(split, columns[2])
    records = [_record({**values, columns[2]: label}, columns, row=index)
               for index, (values, label) in enumerate(zip(split, labels), start=1)]
    return _validated(records, source, "row", name, spellings, bad_rows)


def _validated(records: list[dict[str, Any]], source: str, unit: str, split: str, spellings: LabelSpellings,
               bad_rows: BadRows) -> Dataset:
    """Records with class ids; empty texts, unknown labels and unlabelled rows outside the test split go
    to the run's bad-row policy. Only the test split may leave labels empty (predicted, not scored)."""
    problems: list[RowProblem] = []
    kept = []
    for record in records:
        position = record[unit]
        reasons = [f"empty {key}" for key in ("premise", "hypothesis")
                   if record[key] is None or not str(record[key]).strip()]
        label = "" if record["label"] is None else str(record["label"]).strip()
        label_id = -1 if label == "" and split == "test" else spellings.id_of(label)
        if label == "" and split != "test":
            reasons.append("no label")
        elif label_id is None:
            reasons.append(f"unknown label {label!r}")
        if reasons:
            problems.append(RowProblem(unit, position, reasons[0]))  # one entry per row, its first problem
            continue
        kept.append({**record, "premise": str(record["premise"]), "hypothesis": str(record["hypothesis"]),
                     "label": label_id})
    bad_rows.settle(source, problems, _fix(problems, spellings))
    require_usable(source, len(kept), len(records))
    return Dataset.from_list(kept, features=_features(kept[0], spellings.class_names))


def _fix(problems: list[RowProblem], spellings: LabelSpellings) -> str:
    fixes = []
    if any(problem.reason.startswith("unknown label") for problem in problems):
        fixes.append(f"labels must be one of {spellings.spellings()} (set the classes with --class_names)")
    if any(problem.reason == "no label" for problem in problems):
        fixes.append("give every training and validation row a label (only the test split may leave labels empty)")
    if any(problem.reason.startswith("empty") for problem in problems):
        fixes.append("fill in or remove the rows with empty texts")
    return "; ".join(fixes)


def _features(record: dict[str, Any], class_names: list[str]) -> Features:
    types = {"premise": Value("string"), "hypothesis": Value("string"), "label": ClassLabel(names=class_names),
             "row": Value("int64"), "line": Value("int64")}
    types.update({name: Value("string") for name in HARD_COLUMNS})
    return Features({name: types[name] for name in record})
