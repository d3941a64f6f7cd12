"""Training-step overhead of the toolkit: `hf_tasks.runner.run` vs a bare `transformers.Trainer`.

    python -m tests.benchmarks.bench_training_overhead [--repeats 3]

Same tiny model (from the PQuAD tiny config, same seed), same windows, same collator and arguments;
only the Trainer differs (TaskTrainer + the runner's bookkeeping vs the plain class). Runs alternate
and the best of `--repeats` training throughputs of each is compared; the target is under 3%.
Writes results/training_overhead.json and appends a row to results/training_overhead.md.
"""

from __future__ import annotations

import argparse
import tempfile

import torch
from transformers import AutoModelForQuestionAnswering, Trainer, TrainingArguments, set_seed

from hf_tasks.args import DataArguments, ModelArguments
from hf_tasks.modeling.auto import load_model, load_processor
from hf_tasks.runner import run
from hf_tasks.tasks.qa import QAArguments, QuestionAnsweringTask
from tests.benchmarks.record import record


def training_arguments(output_dir: str) -> TrainingArguments:
    return TrainingArguments(output_dir=output_dir, use_cpu=True, do_train=True, num_train_epochs=2,
                             per_device_train_batch_size=16, learning_rate=1e-3, save_strategy="no",
                             report_to="none", disable_tqdm=True, seed=0, logging_steps=1000)


def one_run(use_runner: bool) -> float:
    model_args = ModelArguments(config_name="hf_tasks/samples/tiny-bert-fa")
    data_args = DataArguments(train_file="hf_tasks/samples/pquad/train.json", max_seq_length=128)
    with tempfile.TemporaryDirectory() as output_dir:
        args = training_arguments(output_dir)
        set_seed(0)
        tokenizer = load_processor(model_args)
        task = QuestionAnsweringTask(data_args, QAArguments(doc_stride=48), tokenizer)
        model = load_model(AutoModelForQuestionAnswering, model_args)
        if use_runner:
            return run(task, model, args, processing_class=tokenizer)["train_samples_per_second"]
        trainer = Trainer(model=model, args=args, train_dataset=task.features(args)["train"],
                          data_collator=task.data_collator, processing_class=tokenizer)
        return trainer.train().metrics["train_samples_per_second"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    throughput = {"runner": [], "bare_trainer": []}
    for _ in range(args.repeats):
        throughput["bare_trainer"].append(one_run(use_runner=False))
        throughput["runner"].append(one_run(use_runner=True))
    best = {name: max(values) for name, values in throughput.items()}
    record("training_overhead", {
        "task": "parsquad tiny (QA windows, batch 16, 1 thread)",
        "bare_trainer_samples_per_second": round(best["bare_trainer"], 1),
        "runner_samples_per_second": round(best["runner"], 1),
        "overhead_percent": round(100 * (1 - best["runner"] / best["bare_trainer"]), 2),
    })


if __name__ == "__main__":
    main()
