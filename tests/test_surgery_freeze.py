"""Freezing: exactly the named parameters stop training, and the optimizer never sees them."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers import (
    AlbertConfig,
    AlbertForSequenceClassification,
    BertConfig,
    BertForSequenceClassification,
    BertModel,
    HubertConfig,
    HubertForSequenceClassification,
    Trainer,
    TrainingArguments,
    ViTConfig,
    ViTForImageClassification,
)

from hf_tasks.surgery import SurgeryCallback, SurgeryArguments, freeze, parameter_counts, parse_layer_set, train_only
from hf_tasks.errors import BadInputError
from tests.conftest import TINY_SPEECH_FEATURE_ENCODER

H, I, V, P, T, LAYERS = 16, 32, 50, 40, 2, 4


def tiny_bert(**overrides) -> BertForSequenceClassification:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=V, hidden_size=H, num_hidden_layers=LAYERS, num_attention_heads=4,
                        intermediate_size=I, max_position_embeddings=P, type_vocab_size=T, num_labels=3, **overrides)
    return BertForSequenceClassification(config)


# Parameter counts from the architecture, written out by hand.
EMBEDDINGS = V * H + P * H + T * H + 2 * H  # word, position, token type, LayerNorm
LAYER = 4 * (H * H + H) + 2 * H + (H * I + I) + (I * H + H) + 2 * H  # q,k,v,out; LN; FFN in/out; LN
POOLER = H * H + H
CLASSIFIER = H * 3 + 3


def test_hand_counted_total_matches():
    assert parameter_counts(tiny_bert())["total_params"] == EMBEDDINGS + LAYERS * LAYER + POOLER + CLASSIFIER


def test_freeze_embeddings_and_first_layers_exactly():
    model = tiny_bert()
    frozen = set(freeze(model, ["embeddings", "layers:0-1"]))
    for name, parameter in model.named_parameters():
        expected_frozen = name.startswith(("bert.embeddings.", "bert.encoder.layer.0.", "bert.encoder.layer.1."))
        assert parameter.requires_grad is not expected_frozen, name
        assert (name in frozen) is expected_frozen
    counts = parameter_counts(model)
    assert counts["trainable_params"] == 2 * LAYER + POOLER + CLASSIFIER
    assert counts["total_params"] == EMBEDDINGS + LAYERS * LAYER + POOLER + CLASSIFIER


@pytest.mark.parametrize(
    ("spec", "trainable"),
    [
        (["all_layers"], EMBEDDINGS + POOLER + CLASSIFIER),
        (["backbone"], CLASSIFIER),
        (["pooler", "layers:first:3"], EMBEDDINGS + LAYER + CLASSIFIER),
        (["layers:every:2"], EMBEDDINGS + 2 * LAYER + POOLER + CLASSIFIER),
        (["bert.encoder.layer.3.attention"], None),
    ],
)
def test_freeze_groups(spec, trainable):
    model = tiny_bert()
    freeze(model, spec)
    if trainable is None:  # a module name: its q,k,v,out and LayerNorm
        trainable = EMBEDDINGS + LAYERS * LAYER + POOLER + CLASSIFIER - (4 * (H * H + H) + 2 * H)
    assert parameter_counts(model)["trainable_params"] == trainable


def test_frozen_parameters_are_not_in_the_optimizer(tmp_path):
    model = tiny_bert()
    trainer = Trainer(
        model=model,
        args=TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none"),
        callbacks=[SurgeryCallback(SurgeryArguments(freeze=["embeddings", "layers:0-2"]))],
    )
    optimizer = trainer.create_optimizer()
    in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
    frozen = {id(p) for name, p in model.named_parameters() if name.startswith(
        ("bert.embeddings.", "bert.encoder.layer.0.", "bert.encoder.layer.1.", "bert.encoder.layer.2."))}
    trainable = {id(p) for p in model.parameters()} - frozen
    assert in_optimizer == trainable


def test_freeze_backbone_nested_in_a_custom_head():
    class Wrapped(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = BertModel(BertConfig(vocab_size=V, hidden_size=H, num_hidden_layers=2,
                                                 num_attention_heads=4, intermediate_size=I))
            self.head = nn.GRU(H, 8, batch_first=True)

    model = Wrapped()
    freeze(model, ["backbone"])
    assert [name for name, p in model.named_parameters() if p.requires_grad] == [
        name for name, _ in model.head.named_parameters(prefix="head")
    ]


def test_freeze_speech_and_vision_encoders():
    hubert = HubertForSequenceClassification(HubertConfig(
        hidden_size=H, num_hidden_layers=2, num_attention_heads=4, intermediate_size=I, **TINY_SPEECH_FEATURE_ENCODER))
    freeze(hubert, ["embeddings", "layers:0"])
    trainable = {name.split(".")[1] for name, p in hubert.named_parameters()
                 if p.requires_grad and name.startswith("hubert.")}
    assert trainable == {"encoder"}
    assert all(p.requires_grad for p in hubert.hubert.encoder.layers[1].parameters())
    assert not any(p.requires_grad for p in hubert.hubert.feature_extractor.parameters())
    assert not any(p.requires_grad for p in hubert.hubert.encoder.pos_conv_embed.parameters())

    vit = ViTForImageClassification(ViTConfig(image_size=16, patch_size=8, hidden_size=H, num_hidden_layers=2,
                                              num_attention_heads=4, intermediate_size=I))
    freeze(vit, ["backbone"])
    assert [name for name, p in vit.named_parameters() if p.requires_grad] == ["classifier.weight", "classifier.bias"]


def test_freeze_and_delete_layers_of_a_timm_vision_transformer():
    timm = pytest.importorskip("timm")
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, depth=3,
                              num_classes=5)
    freeze(model, ["layers:0-1", "embeddings"])
    trainable = {name.split(".")[0] + ("." + name.split(".")[1] if name.startswith("blocks") else "")
                 for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"blocks.2", "norm", "head"}
    freeze(model, ["backbone"])
    assert [name for name, p in model.named_parameters() if p.requires_grad] == ["head.weight", "head.bias"]
    with pytest.raises(BadInputError, match="3 encoder layers .* fused query/key/value"):
        freeze(model, ["pooler"])


def test_bad_specs_say_what_exists():
    model = tiny_bert()
    with pytest.raises(BadInputError, match=r"outside the model's layers 0-3"):
        freeze(model, ["layers:2-7"])
    with pytest.raises(BadInputError, match=r"Available: embeddings, all_layers, pooler, backbone"):
        freeze(model, ["decoder"])
    albert = AlbertForSequenceClassification(AlbertConfig(vocab_size=V, embedding_size=8, hidden_size=H,
                                                          num_hidden_layers=4, num_attention_heads=4,
                                                          intermediate_size=I))
    with pytest.raises(BadInputError, match="share"):
        freeze(albert, ["layers:0-1"])
    freeze(albert, ["all_layers"])
    assert not any(p.requires_grad for p in albert.albert.encoder.albert_layer_groups.parameters())


@pytest.mark.parametrize(
    ("spec", "expected"),
    [("0-2", [0, 1, 2]), ("0,2, 5", [0, 2, 5]), ("0-1,4-5", [0, 1, 4, 5]), ("first:3", [0, 1, 2]),
     ("last:2", [4, 5]), ("every:2", [0, 2, 4]), ("every:3", [0, 3])],
)
def test_layer_sets(spec, expected):
    assert parse_layer_set(spec, 6) == expected


@pytest.mark.parametrize("spec", ["6", "first:7", "2-1", "a-b", "every:0", ""])
def test_bad_layer_sets(spec):
    with pytest.raises(BadInputError):
        parse_layer_set(spec, 6)


def test_the_freeze_language_works_on_models_without_a_transformer_encoder():
    timm = pytest.importorskip("timm")
    model = timm.create_model("test_resnet", pretrained=False, num_classes=3)  # its own backbone, no encoder
    freeze(model, ["layer4.-1"])  # negative indices count from the end of a Sequential
    frozen = {name for name, p in model.named_parameters() if not p.requires_grad}
    assert frozen and all(name.startswith(f"layer4.{len(model.layer4) - 1}.") for name in frozen)
    train_only(model, ["layer4"])
    trainable = {name.split(".")[0] for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"layer4", "fc"}
    counts = parameter_counts(model, by_part=True)
    head = sum(p.numel() for p in model.fc.parameters())
    assert counts["head_params"] == counts["head_trainable_params"] == head
    assert counts["backbone_trainable_params"] == sum(p.numel() for p in model.layer4.parameters())
    assert counts["backbone_params"] + head == counts["total_params"]
    with pytest.raises(BadInputError,
                       match=r"'layer4' has no module 'x'.*top-level modules: conv1.*Available: backbone"):
        freeze(model, ["layer4.x"])


def test_train_only_trains_the_named_parts_and_the_head_of_a_transformer():
    model = tiny_bert()
    freeze(model, ["classifier"])
    assert train_only(model, ["layers:last:1", "pooler"]) == ["layers:last:1", "pooler"]
    assert parameter_counts(model)["trainable_params"] == LAYER + POOLER + CLASSIFIER  # the head trains again
    train_only(model, ["backbone"])
    assert parameter_counts(model, by_part=True)["backbone_trainable_params"] == EMBEDDINGS + LAYERS * LAYER + POOLER
    train_only(model, [])
    assert parameter_counts(model)["trainable_params"] == CLASSIFIER
