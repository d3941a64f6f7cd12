"""Semantic segmentation with BEiT (or any `AutoModelForSemanticSegmentation` model); no training.

    python recipes/segmentation.py --config recipes/configs/segmentation/beit_ade.yaml --images photos/
    python recipes/segmentation.py --config recipes/configs/segmentation/beit_ade_scene_parse.yaml

For every image the run folder gets `<name>_overlay.png` (the input and its colour overlay side by
side) and `<name>_mask.png` (class ids at the input's size); `predictions.json` lists the classes
seen per image. With ground-truth masks (`--mask_dir`, or `--mask_column` of a dataset),
`results.json` holds mean IoU, pixel accuracy, mean class accuracy and per-class IoU.
"""

from __future__ import annotations

import hf_tasks.help_cache  # noqa: F401  (prints a cached --help and exits, before the imports below)

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from hf_tasks.options import ModelArguments
from hf_tasks.registry import Recipe
from hf_tasks.run_state import RunState
from hf_tasks.files import write_atomic
from hf_tasks.interpret.segmentation import (
    class_fractions,
    class_names,
    inputs_from_dataset,
    inputs_from_files,
    load_segmenter,
    mask_image,
    overlay,
    palette,
    predict_masks,
    reduce_labels,
    side_by_side,
)
from hf_tasks.metrics.segmentation import SegmentationScore
from hf_tasks.errors import BadInputError


@dataclass
class SegmentationArguments:
    images: list[str] = field(default_factory=list, metadata={"help": "Image files and/or folders of images."})
    mask_dir: str | None = field(
        default=None, metadata={"help": "Folder of ground-truth masks (class ids), named like the images."}
    )
    dataset_name: str | None = field(default=None, metadata={"help": "Hub dataset id or local dataset folder."})
    dataset_config_name: str | None = field(default=None, metadata={"help": "Configuration of the dataset."})
    dataset_split: str = field(default="validation", metadata={"help": "Split of the dataset to segment."})
    image_column: str = field(default="image", metadata={"help": "Dataset column holding the images."})
    mask_column: str | None = field(default=None, metadata={"help": "Dataset column holding ground-truth masks."})
    max_samples: int | None = field(default=None, metadata={"help": "Segment only the first N images."})
    reduce_labels: bool | None = field(
        default=None,
        metadata={"help": "Ground truth uses 0 for 'other' and classes from 1 (ADE20K): map 0 to the ignore index "
                  "and k to k-1. Unset: follow the image processor's do_reduce_labels."},
    )
    ignore_index: int = field(default=255, metadata={"help": "Ground-truth id left out of the metrics."})
    alpha: float = field(default=0.5, metadata={"help": "Opacity of the class colours in the overlays."})
    batch_size: int = field(default=4, metadata={"help": "Images per forward pass."})
    output_dir: str = field(default="runs/segmentation", metadata={"help": "Folder for overlays, masks and results."})
    use_cpu: bool = field(default=False, metadata={"help": "Run on CPU even when a GPU is available."})

    def __post_init__(self):
        if bool(self.images) == bool(self.dataset_name):
            raise BadInputError("Give either --images (files or folders) or --dataset_name, not both or neither.")
        if self.mask_dir and self.dataset_name:
            raise BadInputError("--mask_dir goes with --images; for a dataset name its mask column (--mask_column).")
        if not 0.0 <= self.alpha <= 1.0:
            raise BadInputError(f"--alpha {self.alpha}: use a value between 0 and 1.")


def _inputs(args: SegmentationArguments):
    if args.images:
        count, inputs = inputs_from_files(args.images, args.mask_dir)
    else:
        from datasets import load_dataset

        dataset = load_dataset(args.dataset_name, args.dataset_config_name, split=args.dataset_split)
        if args.max_samples is not None:
            dataset = dataset.select(range(min(len(dataset), args.max_samples)))
        count, inputs = inputs_from_dataset(dataset, args.image_column, args.mask_column)
    if args.max_samples is not None:
        count = min(count, args.max_samples)
    return count, inputs


def _batches(inputs, count: int, size: int):
    batch = []
    for index, item in enumerate(inputs):
        if index == count:
            break
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


ARGUMENTS = (ModelArguments, SegmentationArguments)


def main(state: RunState) -> dict[str, Any]:
    model_args, args = state[ModelArguments], state[SegmentationArguments]
    if model_args.model_name_or_path is None:
        raise BadInputError("Segmentation needs a trained model: pass --model_name_or_path.")
    model, processor = load_segmenter(
        model_args.model_name_or_path, processor_name=model_args.tokenizer_name, **model_args.pretrained_kwargs()
    )
    if torch.cuda.is_available() and not args.use_cpu:
        model.to("cuda")
    names = class_names(model)
    colours = palette(len(names))
    reduce = (args.reduce_labels if args.reduce_labels is not None
              else bool(getattr(processor, "do_reduce_labels", False)))
    score = SegmentationScore(len(names), args.ignore_index, names)
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)

    count, inputs = _inputs(args)
    predictions = {}
    with tqdm(total=count, desc="segmenting", unit="image") as progress:
        for batch in _batches(inputs, count, args.batch_size):
            masks = predict_masks(model, processor, [item.image for item in batch])
            for item, mask in zip(batch, masks):
                side_by_side(item.image, overlay(item.image, mask, colours, args.alpha)).save(
                    output_dir / f"{item.name}_overlay.png"
                )
                mask_image(mask).save(output_dir / f"{item.name}_mask.png")
                predictions[item.name] = class_fractions(mask, names)
                if item.mask is not None:
                    target = reduce_labels(item.mask, args.ignore_index) if reduce else item.mask
                    score.update(mask, target)
            progress.update(len(batch))

    write_atomic(output_dir / "predictions.json", json.dumps(predictions, ensure_ascii=False, indent=2))
    results: dict[str, Any] = {"num_images": len(predictions), "model": model_args.model_name_or_path}
    if score.images:
        # NaN (no labelled pixels at all) is not JSON: write null.
        results.update({"num_scored_images": score.images})
        results.update({k: None if math.isnan(v) else v for k, v in score.compute().items()})
        summary = f"mean IoU {results['mean_iou']}, pixel accuracy {results['pixel_accuracy']}"
    else:
        summary = "no ground truth given: masks and overlays only"
    write_atomic(output_dir / "results.json", json.dumps(results, ensure_ascii=False, indent=2))
    print(f"{len(predictions)} images segmented into {output_dir}; {summary}")
    return results


RECIPE = Recipe("segmentation", __doc__, ARGUMENTS, main)

if __name__ == "__main__":
    RECIPE.cli()
