"""Single-label classification metrics in numpy: confusion matrix, per-class P/R/F1, UAR, report, plot.

The numbers follow scikit-learn's conventions with `zero_division=0` (an undefined ratio counts as 0),
so results compare with published ones; scikit-learn itself is not a dependency.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np

from hf_tasks.files import atomic_path


def metric_key(name: str) -> str:
    """A label or column name as it appears inside a metric key: `hard(hypothesis)` → `hard_hypothesis`."""
    key = re.sub(r"\W+", "_", str(name)).strip("_")
    if not key:
        raise ValueError(f"{name!r} gives an empty metric key; use a name with a letter or digit.")
    return key


def _as_ids(values, name: str, num_classes: int) -> np.ndarray:
    ids = np.asarray(values).reshape(-1)
    if ids.size and not np.issubdtype(ids.dtype, np.integer):
        if not np.all(np.equal(np.mod(ids, 1), 0)):
            raise ValueError(f"{name} must be integer class ids, got values such as {ids[:3].tolist()}.")
        ids = ids.astype(np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= num_classes):
        bad = ids[(ids < 0) | (ids >= num_classes)][0]
        raise ValueError(f"{name} holds class id {bad}, outside 0..{num_classes - 1}.")
    return ids.astype(np.int64)


def confusion_matrix(labels, predictions, num_classes: int) -> np.ndarray:
    """Counts of (gold, predicted) pairs: rows are gold classes, columns predicted classes."""
    gold = _as_ids(labels, "labels", num_classes)
    predicted = _as_ids(predictions, "predictions", num_classes)
    if gold.shape != predicted.shape:
        raise ValueError(f"{gold.size} labels but {predicted.size} predictions; they must pair up.")
    pairs = np.bincount(gold * num_classes + predicted, minlength=num_classes * num_classes)
    return pairs.reshape(num_classes, num_classes)


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Element-wise ratio with 0 where the denominator is 0 (scikit-learn's zero_division=0)."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)


def _per_class(matrix: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class counts and ratios of one confusion matrix (k, k) or of a stack of them (..., k, k)."""
    true_positives = np.diagonal(matrix, axis1=-2, axis2=-1)
    support = matrix.sum(axis=-1)
    predicted = matrix.sum(axis=-2)
    precision = _divide(true_positives, predicted)
    recall = _divide(true_positives, support)
    f1 = _divide(2 * true_positives, support + predicted)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support, "predicted": predicted}


def _mean_where(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The mean of `values` over the last axis where `mask` holds; 0 where it holds nowhere."""
    return _divide(np.where(mask, values, 0.0).sum(axis=-1), mask.sum(axis=-1))


def summary_metrics(matrices) -> dict[str, np.ndarray]:
    """Accuracy, macro F1, weighted F1 and UAR of a confusion matrix (k, k), or of each matrix in a stack
    (..., k, k) at once (a study's bootstrap scores a thousand resamples this way)."""
    matrices = np.asarray(matrices, dtype=np.float64)
    stats = _per_class(matrices)
    support, predicted = stats["support"], stats["predicted"]
    total = support.sum(axis=-1)
    # A class that is neither gold nor predicted (common in a small eval subset) has no defined F1;
    # averaging it in as 0 would punish the model for the sample, so macro F1 averages over the
    # classes that occur, like scikit-learn's default, and UAR over the gold classes, like
    # scikit-learn's balanced_accuracy_score.
    return {
        "accuracy": _divide(np.trace(matrices, axis1=-2, axis2=-1), total),
        "macro_f1": _mean_where(stats["f1"], (support + predicted) > 0),
        "weighted_f1": _divide((stats["f1"] * support).sum(axis=-1), total),
        "uar": _mean_where(stats["recall"], support > 0),
    }


def _summary(matrix: np.ndarray) -> dict[str, float]:
    return {name: float(value) for name, value in summary_metrics(matrix).items()}


def _check_names(label_names: Sequence[str]) -> list[str]:
    keys = [metric_key(name) for name in label_names]
    if len(set(keys)) != len(keys):
        raise ValueError(f"Label names {list(label_names)} collide as metric keys {keys}; rename them.")
    return keys


def classification_metrics(labels, predictions, label_names: Sequence[str]) -> dict[str, float]:
    """Accuracy, macro/weighted F1, UAR and per-class precision/recall/F1/support, as flat keys.

    UAR (unweighted average recall) is the mean recall over the gold classes, the usual headline
    for imbalanced speech-emotion data. Per-class keys use `metric_key(name)`.
    """
    keys = _check_names(label_names)
    matrix = confusion_matrix(labels, predictions, len(label_names))
    if matrix.sum() == 0:
        raise ValueError("No labelled examples to score.")
    metrics = _summary(matrix)
    stats = _per_class(matrix)
    for index, key in enumerate(keys):
        metrics[f"precision_{key}"] = float(stats["precision"][index])
        metrics[f"recall_{key}"] = float(stats["recall"][index])
        metrics[f"f1_{key}"] = float(stats["f1"][index])
        metrics[f"support_{key}"] = int(stats["support"][index])
    return metrics


def classification_report(labels, predictions, label_names: Sequence[str], digits: int = 4) -> str:
    """A plain-text table of per-class precision/recall/F1/support and the averages."""
    names = [str(name) for name in label_names]
    matrix = confusion_matrix(labels, predictions, len(names))
    stats = _per_class(matrix)
    summary = _summary(matrix)
    total = int(stats["support"].sum())
    width = max(len(name) for name in names + ["weighted avg"])
    column = max(digits + 2, 9)
    titles = ("precision", "recall", "f1-score", "support")
    header = f"{'':>{width}} " + "".join(f"{title:>{column}}" for title in titles)
    lines = [header, ""]
    for index, name in enumerate(names):
        values = (stats["precision"][index], stats["recall"][index], stats["f1"][index])
        cells = "".join(f"{value:>{column}.{digits}f}" for value in values)
        lines.append(f"{name:>{width}} {cells}{int(stats['support'][index]):>{column}}")
    lines.append("")
    blank = " " * column
    lines.append(f"{'accuracy':>{width}} {blank}{blank}{summary['accuracy']:>{column}.{digits}f}{total:>{column}}")
    macro_precision = stats["precision"][(stats["support"] + stats["predicted"]) > 0].mean() if total else 0.0
    lines.append(
        f"{'macro avg':>{width}} {macro_precision:>{column}.{digits}f}{summary['uar']:>{column}.{digits}f}"
        f"{summary['macro_f1']:>{column}.{digits}f}{total:>{column}}"
    )
    weighted_precision = (stats["precision"] * stats["support"]).sum() / total if total else 0.0
    weighted_recall = summary["accuracy"]  # support-weighted recall is accuracy
    lines.append(
        f"{'weighted avg':>{width}} {weighted_precision:>{column}.{digits}f}{weighted_recall:>{column}.{digits}f}"
        f"{summary['weighted_f1']:>{column}.{digits}f}{total:>{column}}"
    )
    lines.append("")
    lines.append(f"UAR (mean recall over gold classes): {summary['uar']:.{digits}f}")
    return "\n".join(lines) + "\n"


def plot_confusion_matrix(matrix, label_names: Sequence[str], path, title: str | None = None) -> Path:
    """Save the confusion matrix as a PNG: counts in the cells, colours normalised per gold row."""
    # The Agg canvas is used directly rather than through pyplot so that plotting never touches a
    # global backend or figure registry (safe in training jobs and notebooks alike).
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    counts = np.asarray(matrix)
    names = [str(name) for name in label_names]
    size = len(names)
    if counts.shape != (size, size):
        raise ValueError(f"Matrix of shape {counts.shape} does not match {size} label names.")
    row_totals = counts.sum(axis=1, keepdims=True)
    fractions = _divide(counts, np.broadcast_to(row_totals, counts.shape))

    side = 2.5 + 0.75 * size
    figure = Figure(figsize=(side + 1.2, side), dpi=120)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    image = axes.imshow(fractions, cmap="Blues", vmin=0.0, vmax=1.0)
    colorbar = figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    colorbar.set_label("fraction of the gold class")
    font_size = 11 if size <= 5 else 9
    for row in range(size):
        for col in range(size):
            text = f"{counts[row, col]}\n{fractions[row, col]:.0%}" if row_totals[row, 0] else "0"
            colour = "white" if fractions[row, col] > 0.5 else "black"
            axes.text(col, row, text, ha="center", va="center", color=colour, fontsize=font_size)
    axes.set_xticks(range(size), labels=names, rotation=45 if size > 3 else 0, ha="right" if size > 3 else "center")
    axes.set_yticks(range(size), labels=[f"{name} ({row_totals[i, 0]})" for i, name in enumerate(names)])
    axes.set_xlabel("predicted")
    axes.set_ylabel("gold (support)")
    if title:
        axes.set_title(title)
    figure.tight_layout()
    path = Path(path)
    with atomic_path(path) as temporary:
        figure.savefig(temporary, bbox_inches="tight", format=path.suffix.lstrip(".") or "png")
    return path
