"""Feature-based mode: a frozen backbone's outputs cached per example give the model's own logits."""

from types import SimpleNamespace

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from hf_tasks.modeling.bigru import BiGRUConfig, BiGRUForSequenceClassification
from hf_tasks.errors import BadInputError
from hf_tasks.modeling.feature_cache import FeatureCache
from hf_tasks.surgery import parameter_counts
from hf_tasks.surgery.regime import RegimeArguments, apply_regime

ENCODER = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, vocab_size=100,
               hidden_dropout_prob=0.5, attention_probs_dropout_prob=0.5)
ROWS = [[2, 11, 12, 13, 3], [2, 14, 3], [2, 15, 16, 17, 18, 19, 3]]


def batch(rows, width):
    input_ids = torch.zeros(len(rows), width, dtype=torch.long)
    for index, row in enumerate(rows):
        input_ids[index, : len(row)] = torch.tensor(row)
    return {"input_ids": input_ids, "attention_mask": (input_ids != 0).long(),
            "token_type_ids": torch.zeros_like(input_ids)}


def linear_head_model():
    torch.manual_seed(0)
    return BertForSequenceClassification(BertConfig(**ENCODER, num_labels=2))


def bigru_model():
    torch.manual_seed(0)
    return BiGRUForSequenceClassification(BiGRUConfig(encoder=ENCODER, gru_hidden_size=8, num_labels=2))


def frozen(model):
    for parameter in model.base_model.parameters():
        parameter.requires_grad_(False)
    return model


@pytest.mark.parametrize(("build", "mode"), [(linear_head_model, "first_token"), (bigru_model, "tokens")])
def test_cached_outputs_match_the_backbone_whatever_the_batch_and_padding(build, mode):
    model = frozen(build()).eval()
    with torch.no_grad():
        expected = model(**batch(ROWS, 8)).logits
    cache = FeatureCache(model.base_model, mode)
    with torch.no_grad():
        first = model(**batch(ROWS[:2], 5)).logits  # computes rows 0 and 1
        second = model(**batch(list(reversed(ROWS)), 12)).logits  # row 2 computed, rows 1 and 0 stored
    assert (cache.misses, cache.hits, len(cache.features)) == (3, 2, 3)
    torch.testing.assert_close(first, expected[:2], rtol=0, atol=1e-5)
    torch.testing.assert_close(second, expected.flip(0), rtol=0, atol=1e-5)
    cache.remove()
    assert "forward" not in model.base_model.__dict__ and not cache.features


def test_cached_features_come_from_inference_mode_even_while_training():
    model = frozen(bigru_model())
    with torch.no_grad():
        inference = model.eval().base_model(**batch(ROWS, 7)).last_hidden_state
    cache = FeatureCache(model.base_model, "tokens")
    model.train()  # dropout 0.5 in the backbone would change every computed feature
    inputs = batch(ROWS, 7)
    model(**inputs)
    keys, _ = cache._keys(inputs["input_ids"], inputs["attention_mask"], inputs["token_type_ids"])
    for index, (key, row) in enumerate(zip(keys, ROWS)):
        stored, _ = cache.features[key]
        torch.testing.assert_close(stored, inference[index, : len(row)], rtol=0, atol=1e-6)
    assert model.base_model.training, "the backbone's own mode is restored after computing"


def test_a_trainable_backbone_is_not_cached():
    model = linear_head_model()
    with pytest.raises(ValueError, match="freeze the backbone first"):
        FeatureCache(model.base_model)


def test_calls_the_cache_does_not_cover_run_the_backbone():
    model = frozen(linear_head_model()).eval()
    cache = FeatureCache(model.base_model, "first_token")
    with torch.no_grad():
        outputs = model(**batch(ROWS, 8), output_attentions=True)
    assert outputs.attentions is not None and not cache.features


@pytest.mark.parametrize("build", [linear_head_model, bigru_model])
def test_feature_based_mode_trains_only_the_head_and_drops_no_dropout_in_the_backbone(build):
    model = build()
    head = sum(p.numel() for name, p in model.named_parameters() if not name.startswith(model.base_model_prefix))
    model, callbacks = apply_regime(model, RegimeArguments(feature_based=True), None,
                                    SimpleNamespace(do_train=True, seed=0))
    counts = parameter_counts(model)
    assert callbacks == []
    assert counts["trainable_params"] == head < counts["total_params"]
    model.train()
    with torch.no_grad():
        states = [model.base_model(**batch(ROWS, 8)).last_hidden_state for _ in range(2)]
    assert torch.equal(states[0], states[1]), "the frozen backbone must not apply dropout"
    assert not model.base_model.training


def test_a_left_padded_batch_is_refused_in_one_line():
    model = frozen(linear_head_model()).eval()
    right = batch(ROWS, 8)
    left = {name: values.flip(1) for name, values in right.items()}  # the same rows, padding first
    left["input_ids"] = torch.stack([torch.cat([row[row == 0], row[row != 0].flip(0)]) for row in left["input_ids"]])
    FeatureCache(model.base_model, "first_token")
    with pytest.raises(BadInputError, match="--cache_features needs right padding"):
        model(**left)
