"""The classes a classifier scores, from the ordered class names a dataset adapter gives: the label entries
of its config and the weights of its loss."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from hf_tasks.data.sources import class_names_of
from hf_tasks.errors import BadInputError


def label_maps(label_names: Sequence[str]) -> dict[str, Any]:
    """`id2label`, `label2id` and `num_labels` for a model config, from the ordered class names."""
    names = [str(name) for name in label_names]
    if len(set(names)) != len(names):
        raise ValueError(f"Label names must be unique, got {names}.")
    return {
        "id2label": dict(enumerate(names)),
        "label2id": {name: index for index, name in enumerate(names)},
        "num_labels": len(names),
    }


def class_weights(data: Mapping[str, Any], *, oversampled: bool = False) -> list[float]:
    """Inverse-frequency weights n / (classes · n_c) of the training split's labels (1 for absent classes).

    `data` holds splits with a `ClassLabel` column `label` (a dataset adapter's `DatasetDict`); examples
    without a label (-1) are not counted. With `oversampled`, training repeats every present class up
    to the largest one, so the model sees balanced classes and every weight is 1.
    """
    if "train" not in data:
        raise BadInputError("Class weights need a training split; give training data or drop --class_weighted_loss.")
    train = data["train"]
    labels = np.asarray(train["label"])
    counts = np.bincount(labels[labels >= 0], minlength=train.features["label"].num_classes)
    if oversampled:
        counts = np.where(counts > 0, counts.max(), 0)
    present = counts > 0
    weights = np.ones(len(counts))
    weights[present] = counts[present].sum() / (present.sum() * counts[present])
    return weights.round(6).tolist()


@dataclass(frozen=True)
class ClassLabels:
    """What every model builder is given about the classes: their ordered names, whether two classes are
    scored by one sigmoid output (for the second class), and the loss's per-class weights (None: unweighted)."""

    names: tuple[str, ...]
    binary_sigmoid: bool = False
    weights: tuple[float, ...] | None = None

    def __post_init__(self):
        if self.binary_sigmoid and len(self.names) != 2:
            raise BadInputError(f"--binary_sigmoid scores two classes, and the data has {len(self.names)} "
                                f"({', '.join(self.names)}); leave it out.")

    @classmethod
    def of(cls, data: Mapping[str, Any], *, binary_sigmoid: bool = False, class_weighted: bool = False,
           oversampled: bool = False) -> ClassLabels:
        """The classes of a dataset adapter's splits (their `label` column), weighted by inverse training
        frequency when `class_weighted` (`class_weights`)."""
        weights = tuple(class_weights(data, oversampled=oversampled)) if class_weighted else None
        return cls(tuple(str(name) for name in class_names_of(data, "label")), binary_sigmoid, weights)

    def config(self) -> dict[str, Any]:
        """The model config's label entries: one sigmoid output for the second class, or one logit per class."""
        if self.binary_sigmoid:
            # One output: the probability of the second class (e.g. "fake"), which pipelines show by name.
            positive = self.names[1]
            return {"id2label": {0: positive}, "label2id": {positive: 0}, "num_labels": 1,
                    "problem_type": "multi_label_classification"}
        return {**label_maps(self.names), "problem_type": "single_label_classification"}
