"""The collator and the pooled head: padding never changes a clip's prediction; save/reload; loss; freezing."""

import numpy as np
import pytest
import torch
from transformers import (
    AutoModelForAudioClassification,
    HubertConfig,
    HubertForSequenceClassification,
    Wav2Vec2FeatureExtractor,
)

from hf_tasks.modeling.audio import PooledAudioClassifier, PooledAudioClassifierConfig
from hf_tasks.tasks.audio import AudioCollator

RATE = 16000


def tiny_hubert(layer_norm: bool, num_labels: int = 3) -> HubertConfig:
    return HubertConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        conv_dim=(16, 16, 16), conv_stride=(5, 4, 4), conv_kernel=(10, 8, 4),
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
        feat_extract_norm="layer" if layer_norm else "group", do_stable_layer_norm=layer_norm,
        classifier_proj_size=16, num_labels=num_labels,
    )


def feature_extractor(layer_norm: bool) -> Wav2Vec2FeatureExtractor:
    # As released: layer-norm checkpoints take an attention mask, group-norm ones (hubert-base) must not.
    return Wav2Vec2FeatureExtractor(sampling_rate=RATE, do_normalize=True, return_attention_mask=layer_norm)


def pooled_model(layer_norm: bool, **head) -> PooledAudioClassifier:
    torch.manual_seed(0)
    config = PooledAudioClassifierConfig(
        encoder=tiny_hubert(layer_norm), head_hidden_size=16, encoder_takes_attention_mask=layer_norm,
        num_labels=3, **head,
    )
    return PooledAudioClassifier(config).eval()


def clips():
    rng = np.random.default_rng(0)
    return [rng.normal(0, 0.3, size).astype(np.float32) for size in (4000, 9000, 16000)]


def logits_alone_and_in_batch(model, collator, clip_list):
    """Logits of each clip run alone, and of the same clips run in one padded batch."""
    with torch.no_grad():
        alone = torch.cat([model(**_inputs(collator([{"input_values": clip, "labels": 0}]))).logits
                           for clip in clip_list])
        batch = collator([{"input_values": clip, "labels": 0} for clip in clip_list])
        together = model(**_inputs(batch)).logits
    return alone, together, batch


def _inputs(batch):
    return {key: value for key, value in batch.items() if key != "labels"}


@pytest.mark.parametrize("layer_norm", [True, False], ids=["layer-norm+mask", "group-norm-no-mask"])
def test_padding_never_changes_the_pooled_heads_prediction(layer_norm):
    collator = AudioCollator(feature_extractor(layer_norm), always_mask=True)
    alone, together, batch = logits_alone_and_in_batch(pooled_model(layer_norm), collator, clips())
    assert batch["input_values"].shape == (3, 16000)
    assert batch["attention_mask"].sum(-1).tolist() == [4000, 9000, 16000]
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-4)


def test_the_stock_head_is_padding_invariant_with_a_mask():
    torch.manual_seed(0)
    model = HubertForSequenceClassification(tiny_hubert(layer_norm=True)).eval()
    collator = AudioCollator(feature_extractor(layer_norm=True))
    alone, together, batch = logits_alone_and_in_batch(model, collator, clips())
    assert "attention_mask" in batch
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-4)


def test_group_norm_checkpoints_get_no_attention_mask_and_the_stock_head_then_sees_padding():
    """Why the pooled head exists: without a mask, HuBERT-base's own head pools over padding."""
    torch.manual_seed(0)
    model = HubertForSequenceClassification(tiny_hubert(layer_norm=False)).eval()
    collator = AudioCollator(feature_extractor(layer_norm=False))
    alone, together, batch = logits_alone_and_in_batch(model, collator, clips())
    assert "attention_mask" not in batch
    assert not torch.allclose(together[:2], alone[:2], atol=1e-3)
    torch.testing.assert_close(together[2], alone[2], atol=1e-5, rtol=1e-4)  # the longest clip has no padding


def test_collator_normalises_each_clip_over_its_own_samples():
    collator = AudioCollator(feature_extractor(layer_norm=False), always_mask=True)
    short, long = np.full(100, 3.0, np.float32) + np.linspace(0, 1, 100, dtype=np.float32), np.ones(400, np.float32)
    batch = collator([{"input_values": short, "labels": 1}, {"input_values": long, "labels": 2}])
    first = batch["input_values"][0]
    assert first[:100].mean().abs() < 1e-4 and abs(first[:100].std(unbiased=False).item() - 1) < 1e-3
    assert torch.all(first[100:] == 0)
    assert batch["labels"].tolist() == [1, 2]


def test_pooled_classifier_saves_and_reloads_through_the_auto_class(tmp_path):
    model = pooled_model(layer_norm=False, class_weights=[1.0, 2.0, 0.5])
    collator = AudioCollator(feature_extractor(layer_norm=False), always_mask=True)
    batch = collator([{"input_values": clip, "labels": 0} for clip in clips()])
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForAudioClassification.from_pretrained(tmp_path).eval()
    assert isinstance(reloaded, PooledAudioClassifier)
    assert reloaded.config.class_weights == [1.0, 2.0, 0.5]
    assert reloaded.config.encoder.feat_extract_norm == "group"
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**_inputs(batch)).logits, model(**_inputs(batch)).logits)


def test_class_weights_weigh_the_cross_entropy():
    model = pooled_model(layer_norm=True, class_weights=[1.0, 3.0, 0.5])
    collator = AudioCollator(feature_extractor(layer_norm=True))
    batch = collator([{"input_values": clip, "labels": label} for clip, label in zip(clips(), (0, 1, 1))])
    with torch.no_grad():
        output = model(**batch)
    expected = torch.nn.functional.cross_entropy(output.logits, batch["labels"], weight=torch.tensor([1.0, 3.0, 0.5]))
    unweighted = torch.nn.functional.cross_entropy(output.logits, batch["labels"])
    torch.testing.assert_close(output.loss, expected)
    assert not torch.isclose(output.loss, unweighted)


def test_freezing_the_feature_encoder_freezes_the_convolutions_only():
    model = pooled_model(layer_norm=False)
    model.freeze_feature_encoder()
    frozen = {name for name, parameter in model.named_parameters() if not parameter.requires_grad}
    assert frozen and all(name.startswith("encoder.feature_extractor.") for name in frozen)
    assert all(p.requires_grad for n, p in model.named_parameters()
               if n.startswith(("encoder.encoder.", "dense", "classifier")))


def test_surgery_freezes_encoder_layers_inside_the_pooled_head():
    from hf_tasks.surgery import freeze

    model = pooled_model(layer_norm=False)
    frozen = freeze(model, ["layers:0"])
    assert frozen and all(name.startswith("encoder.encoder.layers.0.") for name in frozen)
    assert all(p.requires_grad for n, p in model.named_parameters() if n.startswith("encoder.encoder.layers.1."))


@pytest.mark.filterwarnings("ignore:At least one mel filter")
def test_collator_refuses_spectrogram_feature_extractors():
    from transformers import ASTFeatureExtractor

    with pytest.raises(ValueError, match="raw waveforms"):
        AudioCollator(ASTFeatureExtractor())
