"""Image classification: hub datasets, ImageFolder trees and CIFAR python batches → on-the-fly tensors.

Sources (one of):
- `--dataset_name` (hub id or a local folder `datasets.load_dataset` reads), e.g. `uoft-cs/cifar10`:
  the image column is the first `Image` feature and the label column the first `ClassLabel` (or
  `label`/`labels`), unless `--image_column`/`--label_column` say otherwise;
- `--data_dir` with `train/` and `test/` (optional `validation/`) folders of class folders;
- `--data_dir` holding the CIFAR-10 python batches (`data_batch_1..5`, `test_batch`, `batches.meta`).

Without a validation split, a stratified one (`--validation_fraction`) is carved from train with the
training seed. Images are decoded, converted to RGB, resized (bilinear), flipped (train only) and
normalised per batch by `Dataset.with_transform`, so nothing is materialised on disk.
"""

from __future__ import annotations

import io
import logging
import pickle
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from datasets import ClassLabel, Dataset, Features, Value, load_dataset
from datasets import Image as ImageFeature
from PIL import Image, UnidentifiedImageError
from torchvision.transforms import v2

from hf_tasks.errors import BadInputError
from hf_tasks.data.splits import SPLITS, limit_splits
from hf_tasks.tasks.classification import ClassificationTask

logger = logging.getLogger(__name__)

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# "backbone" means the statistics the backbone was pretrained with (set by the recipe).
NORMALIZATIONS = {"cifar10": (CIFAR10_MEAN, CIFAR10_STD), "imagenet": (IMAGENET_MEAN, IMAGENET_STD), "backbone": None}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm"}
VALIDATION_NAMES = ("validation", "valid", "val")
LABEL_NAMES = ("label", "labels", "fine_label")


@dataclass
class ImageArguments:
    image_column: str | None = field(
        default=None, metadata={"help": "Image column of a hub dataset (default: the first Image feature)."}
    )
    label_column: str | None = field(
        default=None, metadata={"help": "Label column of a hub dataset (default: the first ClassLabel, or 'label')."}
    )
    image_size: int = field(default=224, metadata={"help": "Images are resized (bilinear) to this square size."})
    normalization: str = field(
        default="backbone",
        metadata={"help": "Normalise with: 'backbone' (its pretraining mean/std), 'cifar10' or 'imagenet'."},
    )
    horizontal_flip: float = field(default=0.5, metadata={"help": "Probability of a horizontal flip (training only)."})
    validation_fraction: float = field(
        default=0.1, metadata={"help": "Share of train carved (stratified) into validation when the data has none."}
    )

    def __post_init__(self):
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"--normalization {self.normalization!r}: choose one of {sorted(NORMALIZATIONS)}.")
        if not 0 <= self.validation_fraction < 1:
            raise ValueError(f"--validation_fraction {self.validation_fraction}: must be in [0, 1).")
        if self.image_size < 1:
            raise ValueError(f"--image_size {self.image_size}: must be positive.")


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
    except (OSError, UnidentifiedImageError, SyntaxError) as error:
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
    """Single-label image classification on any image classifier taking `pixel_values` and `labels`.

    The raw splits (and the class list) are loaded in the constructor, so the model can be sized
    for the labels before `features` builds the transformed datasets.
    """

    display_columns = ("image_id",)
    data_collator = staticmethod(collate_images)

    def __init__(self, data_args, image_args: ImageArguments, training_args):
        self.data_args = data_args
        self.image_args = image_args
        self.seed = training_args.seed
        with training_args.main_process_first(desc="loading images"):
            splits, label_names = self._load()
        super().__init__(label_names)
        self._check_labels(splits)
        splits = self._carve_validation(splits)
        self.splits = limit_splits(splits, data_args)
        statistics = NORMALIZATIONS[image_args.normalization]
        self.mean_std: tuple[Sequence[float], Sequence[float]] | None = statistics
        logger.info(
            "Images: %s; %d classes %s",
            ", ".join(f"{name} {len(split)}" for name, split in self.splits.items()),
            len(self.label_names),
            self.label_names,
        )

    # ---- loading ----

    def _load(self) -> tuple[dict[str, Dataset], list[str]]:
        data_args = self.data_args
        if data_args.train_file or data_args.validation_file or data_args.test_file:
            raise BadInputError(
                "Image data come from --dataset_name (hub id) or --data_dir (ImageFolder tree or CIFAR python "
                "batches), not --train_file/--validation_file/--test_file."
            )
        if data_args.dataset_name:
            return self._load_hub()
        if not data_args.data_dir:
            raise BadInputError("No image data given: pass --dataset_name (e.g. uoft-cs/cifar10) or --data_dir.")
        root = Path(data_args.data_dir)
        if not root.is_dir():
            raise BadInputError(f"--data_dir {root}: no such folder.")
        for candidate in (root, root / "cifar-10-batches-py"):
            if (candidate / "batches.meta").is_file():
                return self._load_cifar_batches(candidate)
        if (root / "train").is_dir():
            return self._load_image_folder(root)
        raise BadInputError(
            f"--data_dir {root}: expected train/ and test/ (optional validation/) folders of class folders, "
            "or the CIFAR-10 python batches (batches.meta, data_batch_*); "
            f"found {sorted(path.name for path in root.iterdir())}."
        )

    def _load_hub(self) -> tuple[dict[str, Dataset], list[str]]:
        data_args = self.data_args
        loaded = load_dataset(
            data_args.dataset_name, data_args.dataset_config_name, cache_dir=data_args.dataset_cache_dir
        )
        splits = {}
        for name in loaded:
            canonical = "validation" if name in VALIDATION_NAMES else name
            if canonical in ("train", "validation", "test"):
                splits[canonical] = loaded[name]
        if "train" not in splits and "test" not in splits:
            raise BadInputError(f"{data_args.dataset_name}: no train or test split (splits: {list(loaded)}).")
        features = next(iter(splits.values())).features
        self.image_column = self._image_column(features)
        self.label_column = self._label_column(features)
        label_feature = features[self.label_column]
        if isinstance(label_feature, ClassLabel):
            label_names = list(label_feature.names)
        else:
            # Plain labels: classes are the sorted distinct training values.
            reference = splits["train"] if "train" in splits else next(iter(splits.values()))
            values = sorted(set(reference[self.label_column]) - {None})
            label_names = [str(value) for value in values]
            splits = {name: self._encode_labels(name, split, values, label_names) for name, split in splits.items()}
        splits = {
            name: split.cast_column(self.image_column, ImageFeature(decode=False)).add_column(
                "image_id", [f"{name}/{row}" for row in range(len(split))]
            )
            for name, split in splits.items()
        }
        return splits, label_names

    def _image_column(self, features: Features) -> str:
        requested = self.image_args.image_column
        if requested:
            if requested not in features:
                raise BadInputError(f"--image_column {requested!r} is not a column; columns: {list(features)}.")
            return requested
        found = next((name for name, feature in features.items() if isinstance(feature, ImageFeature)), None)
        if found is None:
            raise BadInputError(f"No Image column in {list(features)}; name it with --image_column.")
        return found

    def _label_column(self, features: Features) -> str:
        requested = self.image_args.label_column
        if requested:
            if requested not in features:
                raise BadInputError(f"--label_column {requested!r} is not a column; columns: {list(features)}.")
            return requested
        found = next((name for name, feature in features.items() if isinstance(feature, ClassLabel)), None)
        found = found or next((name for name in LABEL_NAMES if name in features), None)
        if found is None:
            raise BadInputError(f"No label column in {list(features)}; name it with --label_column.")
        return found

    def _encode_labels(self, split_name: str, split: Dataset, values: list, label_names: list[str]) -> Dataset:
        index = {value: position for position, value in enumerate(values)}

        def encode(batch):
            ids = []
            for value in batch[self.label_column]:
                if value is not None and value not in index:
                    raise BadInputError(
                        f"{split_name} split: label {value!r} is not among the training classes {label_names}; "
                        "fix the label column."
                    )
                ids.append(-1 if value is None else index[value])
            return {self.label_column: ids}

        features = split.features.copy()
        features[self.label_column] = ClassLabel(names=label_names)
        return split.map(encode, batched=True, features=features, desc=f"encoding {split_name} labels")

    def _load_image_folder(self, root: Path) -> tuple[dict[str, Dataset], list[str]]:
        self.image_column, self.label_column = "image", "label"
        label_names = sorted(path.name for path in (root / "train").iterdir() if path.is_dir())
        if not label_names:
            raise BadInputError(f"{root / 'train'}: no class folders; put each class's images in train/<class>/.")
        class_ids = {name: index for index, name in enumerate(label_names)}
        features = _local_features(label_names)
        rng = np.random.default_rng(self.seed)
        splits = {}
        for split in ("train", "validation", "test"):
            folder = root / split
            if not folder.is_dir():
                continue
            paths, labels = [], []
            for class_folder in sorted(path for path in folder.iterdir() if path.is_dir()):
                if class_folder.name not in class_ids:
                    raise BadInputError(
                        f"{class_folder}: class '{class_folder.name}' has no folder in {root / 'train'} "
                        f"(classes: {label_names}); rename or remove it."
                    )
                files = sorted(path for path in class_folder.iterdir() if path.suffix.lower() in IMAGE_SUFFIXES)
                paths += files
                labels += [class_ids[class_folder.name]] * len(files)
            if not paths:
                raise BadInputError(f"{folder}: no images (suffixes {sorted(IMAGE_SUFFIXES)}) in its class folders.")
            for path in paths:
                _verify(path)
            # Shuffled once with the seed so that --max_*_samples take a mix of classes.
            order = rng.permutation(len(paths))
            splits[split] = Dataset.from_dict(
                {
                    "image": [{"path": str(paths[i]), "bytes": None} for i in order],
                    "label": [labels[i] for i in order],
                    "image_id": [str(paths[i].relative_to(root)) for i in order],
                },
                features=features,
            )
        return splits, label_names

    def _load_cifar_batches(self, folder: Path) -> tuple[dict[str, Dataset], list[str]]:
        self.image_column, self.label_column = "image", "label"
        meta = _read_cifar_pickle(folder / "batches.meta")
        label_names = [name.decode() if isinstance(name, bytes) else str(name) for name in meta[b"label_names"]]
        features = _local_features(label_names)
        files = {"train": sorted(folder.glob("data_batch_*")), "test": [folder / "test_batch"]}
        splits = {}
        for split, paths in files.items():
            missing = [path for path in paths if not path.is_file()]
            if not paths or missing:
                raise BadInputError(f"{folder}: CIFAR-10 {split} batch missing ({missing or 'data_batch_*'}).")
            images, labels, ids = [], [], []
            for path in paths:
                batch = _read_cifar_pickle(path)
                try:
                    pixels = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
                    batch_labels = [int(label) for label in batch[b"labels"]]
                except (KeyError, ValueError) as error:
                    raise BadInputError(f"{path}: not a CIFAR-10 python batch ({error}).") from error
                if len(batch_labels) != len(pixels):
                    raise BadInputError(f"{path}: {len(pixels)} images but {len(batch_labels)} labels.")
                for row, label in enumerate(batch_labels):
                    if not 0 <= label < len(label_names):
                        raise BadInputError(
                            f"{path}, row {row}: label id {label} is outside the {len(label_names)} classes "
                            f"{label_names} of batches.meta."
                        )
                images += [_png_bytes(image) for image in pixels]
                labels += batch_labels
                ids += [f"{path.name}/{row}" for row in range(len(pixels))]
            splits[split] = Dataset.from_dict(
                {"image": [{"bytes": data, "path": None} for data in images], "label": labels, "image_id": ids},
                features=features,
            )
        return splits, label_names

    def _carve_validation(self, splits: dict[str, Dataset]) -> dict[str, Dataset]:
        fraction = self.image_args.validation_fraction
        if "validation" in splits or "train" not in splits or fraction == 0:
            return splits
        try:
            parts = splits["train"].train_test_split(
                test_size=fraction, stratify_by_column=self.label_column, seed=self.seed
            )
        except ValueError as error:  # too few images per class for a stratified split
            raise BadInputError(
                f"Cannot carve a stratified {fraction:.0%} validation split from {len(splits['train'])} training "
                f"images of {len(self.label_names)} classes ({error}); provide a validation split, raise "
                "--validation_fraction, or set it to 0."
            ) from error
        logger.info("No validation split: carved a stratified %.0f%% of train (seed %d).", 100 * fraction, self.seed)
        return {**splits, "train": parts["train"], "validation": parts["test"]}

    def _check_labels(self, splits: dict[str, Dataset]) -> None:
        count = len(self.label_names)
        for name, split in splits.items():
            labels = np.asarray(split[self.label_column], dtype=np.int64)
            lowest = 0 if name == "train" else -1  # -1: an unlabelled row, allowed outside train
            bad = np.flatnonzero((labels < lowest) | (labels >= count))
            if bad.size:
                row = int(bad[0])
                raise BadInputError(
                    f"{name} split, row {row} ({split[row]['image_id']}): label id {int(labels[row])} is outside "
                    f"the {count} classes {self.label_names}; fix the label column."
                )

    # ---- features ----

    def set_backbone_statistics(self, statistics: tuple[Sequence[float], Sequence[float]] | None) -> None:
        """Use the backbone's pretraining (mean, std) when `--normalization backbone`."""
        if self.image_args.normalization != "backbone":
            return
        if statistics is None:
            raise BadInputError(
                "--normalization backbone: the model records no mean/std; choose --normalization imagenet or cifar10."
            )
        self.mean_std = statistics

    def transform(self, train: bool) -> v2.Compose:
        """PIL RGB image → normalised float tensor (3, image_size, image_size); flips only when training."""
        if self.mean_std is None:
            raise ValueError("--normalization backbone: call set_backbone_statistics(...) before building features.")
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

    def _apply(self, batch: dict[str, list], *, pipeline: v2.Compose, labelled: bool) -> dict[str, list]:
        pixels = [
            pipeline(decode_image(value, where))
            for value, where in zip(batch[self.image_column], batch["image_id"])
        ]
        out: dict[str, list] = {"pixel_values": pixels}
        if labelled:
            out["labels"] = [label if label >= 0 else -100 for label in batch[self.label_column]]
        return out

    def build_features(self, training_args) -> dict[str, Dataset]:
        if training_args.remove_unused_columns:
            raise ValueError(
                "Images are decoded on the fly from the raw columns: set --remove_unused_columns false "
                "(the Trainer would otherwise drop the image column before the transform sees it)."
            )
        features = {}
        for split in SPLITS:
            if split not in self.splits:
                continue
            dataset = self.splits[split]
            labelled = bool((np.asarray(dataset[self.label_column]) >= 0).any())
            apply = partial(self._apply, pipeline=self.transform(train=split == "train"), labelled=labelled)
            features[split] = dataset.with_transform(apply, columns=[self.image_column, self.label_column, "image_id"])
            if split != "train":
                self.raw[split] = dataset.select_columns(["image_id"])
        return features


def _local_features(label_names: list[str]) -> Features:
    """Schema of splits read from local files: undecoded images, class ids, a display id."""
    return Features(
        {"image": ImageFeature(decode=False), "label": ClassLabel(names=label_names), "image_id": Value("string")}
    )


def _verify(path: Path) -> None:
    """Fail early, naming the file, on an image PIL cannot read (cheap: no full decode)."""
    try:
        with Image.open(path) as image:
            image.verify()
    except (OSError, UnidentifiedImageError, SyntaxError) as error:
        raise BadInputError(f"{path}: cannot read the image ({error}); replace or remove the file.") from error


class _CifarUnpickler(pickle.Unpickler):
    """Reads the CIFAR python batches without running arbitrary pickled code: only numpy arrays."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _read_cifar_pickle(path: Path) -> dict:
    try:
        with path.open("rb") as handle:
            return _CifarUnpickler(handle, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, OSError) as error:
        raise BadInputError(f"{path}: not a CIFAR-10 python batch ({error}).") from error


def _png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, format="PNG")
    return buffer.getvalue()
