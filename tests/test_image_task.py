"""Labelled images (ImageFolder trees, hub-style datasets, CIFAR batches) and the image task: transforms; bad input."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import ClassLabel, Dataset, Features, Value
from datasets import Image as ImageFeature
from PIL import Image
from transformers import TrainingArguments

from hf_tasks.options import DataArguments
from hf_tasks.data.bad_rows import BadRows
from hf_tasks.data import labelled_images
from hf_tasks.data.labelled_images import LabelledImageArguments
from hf_tasks.errors import BadInputError
from hf_tasks.runner import apply_task_settings
from hf_tasks.tasks.image import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    NORMALIZATIONS,
    ImageArguments,
    ImageClassificationTask,
    collate_images,
    decode_image,
    normalisation_statistics,
)

COLOURS = {"blue": (0, 0, 255), "green": (0, 255, 0), "red": (255, 0, 0)}


@pytest.fixture
def training_args(tmp_path):
    return TrainingArguments(
        output_dir=str(tmp_path / "out"), remove_unused_columns=False, use_cpu=True, report_to="none", seed=7
    )


def solid_tree(root: Path, per_class: dict[str, int], size: int = 8) -> Path:
    """ImageFolder tree of solid-colour images: {split: count per class}."""
    for split, count in per_class.items():
        for name, colour in COLOURS.items():
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for index in range(count):
                Image.new("RGB", (size, size), colour).save(root / split / name / f"{index}.png")
    return root


def load(training_args, validation_fraction: float = 0.1, **data):
    return labelled_images.load(DataArguments(**data), LabelledImageArguments(validation_fraction=validation_fraction),
                                seed=training_args.seed, bad_rows=BadRows(False))


def make_task(training_args, image_args: ImageArguments | None = None, **data) -> ImageClassificationTask:
    image_args = image_args or ImageArguments(image_size=16, normalization="cifar10")
    return ImageClassificationTask(load(training_args, **data), image_args, NORMALIZATIONS["cifar10"])


def test_image_folder_classes_splits_and_stratified_validation(tmp_path, training_args):
    root = solid_tree(tmp_path / "data", {"train": 10, "test": 2})
    task = make_task(training_args, data_dir=str(root))
    assert task.label_names == ["blue", "green", "red"]
    assert {name: len(split) for name, split in task.splits.items()} == {"train": 27, "test": 6, "validation": 3}
    validation = task.splits["validation"]
    assert sorted(validation["label"]) == [0, 1, 2]  # stratified: one per class
    assert not set(validation["image_id"]) & set(task.splits["train"]["image_id"])
    again = make_task(training_args, data_dir=str(root))
    assert again.splits["validation"]["image_id"] == validation["image_id"]  # seeded


def test_too_few_images_for_a_stratified_validation_split_fail_clearly(tmp_path, training_args):
    root = solid_tree(tmp_path / "data", {"train": 3})
    with pytest.raises(BadInputError, match="validation_fraction"):
        make_task(training_args, data_dir=str(root))


def test_existing_validation_folder_is_used_and_limits_apply(tmp_path, training_args):
    root = solid_tree(tmp_path / "data", {"train": 4, "validation": 2, "test": 2})
    task = make_task(training_args, data_dir=str(root), max_train_samples=5, max_eval_samples=4)
    assert {name: len(split) for name, split in task.splits.items()} == {"train": 5, "validation": 4, "test": 6}
    assert all(image_id.startswith("validation/") for image_id in task.splits["validation"]["image_id"])
    assert len(set(task.splits["train"]["label"])) > 1  # the shuffled folder order mixes classes


def test_a_validation_folder_may_use_a_common_alias_but_only_one(tmp_path, training_args):
    root = solid_tree(tmp_path / "data", {"train": 2, "val": 1})
    assert len(load(training_args, data_dir=str(root))["validation"]) == 3  # used, not carved from train
    solid_tree(root, {"dev": 1})
    with pytest.raises(BadInputError, match=r"folders \['dev', 'val'\] all hold the validation split"):
        load(training_args, data_dir=str(root))


def test_transform_resizes_normalises_and_flips_train_only(tmp_path, training_args):
    root = solid_tree(tmp_path / "data", {"train": 10, "test": 1})
    task = make_task(training_args, data_dir=str(root))
    features = task.features(training_args)
    row = features["test"][0]
    assert row["pixel_values"].shape == (3, 16, 16) and row["pixel_values"].dtype == torch.float32
    colour = COLOURS[task.label_names[row["labels"]]]
    expected = [(value / 255 - mean) / std for value, mean, std in zip(colour, CIFAR10_MEAN, CIFAR10_STD)]
    torch.testing.assert_close(row["pixel_values"].mean(dim=(1, 2)), torch.tensor(expected), atol=1e-4, rtol=0)
    assert torch.allclose(row["pixel_values"].std(dim=(1, 2)), torch.zeros(3), atol=1e-5)

    half = Image.new("RGB", (8, 8), (0, 0, 0))
    half.paste((255, 255, 255), (0, 0, 4, 8))  # white left half
    task.image_args.horizontal_flip = 1.0
    flipped = task.transform(train=True)(half)
    kept = task.transform(train=False)(half)
    assert flipped[0, 0, -1] > flipped[0, 0, 0] and kept[0, 0, 0] > kept[0, 0, -1]
    torch.testing.assert_close(flipped, kept.flip(-1))


def test_backbone_normalisation_needs_the_backbones_statistics(tmp_path, training_args):
    root = solid_tree(tmp_path / "data", {"train": 3})
    with pytest.raises(BadInputError, match="--normalization backbone: the model records no mean/std"):
        normalisation_statistics("backbone", None)
    # A fixed table wins over the backbone's statistics.
    assert normalisation_statistics("cifar10", ([0.5] * 3, [0.25] * 3)) == (CIFAR10_MEAN, CIFAR10_STD)
    image_args = ImageArguments(image_size=8, normalization="backbone")
    statistics = normalisation_statistics("backbone", ([0.5] * 3, [0.25] * 3))
    task = ImageClassificationTask(load(training_args, 0.0, data_dir=str(root)), image_args, statistics)
    pixels = task.features(training_args)["train"][0]["pixel_values"]
    assert set(pixels.unique().tolist()) <= {(0 - 0.5) / 0.25, (1 - 0.5) / 0.25}
    processor = task.image_processor()
    assert list(processor.image_mean) == [0.5] * 3 and dict(processor.size) == {"height": 8, "width": 8}


def test_the_runner_turns_remove_unused_columns_off_for_the_task(tmp_path, training_args):
    task = make_task(training_args, data_dir=str(solid_tree(tmp_path / "data", {"train": 10})))
    training_args.remove_unused_columns = True
    apply_task_settings(task, training_args)
    assert training_args.remove_unused_columns is False


def test_greyscale_and_rgba_are_converted_to_rgb():
    grey = decode_image(Image.new("L", (4, 4), 100), "grey")
    assert grey.mode == "RGB" and grey.getpixel((0, 0)) == (100, 100, 100)
    transparent = Image.new("RGBA", (4, 4), (10, 20, 30, 0))
    assert decode_image(transparent, "rgba").getpixel((0, 0)) == (255, 255, 255)  # onto white
    opaque = Image.new("RGBA", (4, 4), (10, 20, 30, 255))
    assert decode_image(opaque, "rgba").getpixel((0, 0)) == (10, 20, 30)


def test_corrupt_image_fails_naming_the_file(tmp_path, training_args):
    root = solid_tree(tmp_path / "data", {"train": 2})
    broken = root / "train" / "red" / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    with pytest.raises(BadInputError, match="broken.png"):
        make_task(training_args, data_dir=str(root))


def test_corrupt_images_are_skipped_and_listed_with_skip_bad_rows(tmp_path, training_args):
    root = solid_tree(tmp_path / "data", {"train": 2, "test": 1})
    (root / "train" / "red" / "broken.png").write_bytes(b"\x89PNG not really")
    (root / "test" / "blue" / "empty.png").write_bytes(b"")
    with pytest.raises(BadInputError, match=r"cannot read the image \(images 'train/red/broken.png', "
                                            r"'test/blue/empty.png'\)"):
        load(training_args, 0.0, data_dir=str(root))
    skipping = BadRows(True)
    data = labelled_images.load(DataArguments(data_dir=str(root)), LabelledImageArguments(validation_fraction=0.0),
                                seed=7, bad_rows=skipping)
    assert {name: len(split) for name, split in data.items()} == {"train": 6, "test": 3}
    assert "train/red/broken.png" not in data["train"]["image_id"]
    assert [(row["file"], row["image"], row["reason"]) for row in skipping.skipped] == [
        (str(root), "train/red/broken.png", "cannot read the image"),
        (str(root), "test/blue/empty.png", "cannot read the image"),
    ]


def test_test_class_missing_from_train_fails(tmp_path, training_args):
    root = solid_tree(tmp_path / "data", {"train": 2, "test": 1})
    (root / "test" / "purple").mkdir()
    with pytest.raises(BadInputError, match="purple"):
        make_task(training_args, data_dir=str(root))


def write_parquet_dataset(folder: Path, splits: dict[str, tuple[list, list]], label_feature) -> Path:
    """A local dataset folder of `<split>.parquet` files with an `img` Image column and `label`."""
    folder.mkdir(parents=True)
    features = Features({"img": ImageFeature(), "label": label_feature})
    for split, (colours, labels) in splits.items():
        images = [Image.new("RGB", (6, 6), colour) for colour in colours]
        dataset = Dataset.from_dict({"img": images, "label": labels}, features=features)
        dataset.to_parquet(str(folder / f"{split}.parquet"))
    return folder


def test_hub_style_dataset_columns_are_detected(tmp_path, training_args):
    names = ["airplane", "cat"]
    folder = write_parquet_dataset(
        tmp_path / "hub",
        {"train": ([(255, 0, 0), (0, 0, 255)] * 5, [0, 1] * 5), "test": ([(0, 0, 255)], [1])},
        ClassLabel(names=names),
    )
    image_args = ImageArguments(image_size=4, normalization="imagenet")
    task = make_task(training_args, dataset_name=str(folder), image_args=image_args, validation_fraction=0.2)
    features_of_the_source = Features({"img": ImageFeature(), "label": ClassLabel(names=names)})
    assert labelled_images.source_columns(features_of_the_source, None, None) == ("img", "label")
    assert task.label_names == names and task.splits["train"].column_names == ["image", "label", "image_id"]
    assert sorted(task.splits["validation"]["label"]) == [0, 1]
    features = task.features(training_args)
    batch = collate_images([features["test"][0], features["train"][0]])
    assert batch["pixel_values"].shape == (2, 3, 4, 4) and batch["labels"][0] == 1
    assert task.raw["test"]["image_id"] == ["test/0"]


def test_plain_label_outside_the_training_classes_fails(tmp_path, training_args):
    folder = write_parquet_dataset(
        tmp_path / "hub",
        {"train": ([(255, 0, 0)] * 4, [0, 1, 2, 0]), "test": ([(255, 0, 0)], [7])},
        Value("int64"),
    )
    with pytest.raises(BadInputError, match="label 7"):
        make_task(training_args, dataset_name=str(folder))


def test_unlabelled_training_row_fails(tmp_path, training_args):
    folder = write_parquet_dataset(
        tmp_path / "hub", {"train": ([(255, 0, 0)] * 4, [0, 1, -1, 0])}, ClassLabel(names=["a", "b"])
    )
    with pytest.raises(BadInputError, match=r"train split: label id -1 is outside .*\(row 2\)"):
        make_task(training_args, dataset_name=str(folder))


def test_unreadable_hub_image_names_the_row(tmp_path, training_args):
    features = Features({"img": ImageFeature(), "label": ClassLabel(names=["a", "b"])})
    folder = tmp_path / "hub"
    folder.mkdir()
    rows = {"img": [{"bytes": b"garbage", "path": None}, {"bytes": b"garbage", "path": None}], "label": [0, 1]}
    Dataset.from_dict(rows, features=features).to_parquet(str(folder / "test.parquet"))
    with pytest.raises(BadInputError, match="test/1"):
        make_task(training_args, dataset_name=str(folder))


def test_unreadable_hub_images_and_unlabelled_training_rows_are_skipped_on_request(tmp_path, training_args):
    features = Features({"img": ImageFeature(), "label": ClassLabel(names=["a", "b"])})
    folder = tmp_path / "hub"
    folder.mkdir()
    good = [Image.new("RGB", (4, 4), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    rows = {"img": [good[0], {"bytes": b"garbage", "path": None}, good[1], good[0]], "label": [0, 1, 1, -1]}
    Dataset.from_dict(rows, features=features).to_parquet(str(folder / "train.parquet"))
    skipping = BadRows(True)
    data = labelled_images.load(DataArguments(dataset_name=str(folder)),
                                LabelledImageArguments(validation_fraction=0.0), seed=7, bad_rows=skipping)
    assert data["train"]["image_id"] == ["train/0", "train/2"] and data["train"]["label"] == [0, 1]
    assert sorted((row["reason"], row.get("row", row.get("image"))) for row in skipping.skipped) == [
        ("cannot read the image", "train/1"), ("label id -1 is outside the 2 classes ['a', 'b']", 3)]


def write_cifar_batches(folder: Path, rng: np.random.Generator) -> dict[str, np.ndarray]:
    folder.mkdir(parents=True)
    names = [f"class{index}" for index in range(10)]
    with (folder / "batches.meta").open("wb") as handle:
        pickle.dump({b"label_names": [name.encode() for name in names]}, handle)
    arrays = {}
    for file, count in (("data_batch_1", 12), ("data_batch_2", 8), ("test_batch", 5)):
        data = rng.integers(0, 256, size=(count, 3072), dtype=np.uint8)
        arrays[file] = data
        with (folder / file).open("wb") as handle:
            pickle.dump({b"data": data, b"labels": [index % 10 for index in range(count)]}, handle)
    return arrays


def test_cifar_python_batches_load_losslessly(tmp_path, training_args):
    arrays = write_cifar_batches(tmp_path / "cifar-10-batches-py", np.random.default_rng(0))
    task = make_task(training_args, data_dir=str(tmp_path), validation_fraction=0.0)
    assert task.label_names == [f"class{index}" for index in range(10)]
    assert len(task.splits["train"]) == 20 and len(task.splits["test"]) == 5 and "validation" not in task.splits
    first = decode_image(task.splits["test"][0]["image"], "test/0")
    expected = arrays["test_batch"][0].reshape(3, 32, 32).transpose(1, 2, 0)
    assert np.array_equal(np.asarray(first), expected)
    assert task.splits["train"][13]["image_id"] == "data_batch_2/1" and task.splits["train"][13]["label"] == 1


def test_cifar_label_outside_the_class_list_fails_naming_the_batch(tmp_path, training_args):
    folder = tmp_path / "cifar"
    write_cifar_batches(folder, np.random.default_rng(0))
    with (folder / "data_batch_2").open("wb") as handle:
        pickle.dump({b"data": np.zeros((2, 3072), dtype=np.uint8), b"labels": [3, 12]}, handle)
    with pytest.raises(BadInputError, match=r"data_batch_2: label id 12 is outside .*\(row 1\)"):
        make_task(training_args, data_dir=str(folder))


def test_cifar_rows_with_a_label_outside_the_class_list_are_skipped_on_request(tmp_path):
    folder = tmp_path / "cifar"
    write_cifar_batches(folder, np.random.default_rng(0))
    with (folder / "data_batch_2").open("wb") as handle:
        pickle.dump({b"data": np.zeros((3, 3072), dtype=np.uint8), b"labels": [3, 12, 4]}, handle)
    skipping = BadRows(True)
    data = labelled_images.load(DataArguments(data_dir=str(folder)), LabelledImageArguments(validation_fraction=0.0),
                                seed=7, bad_rows=skipping)
    assert len(data["train"]) == 12 + 2 and data["train"]["image_id"][-2:] == ["data_batch_2/0", "data_batch_2/2"]
    assert skipping.skipped == [{"file": str(folder / "data_batch_2"), "row": 1, "reason": (
        "label id 12 is outside the 10 classes " + str([f"class{index}" for index in range(10)]) + " of batches.meta")}]


def test_cifar_batches_refuse_pickled_code(tmp_path, training_args):
    folder = tmp_path / "cifar"
    write_cifar_batches(folder, np.random.default_rng(0))

    class Exploit:
        def __reduce__(self):
            return (print, ("pickled code ran",))

    with (folder / "batches.meta").open("wb") as handle:
        pickle.dump({b"label_names": Exploit()}, handle)
    with pytest.raises(BadInputError, match="batches.meta"):
        make_task(training_args, data_dir=str(folder))


def test_no_data_or_wrong_source_fails(tmp_path, training_args):
    with pytest.raises(BadInputError, match="--data_dir"):
        make_task(training_args)
    with pytest.raises(BadInputError, match="train/ and test/"):
        make_task(training_args, data_dir=str(tmp_path))
    with pytest.raises(BadInputError, match="not --train_file"):
        make_task(training_args, train_file="x.csv")


def decompression_bomb(path: Path) -> Path:
    """A valid 1×1 PNG whose header claims 40000×40000 pixels (1.6 gigapixels; Pillow's bomb limit is ~179 M)."""
    import struct
    import zlib

    Image.new("RGB", (1, 1)).save(path)
    data = bytearray(path.read_bytes())
    header = b"IHDR" + struct.pack(">II", 40000, 40000) + bytes(data[24:29])
    data[12:29] = header
    data[29:33] = struct.pack(">I", zlib.crc32(header))
    path.write_bytes(bytes(data))
    return path


def test_a_decompression_bomb_is_a_bad_row_named_and_skippable(tmp_path, training_args):
    root = solid_tree(tmp_path / "data", {"train": 2, "test": 1})
    decompression_bomb(root / "train" / "red" / "bomb.png")
    with pytest.raises(BadInputError, match=r"cannot read the image \(image 'train/red/bomb.png'\)"):
        load(training_args, 0.0, data_dir=str(root))
    skipping = BadRows(True)
    data = labelled_images.load(DataArguments(data_dir=str(root), skip_bad_rows=True),
                                LabelledImageArguments(validation_fraction=0.0), seed=7, bad_rows=skipping)
    assert "train/red/bomb.png" not in data["train"]["image_id"]
    assert [row["image"] for row in skipping.skipped] == ["train/red/bomb.png"]
    with pytest.raises(BadInputError, match="bomb.png: cannot read the image .*decompression bomb"):
        decode_image(str(root / "train" / "red" / "bomb.png"), "bomb.png")
