"""Semantic segmentation metrics computed locally: mean IoU, pixel accuracy, mean class accuracy.

Conventions follow the common mIoU definition (as in mmseg and `evaluate`'s mean_iou): pixels whose
ground truth is `ignore_index` are left out entirely, a class's IoU is undefined (and left out of
the mean) when it appears in neither the prediction nor the ground truth, and its accuracy is
undefined when it has no ground-truth pixels.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def confusion_counts(predicted: np.ndarray, target: np.ndarray, num_classes: int,
                     ignore_index: int = 255) -> np.ndarray:
    """(num_classes, num_classes) pixel counts: rows are ground-truth classes, columns predicted ones."""
    predicted, target = np.asarray(predicted), np.asarray(target)
    if predicted.shape != target.shape:
        raise ValueError(f"Prediction shape {predicted.shape} differs from ground-truth shape {target.shape}.")
    labelled = target != ignore_index
    target, predicted = target[labelled].astype(np.int64), predicted[labelled].astype(np.int64)
    for name, values in (("ground-truth", target), ("predicted", predicted)):
        outside = values[(values < 0) | (values >= num_classes)]
        if outside.size:
            raise ValueError(
                f"{name} mask has class ids {sorted(set(outside.tolist()))[:10]} outside 0-{num_classes - 1} "
                f"(and not the ignore index {ignore_index}); check the label mapping (e.g. reduce_labels)."
            )
    return np.bincount(target * num_classes + predicted, minlength=num_classes**2).reshape(num_classes, num_classes)


def metrics_from_confusion(confusion: np.ndarray, class_names: Sequence[str] | None = None) -> dict[str, float]:
    """`mean_iou`, `pixel_accuracy`, `mean_accuracy` and `iou_<class>` for every class that occurs."""
    confusion = np.asarray(confusion, dtype=np.float64)
    intersection = np.diag(confusion)
    ground_truth = confusion.sum(axis=1)
    union = ground_truth + confusion.sum(axis=0) - intersection
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, intersection / union, np.nan)
        accuracy = np.where(ground_truth > 0, intersection / ground_truth, np.nan)
    total = confusion.sum()
    metrics = {
        "mean_iou": float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan"),
        "pixel_accuracy": float(intersection.sum() / total) if total else float("nan"),
        "mean_accuracy": float(np.nanmean(accuracy)) if np.isfinite(accuracy).any() else float("nan"),
    }
    names = list(class_names) if class_names is not None else [str(index) for index in range(len(iou))]
    metrics.update({f"iou_{names[index]}": float(value) for index, value in enumerate(iou) if np.isfinite(value)})
    return metrics


class SegmentationScore:
    """Accumulates pixel counts image by image (images may differ in size) and scores them at the end."""

    def __init__(self, num_classes: int, ignore_index: int = 255, class_names: Sequence[str] | None = None):
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.class_names = class_names
        self.confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
        self.images = 0

    def update(self, predicted: np.ndarray, target: np.ndarray) -> None:
        self.confusion += confusion_counts(predicted, target, self.num_classes, self.ignore_index)
        self.images += 1

    def compute(self) -> dict[str, float]:
        return metrics_from_confusion(self.confusion, self.class_names)


def mean_iou(
    predictions: Sequence[np.ndarray], targets: Sequence[np.ndarray], num_classes: int, ignore_index: int = 255,
    class_names: Sequence[str] | None = None,
) -> dict[str, float]:
    """Metrics over whole datasets of (predicted, ground-truth) mask pairs; see `metrics_from_confusion`."""
    score = SegmentationScore(num_classes, ignore_index, class_names)
    for predicted, target in zip(predictions, targets, strict=True):
        score.update(predicted, target)
    return score.compute()
