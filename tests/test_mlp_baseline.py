"""The MLP image baseline: the seed's layer sizes, Auto-class round trip, and learning a synthetic task."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from datasets import Dataset
from torch import nn
from transformers import AutoConfig, AutoModelForImageClassification, Trainer, TrainingArguments

from hf_tasks.modeling.mlp import MLPForImageClassification, build_mlp_classifier
from hf_tasks.modeling.timm_model import train_only
from hf_tasks.tasks.image import collate_images
from tests.conftest import REPO

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
    assert [linears[0].in_features] + [linear.out_features for linear in linears] == [3072, 4096, 2048, 1024, 512, 256, 64, 10]


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
    train_only(model, "none")
    trainable = {name for name, parameter in model.named_parameters() if parameter.requires_grad}
    assert trainable == {"classifier.weight", "classifier.bias"}


def test_learns_a_synthetic_task_well_above_chance(tmp_path):
    torch.manual_seed(0)
    model = build_mlp_classifier(CLASSES, image_size=8, hidden_sizes=[64, 32])
    train_images, train_labels = quadrant_images(384, seed=1)
    test_images, test_labels = quadrant_images(256, seed=2)
    train = Dataset.from_dict({"pixel_values": train_images.numpy(), "labels": train_labels.numpy()}).with_format("torch")
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
