"""The shared base of single-label classification tasks (NLI pairs, tweets, images, audio).

Subclasses load data and build features; this class turns logits into probabilities, scores them
(`hf_tasks.metrics.classification`) and writes prediction files, a confusion matrix and a report.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from datasets import Dataset

from hf_tasks.metrics.classification import (
    classification_metrics,
    classification_report,
    confusion_matrix,
    metric_key,
    plot_confusion_matrix,
)
from hf_tasks.errors import BadInputError
from hf_tasks.files import write_atomic, write_with
from hf_tasks.modeling.labels import label_maps
from hf_tasks.tasks.base import Task, logits_of

logger = logging.getLogger(__name__)

#: Label ids that mean "this row has no label": -100 is the Trainer's ignore index, -1 the
#: `datasets` ClassLabel value for a missing label (e.g. an unlabelled test split).
NO_LABEL_IDS = (-1, -100)
SUBSET_MARKS = {"1": 1, "1.0": 1, "true": 1, "0": 0, "0.0": 0, "false": 0}


@dataclass
class ScoredSplit:
    """What one `score` call saw: per-class probabilities, predicted ids and gold ids (-1: none)."""

    probabilities: np.ndarray
    predicted: np.ndarray
    labels: np.ndarray | None
    metrics: dict[str, float]

    @property
    def labelled(self) -> np.ndarray:
        if self.labels is None:
            return np.zeros(len(self.predicted), dtype=bool)
        return self.labels >= 0


class ClassificationTask(Task):
    """Single-label classification: softmax over logits, or one sigmoid logit for two classes.

    Subclasses fill `self.raw[split]` with the raw rows of each scored split ("validation", "test"),
    aligned 1:1 with the feature rows, so that prediction files can show the inputs.
    """

    #: Raw columns copied into the prediction files, e.g. ("id", "tweet").
    display_columns: tuple[str, ...] = ()
    #: The raw column that names each example (a tweet id, an image path, a clip file): prediction files carry it
    #: as `example_id`, so runs of different configs on one test set pair up example by example
    #: (`hf_tasks.study.stats`). Without one (None, or the raw rows lack it), the id is the row's 1-based
    #: position in the split, which pairs runs of one file read with the same --max_*_samples.
    example_id_column: str | None = None
    #: 0/1 raw columns that mark a subset; `accuracy_<column>` is reported on the rows marked 1.
    subset_columns: tuple[str, ...] = ()

    def __init__(self, label_names: Sequence[str], *, binary_sigmoid: bool = False):
        self.label_names = [str(name) for name in label_names]
        if len(self.label_names) < 2:
            raise ValueError(f"Classification needs at least two classes, got {self.label_names}.")
        label_maps(self.label_names)  # validates uniqueness
        if binary_sigmoid and len(self.label_names) != 2:
            raise ValueError(f"binary_sigmoid needs exactly two classes, got {self.label_names}.")
        self.binary_sigmoid = binary_sigmoid
        self.raw: dict[str, Dataset] = {}
        self.scored: dict[str, ScoredSplit] = {}

    @property
    def num_labels(self) -> int:
        """Outputs the model needs: 1 with a sigmoid, else one logit per class."""
        return 1 if self.binary_sigmoid else len(self.label_names)

    def probabilities(self, logits: Any) -> np.ndarray:
        """Class probabilities of shape (rows, classes) from the model's logits."""
        logits = np.asarray(logits, dtype=np.float64)
        if self.binary_sigmoid:
            if logits.ndim == 2 and logits.shape[1] == 1:
                logits = logits[:, 0]
            if logits.ndim != 1:
                raise ValueError(f"binary_sigmoid expects one logit per row, got logits of shape {logits.shape}.")
            # tanh form of the sigmoid: no overflow for large negative logits.
            positive = 0.5 * (1.0 + np.tanh(0.5 * logits))
            return np.stack([1.0 - positive, positive], axis=1)
        if logits.ndim != 2 or logits.shape[1] != len(self.label_names):
            raise ValueError(
                f"Expected logits of shape (rows, {len(self.label_names)}) for classes {self.label_names}, "
                f"got {logits.shape}."
            )
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)

    def _gold_ids(self, label_ids: Any, rows: int) -> np.ndarray:
        labels = np.asarray(label_ids).reshape(-1)
        if labels.size != rows:
            raise ValueError(f"{labels.size} label ids for {rows} predictions; they must line up.")
        if not np.issubdtype(labels.dtype, np.integer):
            if not np.all(np.equal(np.mod(labels, 1), 0)):
                raise ValueError(f"Label ids must be whole numbers, got values such as {labels[:3].tolist()}.")
        labels = labels.astype(np.int64)
        labels[np.isin(labels, NO_LABEL_IDS)] = -1
        bad = np.flatnonzero((labels < -1) | (labels >= len(self.label_names)))
        if bad.size:
            raise BadInputError(
                f"Row {int(bad[0])} has label id {int(labels[bad[0]])}, outside 0..{len(self.label_names) - 1} "
                f"for classes {self.label_names}; fix the label column."
            )
        return labels

    def _raw_rows(self, split: str, rows: int) -> Dataset | None:
        raw = self.raw.get(split)
        if raw is not None and len(raw) != rows:
            raise ValueError(
                f"The raw '{split}' rows ({len(raw)}) do not line up with its {rows} predictions; "
                "keep self.raw[split] aligned 1:1 with the feature rows."
            )
        return raw

    def _subset_accuracies(self, split: str, scored: ScoredSplit) -> dict[str, float]:
        if not self.subset_columns:
            return {}
        raw = self._raw_rows(split, len(scored.predicted))
        accuracies = {}
        for column in self.subset_columns:
            if raw is None or column not in raw.column_names:
                raise BadInputError(
                    f"Subset column '{column}' is missing from the raw '{split}' rows "
                    f"(columns: {None if raw is None else raw.column_names}); add it to the data file."
                )
            # Files read through pandas turn 0/1 into floats or booleans; all spell the same mark.
            marks = np.asarray([SUBSET_MARKS.get(str(value).strip().lower(), -1) for value in raw[column]])
            unknown = np.flatnonzero(marks < 0)
            if unknown.size:
                raise BadInputError(
                    f"Subset column '{column}' of the '{split}' rows must hold 0/1; row {int(unknown[0])} "
                    f"holds {raw[int(unknown[0])][column]!r}."
                )
            in_subset = (marks == 1) & scored.labelled
            if in_subset.any():
                correct = scored.predicted[in_subset] == scored.labels[in_subset]
                accuracies[f"accuracy_{metric_key(column)}"] = float(correct.mean())
            else:
                logger.info("No labelled '%s' rows are marked in subset column '%s'.", split, column)
        return accuracies

    def score(self, split: str, predictions: Any, label_ids: Any) -> dict[str, float]:
        """Metrics of `classification_metrics` plus subset accuracies; {} when the split has no labels."""
        probabilities = self.probabilities(logits_of(predictions))
        predicted = probabilities.argmax(axis=1)
        labels = None if label_ids is None else self._gold_ids(label_ids, len(predicted))
        scored = ScoredSplit(probabilities, predicted, labels, {})
        self.scored[split] = scored
        if not scored.labelled.any():
            return {}
        labelled = scored.labelled
        scored.metrics = classification_metrics(labels[labelled], predicted[labelled], self.label_names)
        # Cross-entropy of each labelled row counted once; see `Task.score` for why the task computes it.
        gold_probabilities = probabilities[labelled, labels[labelled]]
        scored.metrics["loss"] = float(-np.log(np.clip(gold_probabilities, 1e-12, None)).mean())
        scored.metrics.update(self._subset_accuracies(split, scored))
        return dict(scored.metrics)

    def _prediction_table(self, split: str, scored: ScoredSplit) -> tuple[list[str], list[list[Any]]]:
        raw = self._raw_rows(split, len(scored.predicted))
        columns = raw.column_names if raw is not None else []
        missing = [column for column in self.display_columns if column not in columns]
        if missing:
            raise BadInputError(
                f"Display columns {missing} are missing from the raw '{split}' rows (columns: {columns}); "
                f"set self.raw['{split}'] to rows that have them."
            )
        own = ["example_id", "gold_label", "predicted_label", "predicted_probability"]
        own += [f"probability_{name}" for name in self.label_names]
        clashes = set(self.display_columns) & set(own)
        if clashes:
            raise ValueError(f"Display columns {sorted(clashes)} clash with prediction columns; rename them.")
        shown = [raw[column] for column in self.display_columns]
        if self.example_id_column is not None and self.example_id_column in columns:
            example_ids = [str(value) for value in raw[self.example_id_column]]
        else:
            example_ids = [str(position) for position in range(1, len(scored.predicted) + 1)]
        rows = []
        for index, predicted in enumerate(scored.predicted):
            gold = scored.labels[index] if scored.labels is not None else -1
            probabilities = scored.probabilities[index]
            rows.append(
                [values[index] for values in shown]
                + [example_ids[index], self.label_names[gold] if gold >= 0 else "", self.label_names[predicted]]
                + [f"{probabilities[predicted]:.6f}"]
                + [f"{probability:.6f}" for probability in probabilities]
            )
        return list(self.display_columns) + own, rows

    def write_predictions(self, split: str, output_dir: Path, file_prefix: str) -> list[Path]:
        """`{file_prefix}_predictions.csv`, and where there are labels `{file_prefix}_misclassified.csv`,
        `{file_prefix}_confusion_matrix.png` and `{file_prefix}_classification_report.txt`."""
        scored = self.scored.get(split)
        if scored is None:
            logger.warning("No '%s' predictions were scored; nothing to write.", split)
            return []
        output_dir = Path(output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        header, rows = self._prediction_table(split, scored)
        paths = [_write_csv(output_dir / f"{file_prefix}_predictions.csv", header, rows)]
        labelled = scored.labelled
        if not labelled.any():
            return paths
        wrong = labelled & (scored.predicted != scored.labels)
        misclassified = [row for row, is_wrong in zip(rows, wrong) if is_wrong]
        paths.append(_write_csv(output_dir / f"{file_prefix}_misclassified.csv", header, misclassified))
        gold, predicted = scored.labels[labelled], scored.predicted[labelled]
        matrix = confusion_matrix(gold, predicted, len(self.label_names))
        paths.append(
            plot_confusion_matrix(
                matrix, self.label_names, output_dir / f"{file_prefix}_confusion_matrix.png",
                title=f"{split}: {int(labelled.sum())} examples, accuracy {scored.metrics['accuracy']:.2%}",
            )
        )
        report = classification_report(gold, predicted, self.label_names)
        subsets = {key: value for key, value in scored.metrics.items() if key.startswith("accuracy_")}
        if subsets:
            report += "\n" + "".join(f"{key}: {value:.4f}\n" for key, value in subsets.items())
        report_path = output_dir / f"{file_prefix}_classification_report.txt"
        write_atomic(report_path, f"{split} split, {int(labelled.sum())} labelled examples\n\n{report}")
        paths.append(report_path)
        return paths


def _write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    # The csv module quotes commas, quotes and newlines inside fields, so free text round-trips.
    def write(handle) -> None:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)

    return write_with(path, write)
