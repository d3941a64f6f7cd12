"""`--fast_gpu`: shape buckets (batches padded up to multiples of 64), a compiled step that meets at most one
shape per bucket over an epoch, and no per-step host reads of device values in the step, our callbacks or
logging. On the CPU the compile backend is dynamo's `eager` (the same graph capture and recompile rules as
inductor, without code generation) and automatic dynamic shapes are off, as CUDA graphs need one recording
per shape anyway."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from torch.profiler import ProfilerActivity, profile
from transformers import TrainerCallback

from hf_tasks.args import TrainingArguments, parse
from hf_tasks.errors import BadInputError
from hf_tasks.runner import TaskTrainer
from hf_tasks.tasks.buckets import ShapeBuckets, bucket_lengths, bucket_of
from tests.conftest import recipe_args

MAX_LENGTH = 128
FAST_RUN = ["--max_seq_length", str(MAX_LENGTH), "--do_eval", "false", "--do_predict", "false",
            "--eval_strategy", "no", "--save_strategy", "no", "--load_best_model_at_end", "false",
            "--per_device_train_batch_size", "8", "--fast_gpu", "true", "--torch_compile_backend", "eager",
            "--dataloader_num_workers", "0", "--logging_steps", "1000"]


def test_batches_are_padded_up_to_buckets_of_64_at_most_the_longest_allowed():
    assert bucket_lengths(384) == [64, 128, 192, 256, 320, 384]
    assert bucket_lengths(100) == [64, 100]
    assert [bucket_of(length, 100) for length in (1, 64, 65, 100)] == [64, 64, 100, 100]
    assert bucket_of(70, None) == 128

    def collate(rows):
        ids = torch.tensor(rows)
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": torch.tensor([0] * len(rows))}

    batch = ShapeBuckets(collate, pad_token_id=7, max_length=100)([[1, 2, 3], [4, 5, 6]])
    assert batch["input_ids"].shape == batch["attention_mask"].shape == (2, 64)
    assert batch["input_ids"][0, :4].tolist() == [1, 2, 3, 7] and batch["attention_mask"][0, 2:4].tolist() == [1, 0]
    assert batch["labels"].shape == (2,)
    left = ShapeBuckets(collate, pad_token_id=7, max_length=100, padding_side="left")([[1, 2, 3]])
    assert left["input_ids"][0, -4:].tolist() == [7, 1, 2, 3]


def test_fast_gpu_sets_the_compiled_step_without_host_syncs(tmp_path):
    args = TrainingArguments(output_dir=str(tmp_path), fast_gpu=True, use_cpu=True)
    assert args.torch_compile and args.torch_compile_mode is None  # reduce-overhead (CUDA graphs) on CUDA only
    assert not args.logging_nan_inf_filter and args.dataloader_drop_last
    assert args.dataloader_num_workers >= 2 and args.dataloader_persistent_workers


def fast_run(tmp_path, monkeypatch, *overrides: str, callback: TrainerCallback | None = None):
    """The tweet recipe's tiny config with --fast_gpu, recording each training batch's shape and longest row."""
    import covid_fakenews

    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    batches = []
    original_step, original_init = TaskTrainer.training_step, TaskTrainer.__init__

    def step(self, model, inputs, num_items_in_batch=None):
        # The longest row stays a tensor here: reading it would be one more host read per step.
        batches.append((tuple(inputs["input_ids"].shape), inputs["attention_mask"].sum(dim=1).max()))
        return original_step(self, model, inputs, num_items_in_batch)

    def init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        if callback is not None:
            self.add_callback(callback)

    monkeypatch.setattr(TaskTrainer, "training_step", step)
    monkeypatch.setattr(TaskTrainer, "__init__", init)
    arguments = recipe_args("recipes/configs/covid_fakenews/tiny.yaml", tmp_path / "run", *FAST_RUN, *overrides)
    try:
        with torch._dynamo.config.patch(automatic_dynamic_shapes=False):
            covid_fakenews.main(parse(*covid_fakenews.ARGUMENTS, args=arguments))
        return [(shape, int(longest)) for shape, longest in batches], dict(torch._dynamo.utils.counters["stats"])
    finally:
        torch._dynamo.reset()


def test_an_epoch_compiles_at_most_one_graph_per_bucket(tmp_path, monkeypatch):
    batches, stats = fast_run(tmp_path, monkeypatch, "--num_train_epochs", "1")
    shapes = {shape for shape, _ in batches}
    assert {length for _, length in shapes} <= set(bucket_lengths(MAX_LENGTH))
    assert len({size for size, _ in shapes}) == 1  # the short last batch is dropped
    assert 0 < stats["unique_graphs"] <= len(bucket_lengths(MAX_LENGTH))
    # Unbucketed, these batches would have had one shape per longest row: many more graphs than buckets.
    assert len({longest for _, longest in batches}) > len(bucket_lengths(MAX_LENGTH))


class HostReads(TrainerCallback):
    """Counts the ops that read a tensor's value on the host (`.item()`, `bool(tensor)`) in steps 3 to 10."""

    def __init__(self):
        self.reads: Counter = Counter()
        self.parameter_tensors = 0

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step == 2:
            self.profiler = profile(activities=[ProfilerActivity.CPU])
            self.profiler.__enter__()
            self.parameter_tensors = sum(parameter.requires_grad for parameter in model.parameters())
        elif state.global_step == 10:
            self.profiler.__exit__(None, None, None)
            self.reads = Counter(event.name for event in self.profiler.events()
                                 if event.name in ("aten::_local_scalar_dense", "aten::is_nonzero"))


def test_no_step_reads_a_device_value_on_the_host(tmp_path, monkeypatch):
    reads = HostReads()
    fast_run(tmp_path, monkeypatch, "--max_steps", "10", callback=reads)
    # No truth test of a tensor (the NaN/inf loss filter's) and, per step, one read per parameter tensor: the
    # optimizer's step counters, which torch keeps on the host (a CPU tensor even when the model is on a GPU).
    assert reads.reads["aten::is_nonzero"] == 0
    assert reads.reads["aten::_local_scalar_dense"] == 8 * reads.parameter_tensors


def test_fast_gpu_refuses_padding_free(tmp_path):
    import covid_fakenews

    arguments = recipe_args("recipes/configs/covid_fakenews/tiny.yaml", tmp_path / "run", *FAST_RUN,
                            "--padding_free", "true")
    with pytest.raises(BadInputError, match="--fast_gpu with --padding_free: a flattened row has a new length"):
        covid_fakenews.main(parse(*covid_fakenews.ARGUMENTS, args=arguments))
