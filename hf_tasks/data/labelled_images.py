"""Labelled images: a hub dataset, an ImageFolder tree or the CIFAR-10 python batches → `DatasetDict`.

Sources (one of):
- `--dataset_name` (hub id or a local folder `datasets.load_dataset` reads), e.g. `uoft-cs/cifar10`:
  the image column is the first `Image` feature and the label column the first `ClassLabel` (or
  `label`/`labels`/`fine_label`), unless `--image_column`/`--label_column` say otherwise;
- `--data_dir` with `train/` and `test/` (optional `validation/`, `valid/`, `val/`, `dev/`) folders of
  class folders;
- `--data_dir` holding the CIFAR-10 python batches (`data_batch_1..5`, `test_batch`, `batches.meta`).

Every split has the standard columns `image` (`Image(decode=False)`: bytes or a path, decoded only
when a task transforms it), `label` (`ClassLabel`; -1 marks an unlabelled row, allowed outside train)
and `image_id` (the file path under `--data_dir`, `<batch file>/<row>` or `<split>/<row>`), which
prediction files show. Unreadable images and labels outside the classes are row problems for the
run's bad-row policy (`bad_rows`: stop naming them, or skip them with `--skip_bad_rows`).
Without a validation split, a stratified one (`--validation_fraction`) is carved from train with the
run's seed; the `--max_*_samples` limits apply last.
"""

from __future__ import annotations

import io
import logging
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value, concatenate_datasets
from datasets import Image as ImageFeature
from PIL import Image

from hf_tasks.data.bad_rows import BadRows, RowProblem
from hf_tasks.data.fetch import fetch_hint
from hf_tasks.data.sources import load_hub_splits
from hf_tasks.data.splits import SPLITS, canonical_split, limit_splits
from hf_tasks.errors import BadInputError

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm"}
LABEL_NAMES = ("label", "labels", "fine_label")
UNREADABLE = "cannot read the image"
# What opening an untrusted image may raise (UnidentifiedImageError is an OSError). Pillow refuses a
# header claiming more than twice Image.MAX_IMAGE_PIXELS (a decompression bomb) with an error of its own.
UNREADABLE_IMAGE_ERRORS = (OSError, SyntaxError, Image.DecompressionBombError)
# Images checked per batch while reading a hub split (bounds memory on large datasets).
VERIFY_BATCH = 512


@dataclass
class LabelledImageArguments:
    """Where the images and labels are, and how much of train becomes validation when there is none."""

    image_column: str | None = field(
        default=None, metadata={"help": "Image column of a hub dataset (default: the first Image feature)."}
    )
    label_column: str | None = field(
        default=None, metadata={"help": "Label column of a hub dataset (default: the first ClassLabel, or 'label')."}
    )
    validation_fraction: float = field(
        default=0.1, metadata={"help": "Share of train carved (stratified) into validation when the data has none."}
    )

    def __post_init__(self):
        if not 0 <= self.validation_fraction < 1:
            raise ValueError(f"--validation_fraction {self.validation_fraction}: must be in [0, 1).")


def load(data_args, image_args: LabelledImageArguments, seed: int, *, bad_rows: BadRows) -> DatasetDict:
    """The labelled image splits of `--dataset_name` or `--data_dir`, validated, with a validation split
    carved from train when there is none (stratified, with `seed`), limited by `--max_*_samples`."""
    if data_args.train_file or data_args.validation_file or data_args.test_file:
        raise BadInputError(
            "Image data come from --dataset_name (hub id) or --data_dir (ImageFolder tree or CIFAR python "
            "batches), not --train_file/--validation_file/--test_file."
        )
    if data_args.dataset_name:
        splits = _hub_splits(data_args, image_args, bad_rows)
    elif data_args.data_dir:
        splits = _local_splits(Path(data_args.data_dir), seed, bad_rows)
    else:
        raise BadInputError("No image data given: pass --dataset_name (e.g. uoft-cs/cifar10) or --data_dir.")
    splits = _carve_validation(splits, image_args.validation_fraction, seed)
    return DatasetDict(limit_splits({name: splits[name] for name in SPLITS if name in splits}, data_args))


def source_columns(features: Features, image_column: str | None, label_column: str | None) -> tuple[str, str]:
    """The image and label columns of a hub dataset: the ones named, else the first `Image` feature and
    the first `ClassLabel` (or a column called label/labels/fine_label)."""
    for flag, requested in (("--image_column", image_column), ("--label_column", label_column)):
        if requested and requested not in features:
            raise BadInputError(f"{flag} {requested!r} is not a column; columns: {list(features)}.")
    image = image_column or next(
        (name for name, feature in features.items() if isinstance(feature, ImageFeature)), None)
    if image is None:
        raise BadInputError(f"No Image column in {list(features)}; name it with --image_column.")
    label = label_column or next((name for name, feature in features.items() if isinstance(feature, ClassLabel)), None)
    label = label or next((name for name in LABEL_NAMES if name in features), None)
    if label is None:
        raise BadInputError(f"No label column in {list(features)}; name it with --label_column.")
    return image, label


# ---- hub datasets ----

def _hub_splits(data_args, image_args: LabelledImageArguments, bad_rows: BadRows) -> dict[str, Dataset]:
    loaded = load_hub_splits(data_args)
    features = next(iter(loaded.values())).features
    image, label = source_columns(features, image_args.image_column, image_args.label_column)
    if isinstance(features[label], ClassLabel):
        names, id_of = list(features[label].names), None
    else:
        # Plain labels: the classes are the sorted distinct training values.
        reference = loaded.get("train") or next(iter(loaded.values()))
        values = sorted(set(reference[label]) - {None})
        names, id_of = [str(value) for value in values], {value: index for index, value in enumerate(values)}
    splits = {}
    for name, split in loaded.items():
        split = split.select_columns([image, label]).cast_column(image, ImageFeature(decode=False))
        ids = [f"{name}/{row}" for row in range(len(split))]
        labels, problems = _label_ids(name, split[label], names, id_of)
        problems += _unreadable(_hub_images(split, image), ids)
        bad_rows.settle(f"{data_args.dataset_name} {name} split", problems, "fix the label and image columns")
        split = split.remove_columns(label)
        if image != "image":
            split = split.rename_column(image, "image")
        split = split.add_column("label", labels, feature=ClassLabel(names=names)).add_column("image_id", ids)
        splits[name] = _without(split, problems)
    return splits


def _label_ids(split: str, values: list, names: list[str], id_of: dict | None) -> tuple[list[int], list[RowProblem]]:
    """Class ids of a label column (`id_of` maps plain values to ids; None: already `ClassLabel` ids) and
    the rows whose label is not a class. None or -1 is an unlabelled row, allowed outside train."""
    ids, problems = [], []
    for row, value in enumerate(values):
        if id_of is not None:
            if value is not None and value not in id_of:
                problems.append(RowProblem("row", row, f"label {value!r} is not among the training classes {names}"))
                ids.append(-1)
                continue
            value = -1 if value is None else id_of[value]
        ids.append(value)
        lowest = 0 if split == "train" else -1
        if not lowest <= value < len(names):
            problems.append(RowProblem("row", row, f"label id {value} is outside the {len(names)} classes {names}"))
    return ids, problems


def _hub_images(split: Dataset, image: str) -> Iterable[Any]:
    for batch in split.select_columns([image]).iter(batch_size=VERIFY_BATCH):
        yield from batch[image]


# ---- local folders ----

def _local_splits(root: Path, seed: int, bad_rows: BadRows) -> dict[str, Dataset]:
    if not root.is_dir():
        raise BadInputError(f"--data_dir {root}: no such folder.{fetch_hint(root)}")
    for candidate in (root, root / "cifar-10-batches-py"):
        if (candidate / "batches.meta").is_file():
            return _cifar_splits(candidate, bad_rows)
    if (root / "train").is_dir():
        return _image_folder_splits(root, seed, bad_rows)
    raise BadInputError(
        f"--data_dir {root}: expected train/ and test/ (optional validation/) folders of class folders, "
        "or the CIFAR-10 python batches (batches.meta, data_batch_*); "
        f"found {sorted(path.name for path in root.iterdir())}."
    )


def _image_folder_splits(root: Path, seed: int, bad_rows: BadRows) -> dict[str, Dataset]:
    names = sorted(path.name for path in (root / "train").iterdir() if path.is_dir())
    if not names:
        raise BadInputError(f"{root / 'train'}: no class folders; put each class's images in train/<class>/.")
    class_ids = {name: index for index, name in enumerate(names)}
    # Split folders in train, validation, test order: each draws its shuffle from the seeded generator in turn.
    folders = sorted(((folder, canonical_split(folder.name)) for folder in root.iterdir() if folder.is_dir()
                      and canonical_split(folder.name) is not None),
                     key=lambda pair: (SPLITS.index(pair[1]), pair[0].name))
    rng = np.random.default_rng(seed)
    splits = {}
    problems = []
    for folder, split in folders:
        if split in splits:
            same = [other.name for other, other_split in folders if other_split == split]
            raise BadInputError(f"{root}: folders {same} all hold the {split} split; keep one of them.")
        paths, labels = [], []
        for class_folder in sorted(path for path in folder.iterdir() if path.is_dir()):
            if class_folder.name not in class_ids:
                raise BadInputError(
                    f"{class_folder}: class '{class_folder.name}' has no folder in {root / 'train'} "
                    f"(classes: {names}); rename or remove it."
                )
            files = sorted(path for path in class_folder.iterdir() if path.suffix.lower() in IMAGE_SUFFIXES)
            paths += files
            labels += [class_ids[class_folder.name]] * len(files)
        if not paths:
            raise BadInputError(f"{folder}: no images (suffixes {sorted(IMAGE_SUFFIXES)}) in its class folders.")
        # Shuffled once with the seed so that --max_*_samples take a mix of classes.
        order = rng.permutation(len(paths))
        ids = [str(paths[i].relative_to(root)) for i in order]
        problems += _unreadable((str(paths[i]) for i in order), ids)
        splits[split] = Dataset.from_dict(
            {"image": [{"path": str(paths[i]), "bytes": None} for i in order],
             "label": [labels[i] for i in order], "image_id": ids},
            features=_standard_features(names),
        )
    # One settlement for the tree: the message names every unreadable file, whichever split holds it.
    bad_rows.settle(str(root), problems, "replace or remove the files")
    return {split: _without(dataset, problems) for split, dataset in splits.items()}


def _cifar_splits(folder: Path, bad_rows: BadRows) -> dict[str, Dataset]:
    meta = _read_cifar_pickle(folder / "batches.meta")
    names = [name.decode() if isinstance(name, bytes) else str(name) for name in meta[b"label_names"]]
    files = {"train": sorted(folder.glob("data_batch_*")), "test": [folder / "test_batch"]}
    splits = {}
    for split, paths in files.items():
        missing = [path for path in paths if not path.is_file()]
        if not paths or missing:
            raise BadInputError(f"{folder}: CIFAR-10 {split} batch missing ({missing or 'data_batch_*'}).")
        parts = []
        for path in paths:
            batch = _read_cifar_pickle(path)
            try:
                pixels = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
                labels = [int(label) for label in batch[b"labels"]]
            except (KeyError, ValueError) as error:
                raise BadInputError(f"{path}: not a CIFAR-10 python batch ({error}).") from error
            if len(labels) != len(pixels):
                raise BadInputError(f"{path}: {len(pixels)} images but {len(labels)} labels.")
            problems = [RowProblem("row", row, f"label id {label} is outside the {len(names)} classes {names} "
                                   "of batches.meta")
                        for row, label in enumerate(labels) if not 0 <= label < len(names)]
            bad_rows.settle(str(path), problems, "fix the labels or the class list in batches.meta")
            rows = Dataset.from_dict(
                {"image": [{"bytes": _png_bytes(image), "path": None} for image in pixels],
                 "label": [label if 0 <= label < len(names) else -1 for label in labels],
                 "image_id": [f"{path.name}/{row}" for row in range(len(pixels))]},
                features=_standard_features(names),
            )
            parts.append(_without(rows, problems))
        splits[split] = parts[0] if len(parts) == 1 else concatenate_datasets(parts)
    return splits


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


# ---- shared steps ----

def _standard_features(names: list[str]) -> Features:
    return Features({"image": ImageFeature(decode=False), "label": ClassLabel(names=names),
                     "image_id": Value("string")})


def _unreadable(images: Iterable[Any], ids: list[str]) -> list[RowProblem]:
    """Problems for the images PIL cannot open (cheap: headers and structure, no full decode)."""
    problems = []
    for value, image_id in zip(images, ids):
        if isinstance(value, dict):
            source = io.BytesIO(value["bytes"]) if value.get("bytes") is not None else value.get("path")
        else:
            source = value
        if not source:
            problems.append(RowProblem("image", image_id, "no image data"))
            continue
        try:
            with Image.open(source) as image:
                image.verify()
        except UNREADABLE_IMAGE_ERRORS as error:
            problems.append(RowProblem("image", image_id, UNREADABLE, {"error": str(error)}))
    return problems


def _without(split: Dataset, problems: list[RowProblem]) -> Dataset:
    """`split` less the rows `problems` name (by row number, or by image id), once the bad-row policy
    has accepted skipping them."""
    rows = {problem.position for problem in problems if problem.unit == "row"}
    images = {problem.position for problem in problems if problem.unit == "image"}
    if not rows and not images:
        return split
    kept = [row for row, image_id in enumerate(split["image_id"]) if row not in rows and image_id not in images]
    return split.select(kept)


def _carve_validation(splits: dict[str, Dataset], fraction: float, seed: int) -> dict[str, Dataset]:
    if "validation" in splits or "train" not in splits or fraction == 0:
        return splits
    train = splits["train"]
    try:
        parts = train.train_test_split(test_size=fraction, stratify_by_column="label", seed=seed)
    except ValueError as error:  # too few images per class for a stratified split
        raise BadInputError(
            f"Cannot carve a stratified {fraction:.0%} validation split from {len(train)} training images of "
            f"{train.features['label'].num_classes} classes ({error}); provide a validation split, raise "
            "--validation_fraction, or set it to 0."
        ) from error
    logger.info("No validation split: carved a stratified %.0f%% of train (seed %d).", 100 * fraction, seed)
    return {**splits, "train": parts["train"], "validation": parts["test"]}

