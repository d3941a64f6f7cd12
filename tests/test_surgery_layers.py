"""Layer deletion: the right layers stay, the config follows, and the saved model reloads identically."""

from __future__ import annotations

import pytest
import torch
from transformers import (
    AlbertConfig,
    AlbertForSequenceClassification,
    AutoModelForSequenceClassification,
    BertConfig,
    BertForSequenceClassification,
    HubertConfig,
    HubertForSequenceClassification,
    ViTConfig,
    ViTForImageClassification,
)

from hf_tasks.surgery import keep_layers, parameter_counts
from hf_tasks.errors import BadInputError
from tests.conftest import TINY_SPEECH_FEATURE_ENCODER

H, I = 16, 32
LAYER = 4 * (H * H + H) + 2 * H + (H * I + I) + (I * H + H) + 2 * H


def tiny_bert(layers: int = 4) -> BertForSequenceClassification:
    torch.manual_seed(0)
    return BertForSequenceClassification(BertConfig(
        vocab_size=50, hidden_size=H, num_hidden_layers=layers, num_attention_heads=4, intermediate_size=I,
        num_labels=3)).eval()


def text_batch() -> dict:
    generator = torch.Generator().manual_seed(1)
    mask = torch.ones(3, 9, dtype=torch.long)
    mask[0, 6:] = 0
    return {"input_ids": torch.randint(5, 50, (3, 9), generator=generator), "attention_mask": mask}


def logits(model, batch) -> torch.Tensor:
    with torch.no_grad():
        return model(**batch).logits


def test_keep_every_other_layer_keeps_those_weights_and_renumbers(tmp_path):
    model = tiny_bert()
    originals = [layer.attention.self.query.weight.clone() for layer in model.bert.encoder.layer]
    before = parameter_counts(model)["total_params"]
    assert keep_layers(model, "every:2") == [0, 2]
    layers = model.bert.encoder.layer
    assert len(layers) == 2 and model.config.num_hidden_layers == 2
    assert torch.equal(layers[1].attention.self.query.weight, originals[2])
    assert [layer.attention.self.layer_idx for layer in layers] == [0, 1]
    assert parameter_counts(model)["total_params"] == before - 2 * LAYER

    batch = text_batch()
    expected = logits(model, batch)
    assert expected.shape == (3, 3)
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert torch.equal(logits(reloaded, batch), expected)


def test_kept_layers_compute_what_the_full_model_computes_up_to_them():
    model = tiny_bert()
    batch = text_batch()
    with torch.no_grad():
        hidden = model.bert(**batch, output_hidden_states=True).hidden_states[3]  # after layers 0-2
    keep_layers(model, "first:3")
    with torch.no_grad():
        assert torch.allclose(model.bert(**batch).last_hidden_state, hidden, atol=1e-6)


@pytest.mark.parametrize("kind", ["vit", "hubert"])
def test_vision_and_speech_encoders_reload_identically(tmp_path, kind):
    torch.manual_seed(0)
    common = dict(hidden_size=H, num_hidden_layers=3, num_attention_heads=4, intermediate_size=I, num_labels=2)
    if kind == "vit":
        model = ViTForImageClassification(ViTConfig(image_size=16, patch_size=8, **common))
        batch = {"pixel_values": torch.randn(2, 3, 16, 16)}
    else:
        model = HubertForSequenceClassification(HubertConfig(**TINY_SPEECH_FEATURE_ENCODER, **common))
        batch = {"input_values": torch.randn(2, 1000)}
    model.eval()
    keep_layers(model, "0,2")
    expected = logits(model, batch)
    model.save_pretrained(tmp_path)
    reloaded = type(model).from_pretrained(tmp_path).eval()
    assert reloaded.config.num_hidden_layers == 2
    assert torch.equal(logits(reloaded, batch), expected)


def test_albert_shares_weights_so_only_fewer_runs_make_sense(tmp_path):
    torch.manual_seed(0)
    model = AlbertForSequenceClassification(AlbertConfig(
        vocab_size=50, embedding_size=8, hidden_size=H, num_hidden_layers=4, num_attention_heads=4,
        intermediate_size=I)).eval()
    with pytest.raises(BadInputError, match="share weights.*first:N"):
        keep_layers(model, "0,2")
    total = parameter_counts(model)["total_params"]
    keep_layers(model, "first:2")
    assert model.config.num_hidden_layers == 2
    assert parameter_counts(model)["total_params"] == total  # the shared weights all stay
    batch = text_batch()
    expected = logits(model, batch)
    model.save_pretrained(tmp_path)
    assert torch.equal(logits(AlbertForSequenceClassification.from_pretrained(tmp_path).eval(), batch), expected)


def test_bad_keep_spec_names_the_layers_that_exist():
    with pytest.raises(BadInputError, match=r"0-3 \(4 layers\)"):
        keep_layers(tiny_bert(), "0-5")


def test_deleting_layers_renumbers_recorded_pruned_heads(tmp_path):
    from hf_tasks.surgery import from_pretrained, prune_heads

    model = tiny_bert()
    prune_heads(model, {1: [0], 2: [3], 3: [1, 2]})
    keep_layers(model, "2-3")
    assert model.config.pruned_heads == {"0": [3], "1": [1, 2]}
    batch = text_batch()
    expected = logits(model, batch)
    model.save_pretrained(tmp_path)
    assert torch.equal(logits(from_pretrained(AutoModelForSequenceClassification, str(tmp_path)).eval(), batch),
                       expected)
