"""Segmentation: metrics against hand-computed values, overlays, and the recipe on a tiny BEiT."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import BeitConfig, BeitForSemanticSegmentation, BeitImageProcessor

import segmentation as segmentation_recipe
from hf_tasks.args import parse
from hf_tasks.interpret.segmentation import (
    inputs_from_files,
    load_segmenter,
    overlay,
    palette,
    predict_masks,
    reduce_labels,
    side_by_side,
)
from hf_tasks.metrics.segmentation import confusion_counts, mean_iou
from hf_tasks.errors import BadInputError
from tests.conftest import REPO

CLASSES = ["wall", "floor", "sky", "tree", "person"]
SIZES = [(40, 30), (25, 50), (64, 64)]  # (width, height)


# ---- metrics -------------------------------------------------------------------------------------

def test_mean_iou_matches_hand_computed_example():
    target = np.array([[0, 0, 1], [1, 2, 255]])
    predicted = np.array([[0, 1, 1], [1, 2, 2]])
    # Pixel (1, 2) is ignored. class 0: 1 shared / 2 in union; class 1: 2 / 3; class 2: 1 / 1.
    # Class 3 occurs nowhere and stays out of the mean. 4 of the 5 labelled pixels are right.
    metrics = mean_iou([predicted], [target], num_classes=4)
    assert metrics["mean_iou"] == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
    assert metrics["pixel_accuracy"] == pytest.approx(4 / 5)
    assert metrics["mean_accuracy"] == pytest.approx((1 / 2 + 1 + 1) / 3)
    assert metrics["iou_1"] == pytest.approx(2 / 3)
    assert "iou_3" not in metrics


def test_metrics_pool_pixels_across_images_of_different_sizes():
    first_target, first_predicted = np.zeros((2, 2), int), np.zeros((2, 2), int)
    second_target, second_predicted = np.array([[1, 1, 1]]), np.array([[1, 0, 0]])
    metrics = mean_iou([first_predicted, second_predicted], [first_target, second_target], num_classes=2)
    # class 0: 4 shared, union 4 + 2 wrongly predicted = 6; class 1: 1 shared, union 3.
    assert metrics["mean_iou"] == pytest.approx((4 / 6 + 1 / 3) / 2)
    assert metrics["pixel_accuracy"] == pytest.approx(5 / 7)


def test_ignore_index_is_configurable_and_bad_ids_fail():
    target = np.array([[0, 1, 7]])
    predicted = np.array([[0, 1, 0]])
    assert mean_iou([predicted], [target], num_classes=2, ignore_index=7)["mean_iou"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="outside 0-1"):
        confusion_counts(predicted, target, num_classes=2)


def test_reduce_labels_follows_ade20k():
    np.testing.assert_array_equal(reduce_labels(np.array([0, 1, 5, 255])), [255, 0, 4, 255])


# ---- overlays ------------------------------------------------------------------------------------

def test_overlay_keeps_the_input_size_and_side_by_side_shows_the_input():
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8))
    mask = np.zeros((30, 40), dtype=np.int64)
    mask[:, 20:] = 2
    colours = palette(5)
    blended = overlay(image, mask, colours, alpha=1.0)
    assert blended.size == image.size
    assert (tuple(np.asarray(blended)[0, 0]) == tuple(colours[0])
            and tuple(np.asarray(blended)[0, 30]) == tuple(colours[2]))
    pair = side_by_side(image, blended)
    assert pair.size == (80, 30)
    np.testing.assert_array_equal(np.asarray(pair)[:, :40], np.asarray(image))


# ---- the recipe on a tiny BEiT -------------------------------------------------------------------

@pytest.fixture(scope="module")
def beit_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-beit")
    torch.manual_seed(0)
    config = BeitConfig(
        image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
        out_indices=[0, 1, 2, 3], pool_scales=[1, 2], use_auxiliary_head=False,
        id2label=dict(enumerate(CLASSES)), label2id={name: i for i, name in enumerate(CLASSES)},
    )
    BeitForSemanticSegmentation(config).save_pretrained(folder)
    BeitImageProcessor(size={"height": 32, "width": 32}, do_center_crop=False,
                       do_reduce_labels=True).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(1)
    for index, (width, height) in enumerate(SIZES):
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        pixels[: height // 2] //= 4  # a dark top half, so that the predicted classes vary
        Image.fromarray(pixels).save(folder / f"photo{index}.png")
    return folder


def run_recipe(beit_dir, output_dir, *overrides):
    args = ["--model_name_or_path", str(beit_dir), "--output_dir", str(output_dir), "--use_cpu", "--batch_size", "2",
            *overrides]
    return segmentation_recipe.main(parse(*segmentation_recipe.ARGUMENTS, args=args))


def test_masks_match_the_input_size(beit_dir, image_dir):
    model, processor = load_segmenter(str(beit_dir))
    assert type(model).__name__ == "BeitForSemanticSegmentation"
    images = [Image.open(path).convert("RGB") for path in sorted(image_dir.iterdir())]
    masks = predict_masks(model, processor, images)
    assert [mask.shape for mask in masks] == [(height, width) for width, height in SIZES]
    assert all(mask.min() >= 0 and mask.max() < len(CLASSES) for mask in masks)


def test_recipe_writes_overlays_beside_inputs_and_scores_ground_truth(beit_dir, image_dir, tmp_path):
    predicted_dir = tmp_path / "predicted"
    results = run_recipe(beit_dir, predicted_dir, "--images", str(image_dir))
    assert results["num_images"] == len(SIZES) and "mean_iou" not in results
    for index, (width, height) in enumerate(SIZES):
        pair = Image.open(predicted_dir / f"photo{index}_overlay.png")
        assert pair.size == (2 * width, height)
        original = np.asarray(Image.open(image_dir / f"photo{index}.png").convert("RGB"))
        np.testing.assert_array_equal(np.asarray(pair.convert("RGB"))[:, :width], original)
        assert Image.open(predicted_dir / f"photo{index}_mask.png").size == (width, height)
    assert set(json.loads((predicted_dir / "predictions.json").read_text())) == {"photo0", "photo1", "photo2"}

    # Ground truth in ADE20K numbering (class k saved as k + 1, 0 = unlabelled): the predicted masks
    # themselves, with 0 in the first row and a wrong class in a known number of other pixels.
    mask_dir = tmp_path / "masks"
    mask_dir.mkdir()
    wrong = labelled = 0
    intersections, unions = np.zeros(len(CLASSES)), np.zeros(len(CLASSES))
    for index in range(len(SIZES)):
        predicted = np.asarray(Image.open(predicted_dir / f"photo{index}_mask.png")).astype(np.uint8)
        truth = predicted + 1
        truth[0] = 0
        truth[1, :5] = (predicted[1, :5] + 1) % len(CLASSES) + 1
        wrong += 5
        labelled += truth.size - truth.shape[1]
        Image.fromarray(truth).save(mask_dir / f"photo{index}.png")
        scored_pixels = truth > 0
        for label in range(len(CLASSES)):
            in_truth, in_prediction = (truth == label + 1) & scored_pixels, (predicted == label) & scored_pixels
            intersections[label] += (in_truth & in_prediction).sum()
            unions[label] += (in_truth | in_prediction).sum()
    present = unions > 0
    scored = run_recipe(beit_dir, tmp_path / "scored", "--images", str(image_dir), "--mask_dir", str(mask_dir))
    assert scored["num_scored_images"] == len(SIZES)
    assert scored["pixel_accuracy"] == pytest.approx(1 - wrong / labelled)
    assert scored["mean_iou"] == pytest.approx((intersections[present] / unions[present]).mean())
    assert scored["mean_iou"] < 1
    assert json.loads((tmp_path / "scored" / "results.json").read_text())["pixel_accuracy"] == scored["pixel_accuracy"]


def test_dataset_input_with_mask_column(beit_dir, tmp_path):
    from datasets import Dataset, Features, Image as ImageFeature

    rng = np.random.default_rng(2)
    rows = {
        "image": [Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)) for _ in range(3)],
        "annotation": [Image.fromarray(np.zeros((20, 24), dtype=np.uint8)) for _ in range(3)],
    }
    dataset = Dataset.from_dict(rows, features=Features({"image": ImageFeature(), "annotation": ImageFeature()}))
    (tmp_path / "data").mkdir()
    dataset.to_parquet(tmp_path / "data" / "validation.parquet")
    results = run_recipe(beit_dir, tmp_path / "out", "--dataset_name", str(tmp_path / "data"),
                         "--mask_column", "annotation", "--max_samples", "2")
    assert results["num_images"] == 2 and results["num_scored_images"] == 2
    assert results["mean_iou"] is None  # every ground-truth pixel is 0 = unlabelled
    assert Image.open(tmp_path / "out" / "00001_overlay.png").size == (48, 20)


def test_bad_inputs_fail_early(beit_dir, image_dir, tmp_path):
    (tmp_path / "masks").mkdir()
    with pytest.raises(BadInputError, match="photo0"):
        run_recipe(beit_dir, tmp_path / "out", "--images", str(image_dir), "--mask_dir", str(tmp_path / "masks"))
    Image.fromarray(np.zeros((5, 5), dtype=np.uint8)).save(tmp_path / "masks" / "photo0.png")
    with pytest.raises(BadInputError, match="5x5 pixels but its image is 40x30"):
        run_recipe(beit_dir, tmp_path / "out", "--images", str(image_dir / "photo0.png"),
                   "--mask_dir", str(tmp_path / "masks"))
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    with pytest.raises(BadInputError, match="broken.jpg"):
        run_recipe(beit_dir, tmp_path / "out", "--images", str(tmp_path / "broken.jpg"))
    with pytest.raises(BadInputError, match="either --images"):
        run_recipe(beit_dir, tmp_path / "out")


@pytest.mark.parametrize("config", sorted((REPO / "recipes/configs/segmentation").glob("*.yaml")), ids=lambda p: p.stem)
def test_configs_parse(config):
    model_args, args = parse(*segmentation_recipe.ARGUMENTS, args=["--config", str(config)])
    assert model_args.model_name_or_path and args.output_dir.startswith("runs/")


def test_a_decompression_bomb_stops_in_one_line_naming_the_file(tmp_path):
    from tests.test_image_task import decompression_bomb

    bomb = decompression_bomb(tmp_path / "bomb.png")
    count, inputs = inputs_from_files([bomb])
    with pytest.raises(BadInputError, match=r"bomb.png: cannot read the image .*decompression bomb"):
        next(inputs)
