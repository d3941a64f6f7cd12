"""BERT-base fine-tuning on one GPU: tokens/s and model FLOPs utilisation (MFU) in bf16.

    python -m tests.benchmarks.bench_bert_finetune                # CUDA: BERT-base, bf16
    python -m tests.benchmarks.bench_bert_finetune --size tiny    # any machine: the same code path in seconds

What is timed is the toolkit's own run: `recipes/parsquad.py`'s `main` with the ParsBERT experiment's
config (recipes/configs/parsquad/parsbert.yaml: batch 32, 384-token windows with stride 128, bf16,
length-grouped batches with dynamic padding, 2 loader workers), on a random-weight BERT-base
(12 layers, hidden 768, ParsBERT's 100k vocabulary) and the project's synthetic Persian QA corpus
(contexts of ~130 words). Evaluation and checkpoints are off. The first epoch is a warm-up; the
following ones are timed, with a CUDA sync at each boundary.

Model FLOPs are what the real (unpadded) tokens need: 6 per matmul weight per token (forward 2,
backward 4) plus attention scores and their weighted sum, 12 x layers x hidden x length per token.
Padding is computed but not credited. MFU divides the achieved rate by the GPU's dense bf16 peak
(`hf_tasks.throughput.PEAK_DENSE_TFLOPS`, or --peak_tflops). Writes results/bert_finetune.json and appends a row
to results/bert_finetune.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import nn
from transformers import BertConfig, TrainerCallback

from hf_tasks.config_files import config_values
from hf_tasks.throughput import encoder_flops, peak_tflops
from tests.benchmarks.bench_qa_windows import TOKENIZER, corpus
from tests.benchmarks.recipe_runs import REPO, run_recipe
from tests.benchmarks.record import record
from tests.caches import use_private_caches

SIZES = {
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                 vocab_size=100_000),
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256, vocab_size=1000),
}


def training_flops(model: nn.Module, config: BertConfig, lengths: np.ndarray) -> float:
    """Forward + backward FLOPs of a BERT encoder over sequences of the given (unpadded) lengths."""
    lengths = lengths.astype(np.float64)
    return encoder_flops(model, lengths.sum(), (lengths**2).sum())


def write_squad(path: Path, questions: int) -> None:
    """The QA-windows benchmark's corpus as a SQuAD v2 file (one article per question)."""
    rows = corpus(questions)
    data = [{"title": "", "paragraphs": [{"context": row["context"], "qas": [{
        "id": row["id"], "question": row["question"], "is_impossible": not row["answers"]["text"],
        "answers": [{"text": text, "answer_start": start}
                    for text, start in zip(row["answers"]["text"], row["answers"]["answer_start"])],
    }]}]} for row in rows]
    path.write_text(json.dumps({"version": "bench", "data": data}, ensure_ascii=False), encoding="utf-8")


class EpochClock(TrainerCallback):
    """Wall time of the epochs after the first `warmup_epochs`, the device synchronised at each edge."""

    def __init__(self, warmup_epochs: int):
        self.warmup_epochs = warmup_epochs
        self.seconds = 0.0
        self.epochs = 0
        self._began: float | None = None

    def on_epoch_begin(self, args, state, control, **kwargs):
        if state.epoch is not None and round(state.epoch) >= self.warmup_epochs:
            _synchronize(args.device)
            self._began = time.perf_counter()

    def on_epoch_end(self, args, state, control, **kwargs):
        if self._began is not None:
            _synchronize(args.device)
            self.seconds += time.perf_counter() - self._began
            self.epochs += 1
            self._began = None


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(size: str, questions: int, epochs: int, workdir: Path, cuda: bool) -> dict:
    """Train the size's BERT through the parsquad recipe; tokens/s and model TFLOP/s of the timed epochs."""
    model_folder = workdir / f"bert-{size}"
    model_folder.mkdir(parents=True, exist_ok=True)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(REPO / TOKENIZER / name, model_folder / name)
    config = BertConfig(max_position_embeddings=512, **SIZES[size])
    config.save_pretrained(model_folder)
    train_file = workdir / "train.json"
    write_squad(train_file, questions)

    clock = EpochClock(warmup_epochs=1)
    seen: dict = {}

    def wrap(runner):
        def timed(task, model, state, *, callbacks=(), **kwargs):
            lengths = np.array([len(ids) for ids in task.features(state.training_args)["train"]["input_ids"]])
            seen.update(lengths=lengths, model=model)
            return runner(task, model, state, callbacks=[*callbacks, clock], **kwargs)
        return timed

    settings = config_values(REPO / "recipes/configs/parsquad/parsbert.yaml")
    for unused in ("model_name_or_path", "validation_file", "test_file", "metric_for_best_model"):
        settings.pop(unused)
    settings.update(
        config_name=str(model_folder), train_file=str(train_file), output_dir=str(workdir / "run"),
        dataset_cache_dir=str(workdir / "cache"), num_train_epochs=epochs, do_eval=False, do_predict=False,
        eval_strategy="no", save_strategy="no", load_best_model_at_end=False, logging_steps=1000, report_to="none",
    )
    if not cuda:
        settings.update(bf16=False, use_cpu=True, dataloader_num_workers=0)
    config_file = workdir / "config.yaml"
    config_file.write_text(yaml.safe_dump(settings, allow_unicode=True), encoding="utf-8")
    run_recipe("parsquad", ["--config", str(config_file)], wrap)
    if clock.epochs == 0:
        raise RuntimeError("no epoch was timed: give --epochs 2 or more (the first is a warm-up)")
    lengths = seen["lengths"]
    flops = training_flops(seen["model"], config, lengths) * clock.epochs
    return {
        "windows_per_epoch": len(lengths),
        "mean_window_tokens": round(float(lengths.mean()), 1),
        "timed_epochs": clock.epochs,
        "tokens_per_second": round(lengths.sum() * clock.epochs / clock.seconds, 1),
        "model_tflops_per_second": round(flops / clock.seconds / 1e12, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="base")
    parser.add_argument("--questions", type=int, default=20_000)
    parser.add_argument("--epochs", type=int, default=2, help="the first is a warm-up")
    parser.add_argument("--peak_tflops", type=float, help="the device's dense bf16 peak, if not in the table")
    args = parser.parse_args()
    use_private_caches("hf_tasks-bench-")
    cuda = torch.cuda.is_available()
    with tempfile.TemporaryDirectory() as workdir:
        figures = measure(args.size, args.questions, args.epochs, Path(workdir), cuda)
    peak = args.peak_tflops or (peak_tflops(torch.cuda.get_device_name(0)) if cuda else None)
    figures["mfu_percent"] = round(100 * figures["model_tflops_per_second"] / peak, 1) if peak else None
    precision = "bf16" if cuda else "fp32 CPU"
    record("bert_finetune", {"setting": f"BERT-{args.size}, parsbert.yaml (batch 32, 384/128 windows, {precision}), "
                                        f"{args.questions} questions", "peak_tflops": peak, **figures})


if __name__ == "__main__":
    main()
