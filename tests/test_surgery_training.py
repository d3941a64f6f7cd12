"""Surgery arguments, `apply_surgery`, and iterative pruning inside a real Trainer run."""

from __future__ import annotations

import pytest
import torch
from datasets import Dataset
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    default_data_collator,
)

from hf_tasks.args import parse
from hf_tasks.surgery import (
    IterativeHeadPruning,
    SurgeryArguments,
    apply_surgery,
    parameter_counts,
    pruned_heads_of,
)
from hf_tasks.tasks.base import BadInputError

H, HEADS, LAYERS = 16, 4, 3


def tiny_bert() -> BertForSequenceClassification:
    torch.manual_seed(0)
    return BertForSequenceClassification(BertConfig(
        vocab_size=50, hidden_size=H, num_hidden_layers=LAYERS, num_attention_heads=HEADS, intermediate_size=32,
        num_labels=2))


def dataset(rows: int, seed: int = 0) -> Dataset:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 50, (rows, 8), generator=generator)
    return Dataset.from_dict({
        "input_ids": ids.tolist(),
        "attention_mask": [[1] * 8] * rows,
        "label": (ids[:, 0] > 27).long().tolist(),
        "premise": ["not a model input"] * rows,  # dropped before batches reach the model
    })


def total_pruned(model) -> int:
    return sum(len(heads) for heads in pruned_heads_of(model).values())


def test_surgery_arguments_from_yaml(tmp_path):
    config = tmp_path / "surgery.yaml"
    config.write_text("freeze: [embeddings, 'layers:0-8']\nkeep_layers: first:9\nprune_fraction: 0.5\n")
    (surgery,) = parse(SurgeryArguments, args=["--config", str(config), "--prune_importance", "random"])
    assert surgery.freeze == ["embeddings", "layers:0-8"]
    assert surgery.keep_layers == "first:9" and surgery.prune_fraction == 0.5
    assert surgery.prune_importance == "random"


@pytest.mark.parametrize(
    "kwargs",
    [dict(prune_fraction=0.5, prune_heads_per_layer=1), dict(prune_fraction=1.5), dict(prune_importance="taylor"),
     dict(prune_schedule="sometimes"), dict(prune_heads=["0:1"], prune_schedule="iterative"),
     dict(prune_importance_split="test")],
)
def test_bad_surgery_arguments(kwargs):
    with pytest.raises(BadInputError):
        SurgeryArguments(**kwargs)


def test_one_shot_importance_pruning_then_freezing():
    model = tiny_bert()
    with torch.no_grad():  # a head that cannot matter must be among the pruned ones
        model.bert.encoder.layer[2].attention.self.value.weight[:H // HEADS] = 0
        model.bert.encoder.layer[2].attention.self.value.bias[:H // HEADS] = 0
    arguments = SurgeryArguments(prune_fraction=0.5, freeze=["embeddings"], prune_importance_samples=24,
                                 prune_importance_batch_size=8)
    callbacks = apply_surgery(model, arguments, splits={"eval": dataset(24, seed=1)}, data_collator=default_data_collator)
    assert callbacks == []
    pruned = pruned_heads_of(model)
    assert total_pruned(model) == LAYERS * HEADS // 2
    assert 0 in pruned[2]
    assert all(block.attention.self.query.out_features >= H // HEADS for block in model.bert.encoder.layer)
    assert not any(p.requires_grad for p in model.bert.embeddings.parameters())


def test_random_baseline_depends_on_the_seed_only():
    chosen = []
    for seed in (3, 3, 4):
        model = tiny_bert()
        apply_surgery(model, SurgeryArguments(prune_fraction=0.5, prune_importance="random"), seed=seed)
        chosen.append(pruned_heads_of(model))
    assert chosen[0] == chosen[1] != chosen[2]


def test_gradient_importance_needs_its_split():
    with pytest.raises(BadInputError, match="validation split"):
        apply_surgery(tiny_bert(), SurgeryArguments(prune_fraction=0.5), splits={"train": dataset(8)})


class MaskedLogitsAtTrainEnd(TrainerCallback):
    """Records the model's logits (heads masked, not yet removed) just before the pruner removes them."""

    def __init__(self, batch):
        self.batch, self.logits = batch, None

    def on_train_end(self, args, state, control, model=None, **kwargs):
        model.eval()
        with torch.no_grad():
            self.logits = model(**self.batch).logits


def test_iterative_pruning_masks_at_epoch_ends_and_removes_at_the_end(tmp_path):
    model = tiny_bert()
    arguments = SurgeryArguments(prune_fraction=0.5, prune_schedule="iterative", prune_importance_samples=16)
    callbacks = apply_surgery(model, arguments, splits={"eval": dataset(16, seed=1)}, data_collator=default_data_collator)
    assert [type(callback) for callback in callbacks] == [IterativeHeadPruning]
    pruner = callbacks[0]
    total = parameter_counts(model)["total_params"]
    assert total_pruned(model) == 0  # nothing removed before training

    masked_per_epoch = []

    class CountMasked(TrainerCallback):
        def on_epoch_end(self, args, state, control, **kwargs):
            masked_per_epoch.append(sum(len(heads) for heads in pruner.masked.values()))

    batch = default_data_collator([dataset(4, seed=2).remove_columns("premise")[i] for i in range(4)])
    probe = MaskedLogitsAtTrainEnd({k: v for k, v in batch.items() if k != "labels"})
    trainer = Trainer(
        model=model,
        args=TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none", num_train_epochs=3,
                               per_device_train_batch_size=8, save_strategy="no", disable_tqdm=True),
        train_dataset=dataset(32).remove_columns("premise"),
        callbacks=[probe, *callbacks, CountMasked()],
    )
    trainer.train()
    assert masked_per_epoch == [3, 6, 6]  # half after epoch 1, all after epoch 2; epoch 3 recovers
    assert total_pruned(model) == 6
    assert parameter_counts(model)["total_params"] < total
    model.eval()
    with torch.no_grad():
        assert torch.allclose(model(**probe.batch).logits, probe.logits, atol=1e-5)
