"""Head pruning: gates, importance, physical removal, and reloading the pruned model."""

from __future__ import annotations

import pytest
import torch
from transformers import (
    AlbertConfig,
    AlbertForSequenceClassification,
    AutoModelForSequenceClassification,
    BertConfig,
    BertForSequenceClassification,
    DeiTConfig,
    DeiTForImageClassification,
    HubertConfig,
    HubertForSequenceClassification,
)
from transformers.modeling_outputs import SequenceClassifierOutput

from hf_tasks.surgery import (
    HeadGates,
    from_pretrained,
    head_importance,
    keep_layers,
    lowest_heads,
    parameter_counts,
    prune_heads,
    pruned_heads_of,
)
from hf_tasks.errors import BadInputError
from tests.conftest import TINY_SPEECH_FEATURE_ENCODER

H, HEADS, I = 16, 4, 32
D = H // HEADS
PER_HEAD = 3 * (H * D + D) + D * H  # q, k, v rows with bias; output projection columns


def tiny_bert(layers: int = 3) -> BertForSequenceClassification:
    torch.manual_seed(0)
    return BertForSequenceClassification(BertConfig(
        vocab_size=50, hidden_size=H, num_hidden_layers=layers, num_attention_heads=HEADS, intermediate_size=I,
        num_labels=3)).eval()


def text_batch(labels: bool = False, size: int = 4, seed: int = 1) -> dict:
    generator = torch.Generator().manual_seed(seed)
    mask = torch.ones(size, 9, dtype=torch.long)
    mask[0, 6:] = 0
    batch = {"input_ids": torch.randint(5, 50, (size, 9), generator=generator), "attention_mask": mask}
    if labels:
        batch["labels"] = torch.randint(0, 3, (size,), generator=generator)
    return batch


def logits(model, batch) -> torch.Tensor:
    with torch.no_grad():
        return model(**batch).logits


def gated_logits(model, batch, masks: dict[int, list[int]]) -> torch.Tensor:
    gates = HeadGates(model)
    for layer, heads in masks.items():
        gates.values[layer] = torch.tensor([0.0 if head in heads else 1.0 for head in range(HEADS)])
    try:
        return logits(model, batch)
    finally:
        gates.remove()


def test_pruning_heads_with_zero_gates_leaves_outputs_unchanged():
    model = tiny_bert()
    batch = text_batch()
    full = logits(model, batch)
    masks = {0: [1], 2: [0, 3]}
    gated = gated_logits(model, batch, masks)
    assert not torch.allclose(gated, full)  # the gates do something
    assert torch.allclose(logits(model, batch), full)  # and are gone after remove()
    total = parameter_counts(model)["total_params"]
    prune_heads(model, masks)
    assert torch.allclose(logits(model, batch), gated, atol=1e-6)
    assert parameter_counts(model)["total_params"] == total - 3 * PER_HEAD
    attention = model.bert.encoder.layer[2].attention
    assert attention.self.query.weight.shape == (2 * D, H)
    assert attention.output.dense.weight.shape == (H, 2 * D)
    assert pruned_heads_of(model) == {0: [1], 2: [0, 3]}


@pytest.mark.parametrize("loader", ["auto", "concrete"])
def test_pruned_model_reloads_with_identical_logits(tmp_path, loader):
    model = tiny_bert(layers=4)
    keep_layers(model, "1-3")
    prune_heads(model, {0: [2], 1: [0, 1, 3]})
    prune_heads(model, {0: [0]})  # a second round, still in original head numbers
    assert model.config.pruned_heads == {"0": [0, 2], "1": [0, 1, 3]}
    batch = text_batch()
    expected = logits(model, batch)
    model.save_pretrained(tmp_path)
    model_class = AutoModelForSequenceClassification if loader == "auto" else BertForSequenceClassification
    reloaded = from_pretrained(model_class, str(tmp_path)).eval()
    assert type(reloaded) is BertForSequenceClassification
    assert torch.equal(logits(reloaded, batch), expected)
    assert parameter_counts(reloaded) == parameter_counts(model)
    # The reloaded model prunes further from where it was, and saves and reloads again.
    prune_heads(reloaded, {0: [1]})
    assert pruned_heads_of(reloaded) == {0: [0, 1, 2], 1: [0, 1, 3]}
    assert reloaded.bert.encoder.layer[0].attention.self.query.out_features == D
    reloaded.save_pretrained(tmp_path / "again")
    again = from_pretrained(model_class, str(tmp_path / "again")).eval()
    assert torch.equal(logits(again, batch), logits(reloaded, batch))


def test_unpruned_folders_load_as_usual(tmp_path):
    model = tiny_bert()
    model.save_pretrained(tmp_path)
    assert torch.equal(logits(from_pretrained(AutoModelForSequenceClassification, str(tmp_path)).eval(), text_batch()),
                       logits(model, text_batch()))


@pytest.mark.parametrize("kind", ["albert", "deit", "hubert"])
def test_other_encoders_prune_and_reload(tmp_path, kind):
    torch.manual_seed(0)
    common = dict(hidden_size=H, num_hidden_layers=2, num_attention_heads=HEADS, intermediate_size=I, num_labels=2)
    if kind == "albert":
        model = AlbertForSequenceClassification(AlbertConfig(vocab_size=50, embedding_size=8, **common))
        batch = text_batch()
    elif kind == "deit":
        model = DeiTForImageClassification(DeiTConfig(image_size=16, patch_size=8, **common))
        batch = {"pixel_values": torch.randn(2, 3, 16, 16)}
    else:
        model = HubertForSequenceClassification(HubertConfig(**TINY_SPEECH_FEATURE_ENCODER, **common))
        batch = {"input_values": torch.randn(2, 1000)}
    model.eval()
    gated = gated_logits(model, batch, {0: [1, 2]})
    total = parameter_counts(model)["total_params"]
    prune_heads(model, {0: [1, 2]})
    assert torch.allclose(logits(model, batch), gated, atol=1e-5)
    assert parameter_counts(model)["total_params"] == total - 2 * PER_HEAD
    model.save_pretrained(tmp_path)
    assert torch.equal(logits(from_pretrained(type(model), str(tmp_path)).eval(), batch), logits(model, batch))


def test_a_head_useless_by_construction_ranks_lowest():
    model = tiny_bert()
    with torch.no_grad():  # head 2 of layer 1 outputs nothing: its value rows are zero
        model.bert.encoder.layer[1].attention.self.value.weight[2 * D:3 * D] = 0
        model.bert.encoder.layer[1].attention.self.value.bias[2 * D:3 * D] = 0
    scores = head_importance(model, [text_batch(labels=True, seed=seed) for seed in range(3)])
    assert [len(score) for score in scores] == [HEADS] * 3
    assert scores[1][2] == 0 and all(float(score.min()) > 0 for layer, score in enumerate(scores) if layer != 1)
    for score in scores:  # normalised per layer
        assert torch.isclose(score.norm(), torch.tensor(1.0))
    assert lowest_heads(scores, count=1) == {1: [2]}
    assert all(p.grad is None for p in model.parameters())  # only the gates were differentiated


class OneRowAtATime(torch.nn.Module):
    """Runs each example through the wrapped model alone, as the pooled audio head does with padded clips."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, labels):
        logits = torch.cat([self.model(input_ids=input_ids[row:row + 1],
                                       attention_mask=attention_mask[row:row + 1]).logits
                            for row in range(len(input_ids))])
        return SequenceClassifierOutput(loss=torch.nn.functional.cross_entropy(logits, labels), logits=logits)


def test_head_importance_of_a_model_that_runs_rows_separately_matches_the_batched_model():
    model = tiny_bert()
    batches = [text_batch(labels=True, seed=seed) for seed in range(2)]
    batched = head_importance(model, batches)
    row_by_row = head_importance(OneRowAtATime(model), batches)
    for layer in range(3):
        torch.testing.assert_close(row_by_row[layer], batched[layer])


def test_lowest_heads_keeps_one_head_per_layer():
    scores = [torch.tensor([0.1, 0.2]), torch.tensor([0.9, 0.8])]
    assert lowest_heads(scores, count=2) == {0: [0], 1: [1]}
    assert lowest_heads(scores, per_layer=1) == {0: [0], 1: [1]}
    with pytest.raises(BadInputError, match="at most 2"):
        lowest_heads(scores, count=3)


def test_bad_head_specs_say_what_exists():
    model = tiny_bert()
    with pytest.raises(BadInputError, match="layer 5.*3 encoder layers"):
        prune_heads(model, {5: [0]})
    with pytest.raises(BadInputError, match=r"heads \[7\] of layer 0.*\[0, 1, 2, 3\]"):
        prune_heads(model, {0: [7]})
    with pytest.raises(BadInputError, match="every head of layer 1"):
        prune_heads(model, {1: [0, 1, 2, 3]})
    prune_heads(model, {0: [1]})
    with pytest.raises(BadInputError, match="already pruned: \\[1\\]"):
        prune_heads(model, {0: [1]})
