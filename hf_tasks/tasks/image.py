"""Image classification: labelled images (`hf_tasks.data.labelled_images`) → on-the-fly tensors → scores.

Images are decoded, converted to RGB, resized (bilinear), flipped (train only) and normalised per
batch by `Dataset.with_transform`, so nothing is materialised on disk. The normalisation statistics
are given when the task is built: a fixed table (`--normalization cifar10` / `imagenet`) or the
backbone's own (`normalisation_statistics`).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Sequence

import numpy as np
import torch
from datasets import Dataset, DatasetDict
from PIL import Image
from torchvision.transforms import v2

from hf_tasks.data.labelled_images import UNREADABLE_IMAGE_ERRORS
from hf_tasks.data.sources import class_names_of
from hf_tasks.data.splits import SPLITS
from hf_tasks.errors import BadInputError
from hf_tasks.tasks.classification import ClassificationTask

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# "backbone": the statistics the backbone was pretrained with (`normalisation_statistics`).
NORMALIZATIONS = {"cifar10": (CIFAR10_MEAN, CIFAR10_STD), "imagenet": (IMAGENET_MEAN, IMAGENET_STD), "backbone": None}
MeanStd = tuple[Sequence[float], Sequence[float]]


@dataclass
class ImageArguments:
    image_size: int = field(default=224, metadata={"help": "Images are resized (bilinear) to this square size."})
    normalization: str = field(
        default="backbone",
        metadata={"help": "Normalise with: 'backbone' (its pretraining mean/std), 'cifar10' or 'imagenet'."},
    )
    horizontal_flip: float = field(default=0.5, metadata={"help": "Probability of a horizontal flip (training only)."})

    def __post_init__(self):
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"--normalization {self.normalization!r}: choose one of {sorted(NORMALIZATIONS)}.")
        if self.image_size < 1:
            raise ValueError(f"--image_size {self.image_size}: must be positive.")


def normalisation_statistics(normalization: str, backbone_statistics: MeanStd | None) -> MeanStd:
    """The (mean, std) `--normalization` names; for 'backbone', the backbone's own
    (`hf_tasks.modeling.image_classifier.backbone_statistics`)."""
    statistics = NORMALIZATIONS[normalization] or backbone_statistics
    if statistics is None:
        raise BadInputError(
            "--normalization backbone: the model records no mean/std; choose --normalization imagenet or cifar10."
        )
    return statistics


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB version of `image`: transparency is composited onto white, greyscale/CMYK/palette converted."""
    if image.mode == "RGB":
        return image
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def decode_image(value: Any, where: str) -> Image.Image:
    """A fully decoded RGB image from an `Image(decode=False)` cell, a path or a PIL image.

    `where` (a file path or split/row) names the image in the error raised for unreadable data.
    """
    if isinstance(value, dict):
        source = io.BytesIO(value["bytes"]) if value.get("bytes") is not None else value.get("path")
    else:
        source = value
    if isinstance(source, Image.Image):
        return to_rgb(source)
    if not source:
        raise BadInputError(f"{where}: no image data in the image column; fix the data.")
    try:
        image = Image.open(source)
        image.load()
    except UNREADABLE_IMAGE_ERRORS as error:
        raise BadInputError(f"{where}: cannot read the image ({error}); replace or remove the file.") from error
    return to_rgb(image)


def image_transform(
    size: int, mean: Sequence[float], std: Sequence[float], *, horizontal_flip: float = 0.0
) -> v2.Compose:
    """PIL RGB image → float tensor (3, size, size): flip (with this probability), bilinear resize,
    scale to [0, 1], normalise."""
    # Flip and resize the uint8 tensor (cheaper than resizing a PIL image), then scale and normalise.
    steps: list = [v2.ToImage()]
    if horizontal_flip > 0:
        steps.append(v2.RandomHorizontalFlip(p=horizontal_flip))
    steps += [
        v2.Resize((size, size), interpolation=v2.InterpolationMode.BILINEAR, antialias=True),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(mean=list(mean), std=list(std)),
        v2.ToPureTensor(),
    ]
    return v2.Compose(steps)


def collate_images(rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack `pixel_values` (and `labels` when the rows have them)."""
    batch = {"pixel_values": torch.stack([row["pixel_values"] for row in rows])}
    if "labels" in rows[0]:
        batch["labels"] = torch.tensor([row["labels"] for row in rows], dtype=torch.long)
    return batch


class ImageClassificationTask(ClassificationTask):
    """Single-label image classification on any image classifier taking `pixel_values` and `labels`,
    over the standard columns (`image`, `label`, `image_id`) of labelled image splits."""

    feature_unit = "images"
    work_unit = "images"

    display_columns = ("image_id",)
    example_id_column = "image_id"
    data_collator = staticmethod(collate_images)

    def __init__(self, data: DatasetDict, image_args: ImageArguments, mean_std: MeanStd):
        super().__init__(class_names_of(data, "label"))
        self.splits = data
        self.image_args = image_args
        self.mean_std = mean_std

    def batch_work(self, inputs):
        return inputs["pixel_values"].shape[0]

    def transform(self, train: bool) -> v2.Compose:
        """PIL RGB image → normalised float tensor (3, image_size, image_size); flips only when training."""
        flip = self.image_args.horizontal_flip if train else 0.0
        return image_transform(self.image_args.image_size, *self.mean_std, horizontal_flip=flip)

    def image_processor(self):
        """A transformers image processor doing the evaluation transform, saved with the model for inference."""
        from transformers import ViTImageProcessor

        mean, std = self.mean_std
        size = self.image_args.image_size
        return ViTImageProcessor(
            size={"height": size, "width": size},
            resample=Image.Resampling.BILINEAR,
            image_mean=list(mean),
            image_std=list(std),
        )

    @staticmethod
    def _apply(batch: dict[str, list], *, pipeline: v2.Compose, labelled: bool) -> dict[str, list]:
        pixels = [pipeline(decode_image(value, where)) for value, where in zip(batch["image"], batch["image_id"])]
        out: dict[str, list] = {"pixel_values": pixels}
        if labelled:
            out["labels"] = [label if label >= 0 else -100 for label in batch["label"]]
        return out

    def trainer_settings(self) -> dict[str, Any]:
        # Images are decoded on the fly from the raw columns, which the Trainer would otherwise drop
        # before the transform sees them.
        return {"remove_unused_columns": False}

    def build_features(self, training_args) -> dict[str, Dataset]:
        features = {}
        for split in SPLITS:
            if split not in self.splits:
                continue
            dataset = self.splits[split]
            labelled = bool((np.asarray(dataset["label"]) >= 0).any())
            apply = partial(self._apply, pipeline=self.transform(train=split == "train"), labelled=labelled)
            features[split] = dataset.with_transform(apply, columns=["image", "label", "image_id"])
            if split != "train":
                self.raw[split] = dataset.select_columns(["image_id"])
        return features
