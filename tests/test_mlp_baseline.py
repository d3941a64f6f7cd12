"""The image baselines: the MLP (seed layer sizes, Auto-class round trip, learning a synthetic task)
and the MLP and BEiT configs of the CIFAR-10 recipe."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml
from datasets import Dataset
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForImageClassification,
    BeitConfig,
    BeitForImageClassification,
    BeitImageProcessor,
    Trainer,
    TrainingArguments,
)

import cifar10
from hf_tasks.args import parse
from hf_tasks.modeling.mlp import MLPForImageClassification, build_mlp_classifier
from hf_tasks.surgery import train_only
from hf_tasks.tasks.image import collate_images
from tests.conftest import REPO, accuracy_of_predictions

CLASSES = ["top-left", "top-right", "bottom-left", "bottom-right"]


def quadrant_images(count: int, seed: int, size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy images whose class is the quadrant holding a bright square."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, len(CLASSES), (count,), generator=generator)
    images = torch.randn(count, 3, size, size, generator=generator) * 0.5
    half = size // 2
    for index, label in enumerate(labels.tolist()):
        row, column = divmod(label, 2)
        images[index, :, row * half:(row + 1) * half, column * half:(column + 1) * half] += 1.0
    return images, labels


def test_default_layers_are_the_seed_baseline():
    model = build_mlp_classifier([str(digit) for digit in range(10)])
    linears = [module for module in model.modules() if isinstance(module, nn.Linear)]
    widths = [linears[0].in_features] + [linear.out_features for linear in linears]
    assert widths == [3072, 4096, 2048, 1024, 512, 256, 64, 10]
    assert model.base_model is model.mlp and model.classifier is linears[-1]


def test_cifar10_config_builds_the_seed_mlp_for_ten_classes():
    config = AutoConfig.from_pretrained(str(REPO / "recipes/configs/cifar10/mlp_baseline.json"), num_labels=10)
    model = AutoModelForImageClassification.from_config(config)
    linears = [module for module in model.modules() if isinstance(module, nn.Linear)]
    assert ([linears[0].in_features] + [linear.out_features for linear in linears]
            == [3072, 4096, 2048, 1024, 512, 256, 64, 10])


def test_saves_and_reloads_through_the_auto_class(tmp_path):
    torch.manual_seed(0)
    model = build_mlp_classifier(CLASSES, image_size=8, hidden_sizes=[16, 8], dropout=0.1).eval()
    images, _ = quadrant_images(4, seed=1)
    with torch.no_grad():
        logits = model(pixel_values=images).logits
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForImageClassification.from_pretrained(tmp_path).eval()
    assert isinstance(reloaded, MLPForImageClassification)
    assert list(reloaded.config.hidden_sizes) == [16, 8] and reloaded.config.id2label[3] == "bottom-right"
    with torch.no_grad():
        torch.testing.assert_close(reloaded(pixel_values=images).logits, logits)


def test_wrong_image_size_names_the_fix():
    model = build_mlp_classifier(CLASSES, image_size=8, hidden_sizes=[4])
    with pytest.raises(ValueError, match="resize the images to 8 pixels"):
        model(pixel_values=torch.zeros(1, 3, 32, 32))


def test_backbone_freezing_leaves_only_the_classifier_trainable():
    model = build_mlp_classifier(CLASSES, image_size=8, hidden_sizes=[16, 8])
    train_only(model, [])
    trainable = {name for name, parameter in model.named_parameters() if parameter.requires_grad}
    assert trainable == {"classifier.weight", "classifier.bias"}


def test_learns_a_synthetic_task_well_above_chance(tmp_path):
    torch.manual_seed(0)
    model = build_mlp_classifier(CLASSES, image_size=8, hidden_sizes=[64, 32])
    train_images, train_labels = quadrant_images(384, seed=1)
    test_images, test_labels = quadrant_images(256, seed=2)
    train = Dataset.from_dict({"pixel_values": train_images.numpy(),
                               "labels": train_labels.numpy()}).with_format("torch")
    args = TrainingArguments(
        output_dir=str(tmp_path), use_cpu=True, report_to="none", num_train_epochs=3, learning_rate=1e-3,
        per_device_train_batch_size=32, save_strategy="no", disable_tqdm=True, seed=0,
    )
    Trainer(model=model, args=args, train_dataset=train, data_collator=collate_images).train()
    with torch.no_grad():
        predicted = model.eval()(pixel_values=test_images).logits.argmax(dim=-1)
    accuracy = float((predicted == test_labels).float().mean())
    assert accuracy > 0.9, f"accuracy {accuracy:.3f}; chance is {1 / len(CLASSES):.2f}"
    assert np.unique(predicted.numpy()).size == len(CLASSES)


# ---- through the CIFAR-10 recipe (generated shapes, one short epoch) ---------------------------

def run_cifar10(tmp_path, config: str, *overrides: str) -> dict:
    args = ["--config", str(REPO / "recipes/configs/cifar10" / config), "--dataset_name", "",
            "--data_dir", str(tmp_path / "shapes"), "--generate_synthetic_data", "true",
            "--output_dir", str(tmp_path / "run"), "--use_cpu", "true", "--bf16", "false", "--report_to", "none",
            "--num_train_epochs", "1", "--max_train_samples", "32", "--max_eval_samples", "16",
            "--max_predict_samples", "16", "--per_device_train_batch_size", "16", "--dataloader_num_workers", "0",
            "--save_strategy", "no", "--load_best_model_at_end", "false", "--disable_tqdm", "true", *overrides]
    parsed = parse(*cifar10.ARGUMENTS, args=args)
    return cifar10.main(parsed)


def test_mlp_baseline_config_runs_through_the_cifar10_recipe(tmp_path):
    small = tmp_path / "mlp.json"
    small.write_text('{"model_type": "hf_tasks_mlp", "image_size": 32, "hidden_sizes": [16, 8]}')
    results = run_cifar10(tmp_path, "mlp_baseline.yaml", "--config_name", str(small))
    expected = (3072 * 16 + 16) + (16 * 8 + 8) + (8 * 4 + 4)  # four shape classes
    assert results["trainable_params"] == results["total_params"] == expected
    assert results["test_accuracy"] == pytest.approx(accuracy_of_predictions(tmp_path / "run/test_predictions.csv"))
    reloaded = AutoModelForImageClassification.from_pretrained(tmp_path / "run")
    assert isinstance(reloaded, MLPForImageClassification) and list(reloaded.config.hidden_sizes) == [16, 8]


def test_beit_config_trains_only_the_last_block_norms_and_head(tmp_path):
    backbone = tmp_path / "tiny-beit"
    config = BeitConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=3, num_attention_heads=2,
                        intermediate_size=64, use_mean_pooling=True)
    BeitForImageClassification(config).save_pretrained(backbone)
    BeitImageProcessor(size={"height": 32, "width": 32}).save_pretrained(backbone)
    results = run_cifar10(tmp_path, "beit_base.yaml", "--model_name_or_path", str(backbone), "--image_size", "32")

    spec = yaml.safe_load((REPO / "recipes/configs/cifar10/beit_base.yaml").read_text())["trainable_modules"]
    model = AutoModelForImageClassification.from_pretrained(tmp_path / "run")
    trainable_parts = [model.beit.layers[-1], model.beit.layernorm, model.beit.pooler, model.classifier]
    assert spec == "layers.-1,layernorm,pooler"
    assert results["trainable_params"] == sum(p.numel() for part in trainable_parts for p in part.parameters())
    assert results["trainable_params"] < results["total_params"]
