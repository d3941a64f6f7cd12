"""The timm wrapper, the paper head and the "single trainable block" specs (offline, random weights)."""

from __future__ import annotations

import pytest
import timm
import torch
from transformers import (
    AutoModelForImageClassification,
    DeiTConfig,
    DeiTForImageClassification,
    ViTConfig,
    ViTForImageClassification,
)

from hf_tasks.modeling import image_classifier
from hf_tasks.modeling.image_classifier import TimmForImageClassification, is_timm_name
from hf_tasks.modeling.labels import ClassLabels
from hf_tasks.options import HEAD_FAMILIES, ImageHeadArguments, ImageModelArguments
from hf_tasks.errors import BadInputError
from hf_tasks.surgery import parameter_counts, train_only
from hf_tasks.surgery.regime import trainable_parts

CIFAR10 = [str(index) for index in range(10)]
TINY_DEIT_DISTILLED = dict(img_size=32, embed_dim=32, depth=2, num_heads=2)


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def paper_models():
    """The four paper backbones with random weights, built once. On the meta device: parameter
    shapes (all that the counts depend on) without allocating ~700 MB or running timm's init."""
    with torch.device("meta"):
        return {
            name: TimmForImageClassification.from_timm(name, CIFAR10, pretrained_backbone=False)
            for name in ("densenet201", "vgg19", "cait_s24_224", "deit_base_distilled_patch16_224")
        }


def _paper_counts(model) -> dict[str, int]:
    train_only(model, trainable_parts(model, "paper"))
    return parameter_counts(model, by_part=True)


def test_densenet201_last_dense_block_matches_the_paper(paper_models):
    counts = _paper_counts(paper_models["densenet201"])
    assert counts["backbone_trainable_params"] == 6_982_400
    assert counts["head_trainable_params"] == 1920 * 256 + 256 + 256 * 10 + 10


def test_vgg19_block5_and_head_on_512_pooled_features_match_the_paper(paper_models):
    model = paper_models["vgg19"]
    counts = _paper_counts(model)
    assert counts["backbone_trainable_params"] + counts["head_trainable_params"] == 9_573_130
    assert model.head[1].in_features == 512
    # fc6/fc7 (timm's ConvMlp pre_logits) are gone: only the 16 convs of the feature extractor remain.
    assert counts["backbone_params"] == sum(p.numel() for p in model.backbone.features.parameters())


def test_cait_s24_last_class_attention_block_matches_the_paper(paper_models):
    counts = _paper_counts(paper_models["cait_s24_224"])
    assert counts["backbone_trainable_params"] + counts["head_trainable_params"] == 1_877_130


def test_deit_base_distilled_last_block_and_both_heads_match_the_paper(paper_models):
    model = paper_models["deit_base_distilled_patch16_224"]
    counts = _paper_counts(model)
    assert model.head_dist is not None
    assert counts["backbone_trainable_params"] + counts["head_trainable_params"] == 7_488_276


@pytest.mark.parametrize(
    "name, pooled",
    [("densenet201", 1920), ("vgg19", 512), ("cait_s24_224", 384), ("deit_base_distilled_patch16_224", 768)],
)
def test_paper_heads_sit_on_the_pooled_features(paper_models, name, pooled):
    model = paper_models[name]
    pixels = torch.empty(2, 3, 224, 224, device="meta")  # shapes only
    features = model.backbone.forward_head(model.backbone.forward_features(pixels), pre_logits=True)
    assert features.shape == (2, pooled) and model.head[1].in_features == pooled
    assert model(pixel_values=pixels).logits.shape == (2, 10)


def test_meta_device_counts_equal_a_real_cpu_build(paper_models):
    real = TimmForImageClassification.from_timm("densenet201", CIFAR10, pretrained_backbone=False)
    assert _paper_counts(real) == _paper_counts(paper_models["densenet201"])


def test_head_only_and_all_specs(paper_models):
    model = paper_models["cait_s24_224"]
    train_only(model, trainable_parts(model, "none"))
    assert parameter_counts(model, by_part=True)["backbone_trainable_params"] == 0
    train_only(model, trainable_parts(model, "all"))
    counts = parameter_counts(model, by_part=True)
    assert counts["backbone_trainable_params"] == counts["backbone_params"] > 0
    assert counts["head_trainable_params"] == counts["head_params"] > 0


def test_spec_naming_a_missing_module_lists_the_top_level_modules(paper_models):
    model = paper_models["densenet201"]
    with pytest.raises(BadInputError) as raised:
        train_only(model, ["features.denseblock9"])
    message = str(raised.value)
    assert "denseblock9" in message and "features, global_pool" in message and "denseblock4" in message
    with pytest.raises(BadInputError, match="out of range"):
        train_only(paper_models["vgg19"], ["features.99"])


def test_negative_indices_name_the_last_block(paper_models):
    model = paper_models["deit_base_distilled_patch16_224"]
    train_only(model, ["blocks.-1"])
    trainable = {name for name, p in model.backbone.named_parameters() if p.requires_grad}
    assert trainable and all(name.startswith("blocks.11.") for name in trainable)


def test_random_backbone_keeps_timms_own_initialisation():
    # transformers' generic init (normal(0.02) on every conv/linear) must not replace timm's.
    torch.manual_seed(0)
    reference = timm.create_model("test_resnet", pretrained=False, num_classes=0)
    torch.manual_seed(0)
    model = TimmForImageClassification.from_timm("test_resnet", ["a", "b"], pretrained_backbone=False)
    ours = model.backbone.state_dict()
    assert all(torch.equal(value, ours[key]) for key, value in reference.state_dict().items())


def test_frozen_batch_norm_keeps_its_statistics_in_train_mode():
    model = TimmForImageClassification.from_timm("test_resnet", ["a", "b"], pretrained_backbone=False)
    train_only(model, ["layer4"])
    model.train()
    frozen, trainable = model.backbone.bn1, model.backbone.layer4[0].bn1
    assert not frozen.training and trainable.training and model.head.training
    frozen_before, trainable_before = frozen.running_mean.clone(), trainable.running_mean.clone()
    model(pixel_values=torch.randn(4, 3, 32, 32) * 3 + 1)
    assert torch.equal(frozen.running_mean, frozen_before)
    assert not torch.equal(trainable.running_mean, trainable_before)
    train_only(model, trainable_parts(model, "all"))
    assert model.train().backbone.bn1.training


@pytest.mark.parametrize(
    "name, timm_kwargs",
    [("test_resnet", None), ("deit_tiny_distilled_patch16_224", TINY_DEIT_DISTILLED)],
)
def test_save_and_reload_give_identical_logits(tmp_path, name, timm_kwargs):
    torch.manual_seed(0)
    model = TimmForImageClassification.from_timm(
        name, ["cat", "dog", "frog"], pretrained_backbone=False, timm_kwargs=timm_kwargs
    ).eval()
    pixels = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        output = model(pixel_values=pixels, labels=torch.tensor([0, 1, 2, 0]))
    assert output.logits.shape == (4, 3) and output.loss.ndim == 0
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForImageClassification.from_pretrained(tmp_path).eval()
    assert isinstance(reloaded, TimmForImageClassification)
    assert reloaded.config.id2label == {0: "cat", 1: "dog", 2: "frog"}
    with torch.no_grad():
        assert torch.equal(reloaded(pixel_values=pixels).logits, output.logits)


def test_distilled_deit_averages_a_head_on_each_token():
    torch.manual_seed(0)
    model = TimmForImageClassification.from_timm(
        "deit_tiny_distilled_patch16_224", ["a", "b"], pretrained_backbone=False, timm_kwargs=TINY_DEIT_DISTILLED
    ).eval()
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        before = model(pixel_values=pixels).logits
        model.head_dist[-1].bias.add_(torch.tensor([2.0, -2.0]))
        after = model(pixel_values=pixels).logits
    # Shifting only the distillation head's output bias moves the averaged logits by half of it.
    torch.testing.assert_close(after - before, torch.tensor([[1.0, -1.0], [1.0, -1.0]]))


def test_paper_head_layers():
    model = TimmForImageClassification.from_timm("test_resnet", ["a", "b", "c"], pretrained_backbone=False)
    kinds = [type(layer).__name__ for layer in model.head]
    assert kinds == ["Flatten", "Linear", "ELU", "Dropout", "Linear"]
    assert model.head[1].out_features == 256 and model.head[3].p == 0.5 and model.head[4].out_features == 3
    assert model.head_dist is None
    linear = TimmForImageClassification.from_timm("test_resnet", ["a", "b"], pretrained_backbone=False, head="linear")
    assert [type(layer).__name__ for layer in linear.head] == ["Flatten", "Linear"]


def test_timm_names_are_told_apart_from_hub_ids(tmp_path):
    assert is_timm_name("densenet201") and is_timm_name("vit_base_patch16_224.augreg_in21k")
    assert is_timm_name("hf-hub:timm/densenet201.tv_in1k") and is_timm_name(f"local-dir:{tmp_path}")
    assert not is_timm_name("facebook/deit-small-distilled-patch16-224")
    assert not is_timm_name(str(tmp_path))
    # and the option group lets both timm sources through to the builder
    for source in ("hf-hub:timm/densenet201.tv_in1k", f"local-dir:{tmp_path}"):
        assert ImageModelArguments(model_name_or_path=source).source == source


@pytest.mark.parametrize(
    "config_class, model_class", [(ViTConfig, ViTForImageClassification), (DeiTConfig, DeiTForImageClassification)]
)
def test_transformers_image_models_build_with_the_labels_and_the_paper_spec(tmp_path, config_class, model_class):
    config = config_class(
        image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64
    )
    model_class(config).save_pretrained(tmp_path)
    model_args = ImageModelArguments(model_name_or_path=str(tmp_path))
    model = image_classifier.build_model(model_args, ImageHeadArguments(), ClassLabels(("a", "b", "c")),
                                         image_classifier.load_processor(model_args))
    assert isinstance(model, model_class) and model.config.num_labels == 3
    assert train_only(model, trainable_parts(model, "paper")) == ["layers.-1", "layernorm"]
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    prefix = model.base_model_prefix
    assert any(name.startswith(f"{prefix}.layers.1.") for name in trainable)
    assert not any(name.startswith((f"{prefix}.layers.0.", f"{prefix}.embeddings")) for name in trainable)
    assert {"classifier.weight", "classifier.bias"} <= trainable


def test_a_timm_backbone_outside_the_paper_trains_its_last_stage_as_timm_groups_it():
    model = TimmForImageClassification.from_timm("test_convnext", ["a", "b"], pretrained_backbone=False)
    last_stage = len(model.backbone.stages) - 1
    # With its classifier taken off, the backbone's `head` holds only the final norm, which timm groups with
    # the last stage (as DenseNet's norm5 with its last dense block); it is named head.norm, because `head`
    # alone is the classifier of the wrapping model.
    assert trainable_parts(model, "paper") == [f"stages.{last_stage}", "head.norm"]
    train_only(model, trainable_parts(model, "paper"))
    trainable = {name for name, p in model.backbone.named_parameters() if p.requires_grad}
    assert {name.split(".")[0] + "." + name.split(".")[1] for name in trainable} == {f"stages.{last_stage}",
                                                                                      "head.norm"}


def test_a_vit_with_a_pooled_fc_norm_trains_its_last_block_with_that_norm():
    # timm puts a ViT's fc_norm (global_pool avg) in a group of its own, after the last block.
    model = TimmForImageClassification.from_timm("vit_tiny_patch16_224", ["a", "b"], pretrained_backbone=False,
                                                 timm_kwargs={"global_pool": "avg", "img_size": 32, "depth": 2})
    assert trainable_parts(model, "paper") == ["blocks.1", "fc_norm"]


def test_unknown_paper_spec_and_unknown_timm_model_fail_clearly():
    from transformers import ConvNextConfig, ConvNextForImageClassification

    convnext = ConvNextForImageClassification(ConvNextConfig(hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1]))
    with pytest.raises(BadInputError, match="No paper 'single trainable block' is known for hf:convnext"):
        trainable_parts(convnext, "paper")
    # The model class is self-contained shipped code, so it raises a plain ValueError with the message.
    with pytest.raises(ValueError, match="timm has no model"):
        TimmForImageClassification.from_timm("no_such_model_xyz", ["a", "b"], pretrained_backbone=False)


def test_head_vocabulary_matches_every_recipe_and_old_spellings_build_the_same_heads():
    from hf_tasks.modeling.timm_classifier import HEAD_KINDS, HEAD_SYNONYMS, ClassifierMLP

    image_heads = HEAD_FAMILIES["image"]
    assert image_heads.names == HEAD_KINDS and dict(image_heads.synonyms) == HEAD_SYNONYMS
    for old, current in HEAD_SYNONYMS.items():
        models = [TimmForImageClassification.from_timm("test_resnet", ["a", "b"], pretrained_backbone=False, head=head)
                  for head in (old, current)]
        assert [model.config.head for model in models] == [current, current]
        assert [[type(layer).__name__ for layer in model.head] for model in models] == 2 * [
            [type(layer).__name__ for layer in ClassifierMLP(current, 8, 2)]
        ]


def test_a_model_saved_with_an_old_head_name_loads_back(tmp_path):
    model = TimmForImageClassification.from_timm("test_resnet", ["a", "b"], pretrained_backbone=False, head="auto")
    model.config.head = "linear"  # as a run folder of an earlier version wrote it
    model.save_pretrained(tmp_path)
    reloaded = TimmForImageClassification.from_pretrained(tmp_path).eval()
    pixels = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(reloaded(pixels).logits, model.eval()(pixels).logits)
