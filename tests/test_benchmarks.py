"""The benchmarks' own arithmetic and code paths (the benchmarks themselves run on demand)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from datasets import DatasetDict
from torch.utils.flop_counter import FlopCounterMode
from transformers import AutoTokenizer, BertConfig, BertForQuestionAnswering

from hf_tasks.options import DataArguments
from hf_tasks.tasks.qa import QAArguments, QuestionAnsweringTask

from tests.benchmarks import record as recording
from tests.benchmarks.abba import Ratio, Spread, alternate
from tests.benchmarks import bench_export
from tests.benchmarks.bench_bert_finetune import SIZES, measure, peak_tflops, training_flops
from tests.benchmarks.bench_qa_windows import TOKENIZER, corpus
from tests.benchmarks.summary_table import ENTRIES, RESULTS, rows, table


def test_variants_alternate_in_abba_order_and_the_warmup_round_is_dropped():
    calls = []

    def variant(name):
        def run():
            calls.append(name)
            return len(calls)
        return run

    results = alternate({"a": variant("a"), "b": variant("b")}, rounds=3, warmup=1)
    assert "".join(calls) == "ab" "ba" "ab" "ba"
    assert results == {"a": [4, 5, 8], "b": [3, 6, 7]}


def test_a_ratio_whose_range_holds_one_is_no_measurable_difference():
    faster = Ratio.within_rounds([2.0, 3.0, 2.4], [1.0, 2.0, 2.0])
    assert (faster.median, faster.low, faster.high, faster.rounds) == (1.5, 1.2, 2.0, 3)
    assert faster.measurable and faster.format() == "1.50x (range 1.20-2.00x, 3 rounds)"
    unclear = Ratio.within_rounds([1.1, 0.9, 1.3], [1.0, 1.0, 1.0])
    assert not unclear.measurable
    assert unclear.format() == "no measurable difference: 1.10x (range 0.90-1.30x, 3 rounds)"
    with pytest.raises(ValueError, match="2 numerators for 3 denominators"):
        Ratio.within_rounds([1.0, 2.0], [1.0, 1.0, 1.0])


def test_recorded_rows_keep_median_and_range_and_a_changed_row_starts_a_new_table(tmp_path, monkeypatch):
    monkeypatch.setattr(recording, "RESULTS", tmp_path)
    recording.record("demo", {"speedup": Ratio.of([1.5, 1.25, 2.0])})
    recording.record("demo", {"speedup": Ratio.of([1.5, 1.25, 2.0])})
    recording.record("demo", {"speedup": Ratio.of([1.5]), "rate": Spread.of([120.0, 80.0])})
    assert json.loads((tmp_path / "demo.json").read_text())["rate"] == {
        "median": 100.0, "low": 80.0, "high": 120.0, "rounds": 2, "text": "100.0 (range 80.0-120.0, 2 rounds)"}
    lines = (tmp_path / "demo.md").read_text().splitlines()
    assert [line.split(" | ")[3:] for line in lines if line.startswith("| 2")] == [
        ["1.50x (range 1.25-2.00x, 3 rounds) |"]] * 2 + [
        ["1.50x (range 1.50-1.50x, 1 rounds)", "100.0 (range 80.0-120.0, 2 rounds) |"]]
    assert sum(line.startswith("| date |") for line in lines) == 2


def test_export_benchmark_alternates_its_variants_and_takes_each_speedup_within_a_round(monkeypatch):
    # A fake clock: each forward pass costs its variant's price times the round's number, as if the
    # machine got busier every round. Ratios within a round stay exact; the milliseconds spread.
    price = {"pytorch_full_fp32": 4.0, "onnx_full_fp32": 2.0, "onnx_pruned_fp32": 2.0, "onnx_pruned_int8": 1.0}
    passes, calls, now = 2, [], [0.0]
    monkeypatch.setattr(bench_export, "time", SimpleNamespace(perf_counter=lambda: now[0]))

    def forward(variant):
        def run():
            calls.append(variant)
            now[0] += price[variant] * (1 + (len(calls) - 1) // (passes * len(price)))
        return run

    figures = bench_export.speed_figures({variant: forward(variant) for variant in price}, rounds=3, passes=passes,
                                         prefix="batch_8_")
    per_round = [variant for variant in price for _ in range(passes)]
    assert calls == (per_round + per_round[::-1]) * 2  # a warm-up round, then 3 rounds in A B / B A order
    assert figures["batch_8_ms_pytorch_full_fp32"] == Spread.of([8000.0, 12000.0, 16000.0])
    assert figures["batch_8_speedup_onnx_pruned_int8_vs_pytorch_full_fp32"] == Ratio.of([4.0] * 3)
    assert figures["batch_8_speedup_onnx_full_fp32_vs_pytorch_full_fp32"] == Ratio.of([2.0] * 3)
    assert (figures["batch_8_speedup_onnx_pruned_int8_vs_onnx_full_fp32"].format()
            == "2.00x (range 2.00-2.00x, 3 rounds)")
    assert sorted(figures) == sorted(
        [f"batch_8_ms_{variant}" for variant in price]
        + [f"batch_8_speedup_{variant}_vs_pytorch_full_fp32" for variant in list(price)[1:]]
        + ["batch_8_speedup_onnx_pruned_int8_vs_onnx_full_fp32"])


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
    # The windows the benchmark counts are the ones the QA task makes of the corpus at 384/128.
    task = QuestionAnsweringTask(DatasetDict(), AutoTokenizer.from_pretrained(TOKENIZER),
                                 DataArguments(max_seq_length=384), QAArguments(doc_stride=128))
    lengths = [len(ids) for ids in
               task.tokenize_windows(corpus(48)[:], list(range(48)), keep_offsets=False)["input_ids"]]
    assert figures["windows_per_epoch"] == len(lengths)
    assert figures["mean_window_tokens"] == round(float(np.mean(lengths)), 1)
    # The model FLOP rate is the token rate times the FLOPs a token of these windows costs (both rounded).
    config = BertConfig(max_position_embeddings=512, **SIZES["tiny"])
    flops_per_token = training_flops(BertForQuestionAnswering(config), config, np.array(lengths)) / sum(lengths)
    assert figures["tokens_per_second"] > 0
    assert figures["model_tflops_per_second"] == pytest.approx(
        figures["tokens_per_second"] * flops_per_token / 1e12, abs=5e-4)


def test_the_benchmark_table_has_a_row_for_every_recorded_benchmark():
    # The docs' benchmark page is built from rows(); a results file no entry reads would never be shown there.
    # gpu.md: the GPU suite's own page; golden_spread.md: the measured spread behind the golden losses'
    # tolerances (read by tests/test_golden_losses.py), not a speed.
    recorded = {path.stem for path in RESULTS.glob("*.md")} - {"gpu", "golden_spread"}
    assert {name for name, _, _ in ENTRIES} == recorded
    assert [command for _, command, _ in rows()] == [f"bench_{name}" for name, _, _ in ENTRIES]
    assert all(figures for _, _, figures in rows())
    assert table().count("\n") == len(ENTRIES) + 2
