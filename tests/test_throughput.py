"""Every run reports its throughput: real work per second for training and each evaluation, MFU from counted
FLOPs where the device's peak is known, in results.json, the log and what the trackers receive."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import BertConfig, BertForSequenceClassification

from hf_tasks.args import parse
from hf_tasks.tasks.text import FlattenedSequences
from hf_tasks.throughput import Throughput, encoder_flops, squared_sequence_lengths, throughput_text
from tests.conftest import recipe_args
from tests.test_golden_losses import SHORT_RUN


def test_counted_flops_match_torch_flop_counter_over_sequences_of_different_lengths():
    config = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                        vocab_size=200, attn_implementation="eager", num_labels=3)
    torch.manual_seed(0)
    model = BertForSequenceClassification(config)
    lengths = [9, 17, 30]
    with FlopCounterMode(display=False) as counter:
        for length in lengths:  # one sequence per call: the counter then sees no padding
            output = model(input_ids=torch.randint(5, 200, (1, length)), labels=torch.tensor([1]))
            output.loss.backward()
    tokens, squared = sum(lengths), sum(length**2 for length in lengths)
    # The pooler and the classifier run once per sequence, not per token as the count credits every matmul
    # weight: that difference, and nothing else, separates the two.
    head = model.bert.pooler.dense.weight.numel() + model.classifier.weight.numel()
    per_token_head = 2.0 * head * (tokens - len(lengths))
    assert encoder_flops(model, tokens, squared) - 3 * per_token_head == counter.get_total_flops()
    with FlopCounterMode(display=False) as forward_only, torch.no_grad():
        for length in lengths:
            model(input_ids=torch.randint(5, 200, (1, length)))
    assert encoder_flops(model, tokens, squared, training=False) - per_token_head == forward_only.get_total_flops()


def test_squared_lengths_are_the_same_for_a_padded_and_a_flattened_batch():
    rows = [{"input_ids": [4] * length, "labels": 0} for length in (3, 5, 8)]
    mask = torch.tensor([[1] * length + [0] * (8 - length) for length in (3, 5, 8)])
    assert int(squared_sequence_lengths({"attention_mask": mask})) == 9 + 25 + 64
    assert int(squared_sequence_lengths(FlattenedSequences()(rows))) == 9 + 25 + 64


def test_mfu_is_the_counted_flops_rate_over_the_peak():
    model = BertForSequenceClassification(BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                                     intermediate_size=64, vocab_size=200))
    meter = Throughput()
    for length in (10, 20):
        batch = {"attention_mask": torch.ones(2, length, dtype=torch.long)}
        meter.add(batch["attention_mask"].sum(), batch)
    figures = meter.figures("train", "tokens", seconds=2.0, model=model, peak=1e-6, training=True)
    assert figures["train_tokens_per_second"] == 30.0
    flops = encoder_flops(model, 60, 2 * 100 + 2 * 400)
    assert figures["train_mfu_percent"] == round(100 * flops / 2.0 / 1e6, 2)
    assert "train_mfu_percent" not in meter.figures("train", "tokens", 2.0, model, peak=None, training=True)
    assert throughput_text(figures, "train") == f"30.0 tokens/s, MFU {figures['train_mfu_percent']:.1f}%"


@pytest.mark.parametrize("padding_free", ["false", "true"])
def test_a_run_reports_real_tokens_per_second_in_results_log_and_tracker_logs(padding_free, tmp_path, caplog):
    import farstail

    arguments = recipe_args("recipes/configs/farstail/tiny.yaml", tmp_path / "run", *SHORT_RUN,
                            "--padding_free", padding_free)
    with caplog.at_level(logging.INFO, logger="hf_tasks"):
        results = farstail.main(parse(*farstail.ARGUMENTS, args=arguments))
    for prefix in ("train", "eval"):
        assert results[f"{prefix}_tokens_per_second"] > 0
        assert f"{prefix}_mfu_percent" not in results  # CPU: no known peak
    assert json.loads((tmp_path / "run" / "results.json").read_text())["train_tokens_per_second"] == \
        results["train_tokens_per_second"]
    # Every tracker's callback receives the Trainer's logs; the run's last one carries the figure.
    history = json.loads((tmp_path / "run" / "trainer_state.json").read_text())["log_history"]
    assert history[-1]["train_tokens_per_second"] == results["train_tokens_per_second"]
    messages = [record.getMessage() for record in caplog.records]
    assert any(message.startswith("Throughput: tokens per second (not padding); MFU only on a GPU")
               for message in messages)
    finished = next(message for message in messages if message.startswith("Training finished"))
    assert f"{results['train_tokens_per_second']:,.1f} tokens/s" in finished
    assert any("throughput: train " in message and "validation " in message for message in messages)


def test_the_counted_tokens_are_the_batches_real_tokens(tmp_path, monkeypatch):
    """The same run padded and padding-free feeds the model the same real tokens: the counts agree, though
    only one of them computed padding."""
    from hf_tasks.runner import TaskTrainer

    counted = {}
    original = TaskTrainer._throughput

    def keep(self, work, prefix, seconds, training):
        counted[(self.task.data_collator.pad.__class__.__name__, prefix)] = float(work.work)
        return original(self, work, prefix, seconds, training)

    import farstail

    monkeypatch.setattr(TaskTrainer, "_throughput", keep)
    for padding_free in ("false", "true"):
        arguments = recipe_args("recipes/configs/farstail/tiny.yaml", tmp_path / padding_free, *SHORT_RUN,
                                "--padding_free", padding_free)
        farstail.main(parse(*farstail.ARGUMENTS, args=arguments))
    assert counted[("DataCollatorWithPadding", "train")] == counted[("FlattenedSequences", "train")] > 0
    assert counted[("DataCollatorWithPadding", "eval")] == counted[("FlattenedSequences", "eval")] > 0


def test_throughput_figures_are_no_metrics_on_the_model_card():
    from hf_tasks.model_card import eval_results

    results = {"eval_accuracy": 0.5, "eval_tokens_per_second": 900.0, "eval_mfu_percent": 12.5,
               "test_audio_seconds_per_second": 30.0, "test_images_per_second": 80.0}
    shown = [row.metric_type for row in eval_results(results, "text-classification", "FarsTail", "farstail")]
    assert shown == ["accuracy"]
