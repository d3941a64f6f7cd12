"""Surgery arguments, `apply_surgery`, and scheduled head pruning (one-shot, iterative, resumed) inside a
real Trainer run."""

from __future__ import annotations

import json
import shutil

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
    ScheduledHeadPruning,
    SurgeryArguments,
    SurgeryCallback,
    apply_surgery,
    from_pretrained,
    head_importance,
    lowest_heads,
    parameter_counts,
    pruned_heads_of,
)
from hf_tasks.surgery.training import importance_batches
from hf_tasks.errors import BadInputError

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
     dict(prune_importance_split="test"), dict(prune_fraction=0.5, prune_recovery_epochs=-1),
     dict(prune_fraction=0.5, prune_schedule="iterative", prune_recovery_epochs=1), dict(prune_recovery_epochs=1)],
)
def test_bad_surgery_arguments(kwargs):
    with pytest.raises(BadInputError):
        SurgeryArguments(**kwargs)


def test_without_training_one_shot_prunes_the_loaded_model_then_freezes():
    model = tiny_bert()
    with torch.no_grad():  # a head that cannot matter must be among the pruned ones
        model.bert.encoder.layer[2].attention.self.value.weight[:H // HEADS] = 0
        model.bert.encoder.layer[2].attention.self.value.bias[:H // HEADS] = 0
    arguments = SurgeryArguments(prune_fraction=0.5, freeze=["embeddings"], prune_importance_samples=24,
                                 prune_importance_batch_size=8)
    callbacks = apply_surgery(model, arguments, training=False, splits={"validation": dataset(24, seed=1)},
                              data_collator=default_data_collator)
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
        apply_surgery(model, SurgeryArguments(prune_fraction=0.5, prune_importance="random"), training=False, seed=seed)
        chosen.append(pruned_heads_of(model))
    assert chosen[0] == chosen[1] != chosen[2]


def test_gradient_importance_needs_its_split():
    with pytest.raises(BadInputError, match="validation split"):
        apply_surgery(tiny_bert(), SurgeryArguments(prune_fraction=0.5), training=True, splits={"train": dataset(8)})


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
    callbacks = apply_surgery(model, arguments, training=True, splits={"validation": dataset(16, seed=1)},
                              data_collator=default_data_collator)
    assert [type(callback) for callback in callbacks] == [ScheduledHeadPruning]
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


def training_args(output_dir, **overrides) -> TrainingArguments:
    settings = dict(output_dir=str(output_dir), use_cpu=True, report_to="none", num_train_epochs=3,
                    per_device_train_batch_size=8, learning_rate=0.01, save_strategy="no", disable_tqdm=True,
                    seed=0)
    return TrainingArguments(**{**settings, **overrides})


class MaskedPerEpoch(TrainerCallback):
    def __init__(self, pruner):
        self.pruner, self.counts = pruner, []

    def on_epoch_end(self, args, state, control, **kwargs):
        self.counts.append(sum(len(heads) for heads in self.pruner.masked.values()))


class ImportanceAtTrainEnd(TrainerCallback):
    """Michel et al.'s importance of the trained model, just before the pruner (registered after it) prunes."""

    def __init__(self, batches):
        self.batches, self.scores = batches, None

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self.scores = [[float(value) for value in score] for score in head_importance(model, self.batches)]


ONE_SHOT = dict(prune_fraction=0.5, prune_importance_samples=16, prune_importance_batch_size=8)


def test_one_shot_ranks_heads_on_the_fine_tuned_model_and_the_pruned_model_reloads(tmp_path):
    model = tiny_bert()
    held_out = dataset(16, seed=1)
    batches = importance_batches(model, held_out, default_data_collator, 8, 16)
    before_training = [[float(value) for value in score] for score in head_importance(model, batches)]
    (pruner,) = apply_surgery(model, SurgeryArguments(**ONE_SHOT), training=True, splits={"validation": held_out},
                              data_collator=default_data_collator)
    assert total_pruned(model) == 0  # nothing ranked before fine-tuning
    probe, per_epoch = ImportanceAtTrainEnd(batches), MaskedPerEpoch(pruner)
    trainer = Trainer(model=model, args=training_args(tmp_path, num_train_epochs=2),
                      train_dataset=dataset(32).remove_columns("premise"), callbacks=[probe, pruner, per_epoch])
    trainer.train()
    assert per_epoch.counts == [0, 0]  # no recovery: ranked and pruned when training ends
    assert total_pruned(model) == LAYERS * HEADS // 2
    # The ranking is the fine-tuned model's, which differs from the one its random initialisation gives.
    assert pruner.importance == probe.scores
    assert pruned_heads_of(model) == lowest_heads([torch.tensor(score) for score in probe.scores], count=6)
    assert pruned_heads_of(model) != lowest_heads([torch.tensor(score) for score in before_training], count=6)

    model.save_pretrained(tmp_path / "pruned")
    reloaded = from_pretrained(BertForSequenceClassification, tmp_path / "pruned")
    batch = default_data_collator([dataset(4, seed=2).remove_columns(["premise", "label"])[i] for i in range(4)])
    model.eval(), reloaded.eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**batch).logits, model(**batch).logits)
    assert pruned_heads_of(reloaded) == pruned_heads_of(model)


def test_one_shot_recovery_epochs_train_the_masked_model(tmp_path):
    model = tiny_bert()
    surgery = SurgeryArguments(**ONE_SHOT, prune_recovery_epochs=1)
    (pruner,) = apply_surgery(model, surgery, training=True, splits={"validation": dataset(16, seed=1)},
                              data_collator=default_data_collator)
    batch = default_data_collator([dataset(4, seed=2).remove_columns("premise")[i] for i in range(4)])
    probe, per_epoch = MaskedLogitsAtTrainEnd({k: v for k, v in batch.items() if k != "labels"}), MaskedPerEpoch(pruner)
    trainer = Trainer(model=model, args=training_args(tmp_path), train_dataset=dataset(32).remove_columns("premise"),
                      callbacks=[probe, pruner, per_epoch])
    trainer.train()
    assert per_epoch.counts == [0, 6, 6]  # fine-tune 2 epochs, prune, recover 1
    assert total_pruned(model) == 6
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(**probe.batch).logits, probe.logits)


def test_recovery_must_leave_an_epoch_to_fine_tune(tmp_path):
    model = tiny_bert()
    callbacks = apply_surgery(model, SurgeryArguments(**ONE_SHOT, prune_importance="random", prune_recovery_epochs=3),
                              training=True)
    trainer = Trainer(model=model, args=training_args(tmp_path), train_dataset=dataset(32).remove_columns("premise"),
                      callbacks=callbacks)
    with pytest.raises(BadInputError, match="prune_recovery_epochs=3"):
        trainer.train()


def test_the_trainer_cannot_rebuild_pruning_from_its_arguments(tmp_path):
    model = tiny_bert()
    callbacks = apply_surgery(model, SurgeryArguments(**ONE_SHOT, prune_importance="random"), training=True)
    with pytest.raises(BadInputError, match="restore_callback_states_from_checkpoint"):
        Trainer(model=model, args=training_args(tmp_path, restore_callback_states_from_checkpoint=True),
                callbacks=callbacks)


def pruned_run(output_dir, surgery: SurgeryArguments, *, as_callback: bool, resume_from=None):
    """Three epochs with a checkpoint at each epoch end, through apply_surgery's callback or SurgeryCallback."""
    model = tiny_bert()
    splits = {"validation": dataset(16, seed=1)}
    if as_callback:
        callbacks = [SurgeryCallback(surgery, splits=splits, data_collator=default_data_collator)]
    else:
        callbacks = apply_surgery(model, surgery, training=True, splits=splits, data_collator=default_data_collator)
    trainer = Trainer(model=model, args=training_args(output_dir, save_strategy="epoch"),
                      train_dataset=dataset(32).remove_columns("premise"), callbacks=callbacks)
    trainer.train(resume_from_checkpoint=resume_from)
    return model


@pytest.mark.parametrize("as_callback", [False, True], ids=["apply_surgery", "SurgeryCallback"])
@pytest.mark.parametrize("surgery", [
    dict(prune_schedule="iterative", prune_fraction=0.5, prune_importance_samples=16),
    dict(prune_schedule="iterative", prune_heads_per_layer=2, prune_importance="random"),
    dict(**ONE_SHOT, prune_recovery_epochs=2),
], ids=["iterative", "iterative-random-per-layer", "one-shot-recovery"])
def test_resuming_from_an_epoch_checkpoint_prunes_like_the_straight_run(tmp_path, surgery, as_callback):
    straight = pruned_run(tmp_path / "straight", SurgeryArguments(**surgery), as_callback=as_callback)
    saved = json.loads((tmp_path / "straight" / "checkpoint-4" / "trainer_state.json").read_text())
    pruning = saved["stateful_callbacks"]["SurgeryCallback" if as_callback else "ScheduledHeadPruning"]["attributes"]
    if as_callback:
        pruning = pruning["pruning"]
    assert pruning["masked"] and pruning["rankings"] == 1  # the first epoch's masks are in its checkpoint
    shutil.copytree(tmp_path / "straight" / "checkpoint-4", tmp_path / "resumed" / "checkpoint-4")
    resumed = pruned_run(tmp_path / "resumed", SurgeryArguments(**surgery), as_callback=as_callback,
                         resume_from=str(tmp_path / "resumed" / "checkpoint-4"))
    assert pruned_heads_of(resumed) == pruned_heads_of(straight)
    for name, weight in straight.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[name], weight, msg=name)
