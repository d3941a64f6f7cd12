"""Where a BERT-base QA training step spends its time on a GPU: a bare PyTorch loop vs the Trainer.

The GPU suite (`gpu_suite`) measured the recipe at a few percent MFU, with bf16 and fp32 equally fast,
which says the step is not bound by the GPU's arithmetic. This separates the model's own step (a
plain loop: forward, backward, fused AdamW, bf16 autocast, no data loading) from what the Trainer
adds on the same batches, and lists the top operators of a profiled Trainer step.

    python -m tests.benchmarks.gpu_step_profile --out DIR [--batch 32 --length 192 --steps 30]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from transformers import BertConfig, BertForQuestionAnswering, Trainer, TrainerCallback, TrainingArguments


class RandomWindows(torch.utils.data.Dataset):
    def __init__(self, count: int, length: int, vocab: int):
        generator = torch.Generator().manual_seed(0)
        self.input_ids = torch.randint(5, vocab, (count, length), generator=generator)
        self.starts = torch.randint(0, length, (count,), generator=generator)

    def __len__(self):
        return len(self.input_ids)

    def __getitem__(self, index):
        return {"input_ids": self.input_ids[index], "attention_mask": torch.ones_like(self.input_ids[index]),
                "start_positions": self.starts[index], "end_positions": self.starts[index]}


def model(vocab: int) -> BertForQuestionAnswering:
    torch.manual_seed(0)
    return BertForQuestionAnswering(BertConfig(vocab_size=vocab, attn_implementation="sdpa")).cuda()


def bare_loop(batch: int, length: int, steps: int, vocab: int) -> dict:
    network = model(vocab)
    optimizer = torch.optim.AdamW(network.parameters(), lr=3e-5, fused=True)
    data = RandomWindows(batch * (steps + 5), length, vocab)
    batches = [{key: torch.stack([data[i][key] for i in range(start, start + batch)]).cuda() for key in data[0]}
               for start in range(0, len(data), batch)]
    for index, inputs in enumerate(batches):
        if index == 5:
            torch.cuda.synchronize()
            started = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = network(**inputs).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(network.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    return {"steps_per_second": steps / seconds, "tokens_per_second": steps * batch * length / seconds}


def trainer_run(batch: int, length: int, steps: int, vocab: int, profile_to: Path | None,
                compile: bool = False) -> dict:
    """The Trainer on the same kind of batches; the first 5 steps (and with `compile`, the compilation
    they trigger) are left out of the timing."""
    with tempfile.TemporaryDirectory() as workdir:
        args = TrainingArguments(output_dir=workdir, max_steps=steps + 5, per_device_train_batch_size=batch,
                                 bf16=True, logging_strategy="no", save_strategy="no", report_to="none",
                                 disable_tqdm=True, dataloader_num_workers=2, dataloader_pin_memory=True,
                                 torch_compile=compile)
        trainer = Trainer(model=model(vocab), args=args,
                          train_dataset=RandomWindows(batch * (steps + 5), length, vocab))
        timer = StepTimer(warmup=5)
        trainer.add_callback(timer)
        if profile_to is None:
            trainer.train()
        else:
            with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU,
                                                    torch.profiler.ProfilerActivity.CUDA]) as profiler:
                trainer.train()
            profile_to.write_text(profiler.key_averages().table(sort_by="self_cuda_time_total", row_limit=25))
            (profile_to.with_suffix(".cpu.txt")).write_text(
                profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))
    seconds = timer.seconds()
    return {"steps_per_second": steps / seconds, "tokens_per_second": steps * batch * length / seconds}


class StepTimer(TrainerCallback):
    def __init__(self, warmup: int):
        self.warmup, self.started, self.ended = warmup, None, None

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.warmup:
            torch.cuda.synchronize()
            self.started = time.perf_counter()

    def on_train_end(self, args, state, control, **kwargs):
        torch.cuda.synchronize()
        self.ended = time.perf_counter()

    def seconds(self) -> float:
        return self.ended - self.started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=192)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--vocab", type=int, default=100000)
    parser.add_argument("--compile", action="store_true",
                        help="Compare the Trainer with and without torch_compile (A B B A) instead.")
    options = parser.parse_args()
    options.out.mkdir(parents=True, exist_ok=True)
    results = {"device": torch.cuda.get_device_name(), "batch": options.batch, "length": options.length}
    if options.compile:
        for index, compiled in enumerate((False, True, True, False)):
            results[f"{'compiled' if compiled else 'eager'}_{index}"] = trainer_run(
                options.batch, options.length, options.steps, options.vocab, None, compile=compiled)
            print(index, compiled, results[f"{'compiled' if compiled else 'eager'}_{index}"], flush=True)
        (options.out / "compile.json").write_text(json.dumps(results, indent=1))
        return
    # Alternated twice, so a drift of the machine shows as spread rather than as a difference.
    for repeat in range(2):
        results[f"bare_{repeat}"] = bare_loop(options.batch, options.length, options.steps, options.vocab)
        results[f"trainer_{repeat}"] = trainer_run(options.batch, options.length, options.steps, options.vocab, None)
        print(repeat, results[f"bare_{repeat}"], results[f"trainer_{repeat}"], flush=True)
    trainer_run(options.batch, options.length, 10, options.vocab, options.out / "trainer_profile.txt")
    (options.out / "step_profile.json").write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))
    print((options.out / "trainer_profile.txt").read_text()[:6000])


if __name__ == "__main__":
    main()
