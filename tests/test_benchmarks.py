"""The benchmarks' own arithmetic and code paths (the benchmarks themselves run on demand)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import BertConfig, BertForQuestionAnswering

from tests.benchmarks.bench_bert_finetune import measure, peak_tflops, training_flops


def test_bert_training_flops_match_torch_flop_counter():
    config = BertConfig(hidden_size=64, num_hidden_layers=3, num_attention_heads=4, intermediate_size=256,
                        vocab_size=500, attn_implementation="eager")
    torch.manual_seed(0)
    model = BertForQuestionAnswering(config)
    lengths = np.array([160, 160, 160])
    input_ids = torch.randint(5, 500, (len(lengths), int(lengths[0])))
    with FlopCounterMode(display=False) as counter:
        outputs = model(input_ids=input_ids, start_positions=torch.zeros(3, dtype=torch.long),
                        end_positions=torch.zeros(3, dtype=torch.long))
        outputs.loss.backward()
    counted = counter.get_total_flops()
    assert training_flops(model, config, lengths) == pytest.approx(counted, rel=1e-9)


def test_peak_table_prefers_the_specific_name():
    assert peak_tflops("NVIDIA H100 PCIe") == 756.0
    assert peak_tflops("NVIDIA H100 80GB HBM3") == 989.4
    assert peak_tflops("NVIDIA A10G") == 70.0
    assert peak_tflops("Some Future GPU") is None


def test_bert_benchmark_times_the_epochs_after_the_warmup(tmp_path):
    figures = measure("tiny", questions=48, epochs=2, workdir=tmp_path, cuda=False)
    assert figures["timed_epochs"] == 1
    assert figures["windows_per_epoch"] >= 48
    assert 0 < figures["mean_window_tokens"] <= 384
    assert figures["tokens_per_second"] > 0
    assert figures["model_tflops_per_second"] > 0
