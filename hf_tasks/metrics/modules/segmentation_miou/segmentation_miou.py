"""Semantic segmentation mean IoU, pixel accuracy and per-class IoU, as an `evaluate` module (hf_tasks' own
scorer, which accumulates one confusion matrix over all images)."""

import datasets
import evaluate
import numpy as np

from hf_tasks.metrics.segmentation import mean_iou

_DESCRIPTION = """Semantic segmentation figures computed by hf_tasks.metrics.segmentation over a whole dataset
of (predicted, gold) label masks: one confusion matrix is accumulated over every pixel of every image (pixels
whose gold label is ignore_index are left out), and mean IoU, mean accuracy, pixel accuracy and the IoU of
every class that occurs come from it."""

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of 2-D integer masks (height x width), predicted class ids.
    references: list of 2-D integer masks of the same shapes, gold class ids.
    num_classes: int, the number of classes.
    ignore_index: int, the gold label of pixels left out (default 255).
    class_names: optional list of str naming the per-class keys (else the class ids).
Returns:
    mean_iou, pixel_accuracy, mean_accuracy, and iou_<class> for every class that occurs.
Example:
    >>> miou = evaluate.load(hf_tasks.metrics.evaluate_module("segmentation_miou"))
    >>> miou.compute(predictions=[[[0, 1], [1, 1]]], references=[[[0, 1], [0, 1]]], num_classes=2)["mean_iou"]
    0.5833333333333333
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class SegmentationMiou(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({
                "predictions": datasets.Sequence(datasets.Sequence(datasets.Value("int64"))),
                "references": datasets.Sequence(datasets.Sequence(datasets.Value("int64"))),
            }),
        )

    def _compute(self, predictions, references, num_classes=None, ignore_index=255, class_names=None):
        if num_classes is None:
            raise ValueError("Give num_classes.")
        return mean_iou([np.asarray(mask) for mask in predictions], [np.asarray(mask) for mask in references],
                        num_classes, ignore_index, class_names)
