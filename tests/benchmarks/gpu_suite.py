"""Every GPU figure of issues 18 and 36 in one command that fits a short loan of one GPU.

    python -m tests.benchmarks.gpu_suite --out results-gpu                  # one CUDA GPU, 480 s
    python -m tests.benchmarks.gpu_suite --out /tmp/smoke --smoke           # any machine: tiny sizes, the same code
                                                                            # (5 min on a busy 2-core box,
                                                                            # sections capped)

Sections run in priority order, each under its own time cap (and the whole under --budget_s,
counted from the start of this module), and each writes its JSON into --out as soon as a figure is
known, so a run cut short still returns what it finished. `--sections` picks some. Issue 36's come first:

- fast_step.json: the parsbert.yaml QA job at batch 32, `--fast_gpu` (shape buckets, torch.compile
  reduce-overhead, no per-step syncs) against a plain `Trainer` on the same windows in the same order
  (targets: >= 2x, losses equal to bf16 tolerance, MFU >= 25%), compile time and break-even steps; and
  128 x 384 windows with `--fast_gpu` (target MFU >= 40%).
- padding_free.json: BERT-base sequence classification on the FarsTail sample's pair lengths,
  padding-free against dynamic and length-grouped padding (flash-attention when installed, else SDPA).
- lora.json: LoRA (the recipes' defaults) against full fine-tuning, rate and peak memory, for BERT-base
  QA, HuBERT-base and DeiT-B.

Then presets.json (below) and issue 18's sections, already recorded in results/gpu.md:

1. bert_finetune.json: `bench_bert_finetune` as it is (the parsquad recipe with the ParsBERT config,
   BERT-base, bf16), fewer questions; cifar10.json: `bench_cifar10`'s model step for DeiT-B distilled
   and DenseNet201 with the paper's trainable block, batch 512, bf16 autocast, random weights.
2. bert_options.json: BERT-base QA training steps on the same windows, each option against the
   recipe's settings (recipes/configs/parsquad/parsbert.yaml), alternated A B B A in this process;
   a plain `Trainer` with its default settings on the same model and batch (target: the recipe
   >= 1.3x); MFU at sequence length 384 (target >= 35%); whether padding-free batches
   (`DataCollatorWithFlattening`) work for BERT QA, and the tokens they would save.
3. hubert.json: HuBERT-base with the pooled head on synthetic 6 s clips at 16 kHz: clips/s with the
   ShEMO recipe's settings against a plain `Trainer` (no audio files are read).
4. presets.json: `accelerate launch` with recipes/accelerate/fsdp.yaml (and the DeepSpeed presets when
   deepspeed is installed) and one process trains the parsquad recipe a few steps.

suite.log holds every line printed with its time; summary.md the closing table. Rates are real
(unpadded) tokens/s for BERT, images/s and clips/s otherwise; a ratio is variant / baseline, one per
round of runs alternated as tests/benchmarks/abba.py does it, reported as median and range ("no
measurable difference" when the range holds 1.0).
"""

from __future__ import annotations

import time

STARTED = time.monotonic()  # the budget counts the imports below too

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # read when huggingface_hub is imported; the GPU machine has no network

import argparse
import contextlib
import gc
import importlib.util
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import numpy as np
import torch
import transformers

from tests.benchmarks.abba import Ratio, Spread, alternate

PARSBERT_CONFIG = "recipes/configs/parsquad/parsbert.yaml"
SHEMO_CONFIG = "recipes/configs/shemo/hubert_base.yaml"
#: The parsbert.yaml keys that shape training speed; everything else in it is about data and evaluation.
SPEED_KEYS = ("per_device_train_batch_size", "gradient_accumulation_steps", "learning_rate", "weight_decay",
              "warmup_steps", "bf16", "fp16", "tf32", "optim", "train_sampling_strategy", "dataloader_num_workers",
              "dataloader_pin_memory", "torch_compile")
#: Settings a plain Trainer shares with the recipe, so that both train the same model on the same batch.
SAME_BATCH_KEYS = ("per_device_train_batch_size", "gradient_accumulation_steps", "learning_rate")
#: Seconds each section may take, in priority order. The GPU caps add up to the default budget of 400 s
#: (imports included), so a 420 s device slot returns every section.
GPU_CAPS_S = {"fast_step": 170, "padding_free": 60, "lora": 90, "presets": 50, "bert_finetune": 90, "cifar10": 45,
              "bert_options": 170, "hubert": 40}
SMOKE_CAPS_S = {"fast_step": 120, "padding_free": 60, "lora": 90, "presets": 80, "bert_finetune": 60, "cifar10": 30,
                "bert_options": 90, "hubert": 40}
#: What --sections picks from, in the order they run (issue 36's part 4 first; issue 18's figures are recorded).
SECTIONS = tuple(GPU_CAPS_S)
#: --smoke on a CPU: bf16 autocast and loader processes cost more there than the tiny models' steps.
SMOKE_OVERRIDES = {"bf16": False, "dataloader_num_workers": 0}


class SectionTimeout(Exception):
    """A section ran past its cap."""


class Suite:
    """Deadlines, the log and the JSON files of one run."""

    def __init__(self, out: Path, budget_s: float, started: float = STARTED):
        """`budget_s` counts from `started`: by default the module's import, so the imports count too."""
        self.out = out
        self.started = started
        self.deadline = started + budget_s
        self.section_deadline = self.deadline
        out.mkdir(parents=True, exist_ok=True)
        self.log_file = (out / "suite.log").open("a", encoding="utf-8")
        self.results: dict[str, dict] = {}

    def left(self) -> float:
        """Seconds left to the running section (or, between sections, to the whole run)."""
        return min(self.deadline, self.section_deadline) - time.monotonic()

    def log(self, message: str) -> None:
        line = f"[{time.monotonic() - self.started:7.1f}s] {message}"
        print(line, flush=True)
        self.log_file.write(line + "\n")
        self.log_file.flush()

    def write(self, section: str, figures: dict) -> None:
        """Merge figures into the section's JSON and rewrite it at once (a later kill keeps it)."""
        self.results.setdefault(section, {}).update(figures)
        path = self.out / f"{section}.json"
        path.write_text(json.dumps(self.results[section], indent=2, default=str) + "\n", encoding="utf-8")

    def run_section(self, section: str, cap_s: float, body: Callable[[], None]) -> None:
        """Run body under min(cap, time left), recording its error or timeout in the section's JSON."""
        self.section_deadline = self.deadline
        seconds = min(cap_s, self.left())
        if seconds < 5:
            self.log(f"{section}: skipped, {seconds:.0f}s left for it")
            self.write(section, {"status": "skipped: out of time"})
            return
        self.log(f"{section}: start (cap {seconds:.0f}s)")
        transformers.logging.set_verbosity_error()  # a recipe run earlier in this process turns its logs up
        began = time.monotonic()
        self.section_deadline = began + seconds
        try:
            with time_cap(seconds):
                body()
            status = "done"
        except SectionTimeout:
            status = f"stopped at its cap of {seconds:.0f}s"
        except Exception as error:  # one section's failure must not cost the others their device time
            status = f"failed: {type(error).__name__}: {error}"
            self.log_file.write(traceback.format_exc())
        self.section_deadline = self.deadline
        gc.collect()  # a stopped section's model is garbage now; free its device memory for the next
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        self.write(section, {"status": status, "section_seconds": round(time.monotonic() - began, 1)})
        self.log(f"{section}: {status} ({time.monotonic() - began:.0f}s)")


@contextlib.contextmanager
def time_cap(seconds: float):
    """Raise SectionTimeout in the main thread after `seconds` (SIGALRM), so a long step cannot eat the budget."""
    def expire(signum, frame):
        raise SectionTimeout

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def rounded(figure: Spread, digits: int = 3) -> dict:
    return {"median": round(figure.median, digits), "min": round(figure.low, digits),
            "max": round(figure.high, digits), "n": figure.rounds}


def spread(values: list[float], digits: int = 3) -> dict:
    return rounded(Spread.of(values), digits)


def abba_ratios(measure_a: Callable[[], dict], measure_b: Callable[[], dict], blocks: int = 2) -> dict:
    """Runs A B, B A, `blocks` times (tests/benchmarks/abba.py's alternation, without its warm-up round:
    each section warms up once before its comparisons); each run returns a dict with a "rate". The
    ratio B/A is taken within each round, so slow drift of the machine cancels; its "text" says "no
    measurable difference" when the rounds disagree on which side of 1.0 it lies."""
    runs = alternate({"a": measure_a, "b": measure_b}, rounds=2 * blocks, warmup=0)
    rates = {name: [run["rate"] for run in results] for name, results in runs.items()}
    ratio = Ratio.within_rounds(rates["b"], rates["a"])
    return {"a_rate": spread(rates["a"], 1), "b_rate": spread(rates["b"], 1),
            "ratio_b_over_a": rounded(ratio) | {"text": ratio.format()},
            "a_runs": runs["a"], "b_runs": runs["b"]}


# ---------------------------------------------------------------------------------------------------
# Timing a Trainer: what is counted, and from when


class Meter:
    """Items and tokens the training steps consumed. Token counts stay on the device (no sync per step)."""

    def __init__(self):
        self.items = 0
        self.tokens = 0
        self.padded_tokens = 0
        self.mark = (0, 0, 0)
        self.losses: list = []  # each step's loss, left on the device until the run ends

    def add(self, inputs: dict) -> None:
        mask = inputs.get("attention_mask")
        first = next(iter(inputs.values()))
        self.items += len(first)
        if mask is not None:
            self.tokens = self.tokens + mask.sum()
            self.padded_tokens += mask.numel()
        elif "position_ids" in inputs:  # a padding-free row: every token is real
            self.tokens = self.tokens + inputs["input_ids"].new_tensor(inputs["input_ids"].numel())
            self.padded_tokens += inputs["input_ids"].numel()

    def snapshot(self) -> None:
        tokens = self.tokens.clone() if torch.is_tensor(self.tokens) else self.tokens
        self.mark = (self.items, tokens, self.padded_tokens)


def metered_trainer(meter: Meter, skip_steps: int, **trainer_kwargs):
    """A plain `Trainer` that counts what each step consumed and times the steps after the first `skip_steps`."""
    from transformers import PrinterCallback, Trainer, TrainerCallback

    class StepClock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == skip_steps:
                synchronize()
                meter.snapshot()
                meter.began = time.perf_counter()
            if state.global_step == state.max_steps:
                synchronize()
                meter.seconds = time.perf_counter() - meter.began

    class MeteredTrainer(Trainer):
        def training_step(self, model, inputs, num_items_in_batch=None):
            meter.add(inputs)
            loss = super().training_step(model, inputs, num_items_in_batch)
            meter.losses.append(loss.detach())
            return loss

    trainer = MeteredTrainer(callbacks=[StepClock()], **trainer_kwargs)
    trainer.remove_callback(PrinterCallback)  # its line per run would bury the suite's own output
    return trainer


def reset_process_state(tf32_default) -> None:
    """Undo what one Trainer leaves behind for the next in this process: accelerate keeps its first
    mixed-precision and torch.compile settings in a singleton (and TrainingArguments puts the compile
    backend into the environment), and `tf32=True` changes torch's global matmul precision."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=False)
    for name in [name for name in os.environ if name.startswith("ACCELERATE_DYNAMO_")]:
        del os.environ[name]
    if tf32_default is not None:
        torch.backends.fp32_precision = tf32_default


def tf32_setting():
    return getattr(torch.backends, "fp32_precision", None)


def train_rate(model, dataset, collator, settings: dict, steps: int, skip_steps: int, rate_of: str) -> dict:
    """Train `steps` optimizer steps with these TrainingArguments settings (ours: `fast_gpu` means what it means
    in a recipe); the rate of the last ones, each step's loss, the wall time of the whole run (compilation
    included) and the peak device memory."""
    from hf_tasks.args import TrainingArguments

    tf32_default = tf32_setting()
    reset_process_state(tf32_default)
    meter = Meter()
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as workdir:
        args = TrainingArguments(output_dir=workdir, max_steps=steps, logging_strategy="no", save_strategy="no",
                                 report_to="none", disable_tqdm=True, seed=42, use_cpu=not torch.cuda.is_available(),
                                 **settings)
        trainer = metered_trainer(meter, skip_steps, model=model, args=args, train_dataset=dataset,
                                  data_collator=collator)
        trainer.train()
    reset_process_state(tf32_default)
    items0, tokens0, padded0 = meter.mark
    figures = {"seconds": round(meter.seconds, 3), "timed_items": meter.items - items0,
               "items_per_second": round((meter.items - items0) / meter.seconds, 1),
               "run_seconds": round(time.perf_counter() - began, 2),
               "losses": [round(float(loss), 5) for loss in meter.losses]}
    if torch.cuda.is_available():
        figures["peak_memory_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    if torch.is_tensor(meter.tokens):
        tokens = int(meter.tokens - tokens0)
        figures.update(timed_tokens=tokens, timed_padded_tokens=meter.padded_tokens - padded0,
                       tokens_per_second=round(tokens / meter.seconds, 1),
                       padding_fraction=round(1 - tokens / (meter.padded_tokens - padded0), 3))
    figures["rate"] = figures[f"{rate_of}_per_second"]
    return figures


# ---------------------------------------------------------------------------------------------------
# Section 1: the existing GPU rows


def section_bert_finetune(suite: Suite, smoke: bool, cuda: bool) -> None:
    from tests.benchmarks import bench_bert_finetune

    size, questions = ("tiny", 64) if smoke else ("base", 12_000)
    with tempfile.TemporaryDirectory() as workdir:
        figures = bench_bert_finetune.measure(size, questions, 2, Path(workdir), cuda)
    peak = bench_bert_finetune.peak_tflops(torch.cuda.get_device_name(0)) if cuda else None
    figures["mfu_percent"] = round(100 * figures["model_tflops_per_second"] / peak, 1) if peak else None
    suite.write("bert_finetune", {
        "command": f"python -m tests.benchmarks.bench_bert_finetune --size {size} --questions {questions} --epochs 2",
        "setting": f"BERT-{size}, parsbert.yaml (batch 32, 384/128 windows, {'bf16' if cuda else 'fp32 CPU'}), "
                   f"{questions} questions", "peak_tflops": peak, **figures})
    suite.log(f"bert_finetune: {figures}")


def section_cifar10(suite: Suite, smoke: bool, cuda: bool) -> None:
    from tests.benchmarks import bench_cifar10

    models = ([("test_vit", 32, 8), ("test_resnet", 32, 8)] if smoke else
              [("deit_base_distilled_patch16_224", 224, 512), ("densenet201", 224, 512)])
    device = torch.device("cuda" if cuda else "cpu")
    for model_name, image_size, batch_size in models:
        args = SimpleNamespace(model=model_name, image_size=image_size, batch_size=batch_size,
                               trainable_modules="all" if smoke else "paper", bf16=cuda,
                               steps=3 if smoke else 20, warmup=1 if smoke else 3)
        rate, counts = bench_cifar10.model_images_per_second(args, device)
        row = {"trainable": args.trainable_modules,
               "trainable_params": counts["trainable_params"],
               "image_size": image_size, "batch_size": batch_size,
               "precision": "bf16 autocast" if args.bf16 else "fp32", "steps": args.steps,
               "train_images_per_second": round(rate, 1),
               "command": f"python -m tests.benchmarks.bench_cifar10 --model {model_name} --batch_size {batch_size} "
                          f"--image_size {image_size} --trainable_modules {args.trainable_modules} "
                          f"--steps {args.steps}"}
        suite.write("cifar10", {model_name: row})
        suite.log(f"cifar10 {model_name}: {rate:.1f} images/s")
    suite.write("cifar10", {"pipeline_224px_images_per_second_per_process":
                            round(bench_cifar10.pipeline_images_per_second(224, images=64 if smoke else 512), 1)})


# ---------------------------------------------------------------------------------------------------
# Section 2: BERT-base QA training options


def parsbert_speed_settings() -> dict:
    from hf_tasks.config_files import config_values

    config = config_values(Path(PARSBERT_CONFIG))
    return {key: config[key] for key in SPEED_KEYS if key in config}


def qa_windows(questions: int, max_windows: int):
    """The QA benchmark corpus cut into the recipe's windows (384 tokens, stride 128), as a Dataset."""
    from datasets import Dataset, DatasetDict
    from transformers import AutoTokenizer
    from hf_tasks.options import DataArguments

    from hf_tasks.tasks.qa import QAArguments, QuestionAnsweringTask
    from tests.benchmarks.bench_qa_windows import TOKENIZER, corpus

    tokenizer = AutoTokenizer.from_pretrained(TOKENIZER)
    task = QuestionAnsweringTask(DatasetDict(), tokenizer, DataArguments(max_seq_length=384),
                                 QAArguments(doc_stride=128))
    data = corpus(questions)[:]
    windows = task.tokenize_windows(data, list(range(questions)), keep_offsets=False)
    columns = ("input_ids", "token_type_ids", "attention_mask", "start_positions", "end_positions")
    dataset = Dataset.from_dict({name: windows[name][:max_windows] for name in columns})
    return dataset, task.data_collator, tokenizer


def fixed_length_windows(rows: int, length: int, vocab_size: int):
    from datasets import Dataset

    rng = np.random.default_rng(0)
    return Dataset.from_dict({
        "input_ids": rng.integers(5, vocab_size, size=(rows, length)).tolist(),
        "token_type_ids": np.zeros((rows, length), dtype=np.int64).tolist(),
        "attention_mask": np.ones((rows, length), dtype=np.int64).tolist(),
        "start_positions": rng.integers(0, length, size=rows).tolist(),
        "end_positions": rng.integers(0, length, size=rows).tolist(),
    })


def flattening_check(lengths: list[int], batch_size: int) -> dict:
    """Does a flattened (padding-free) batch give BERT the same outputs as separate sequences, with the
    attention this machine has? And the tokens padding-free batches would save on these windows."""
    from transformers import BertConfig, BertModel, DataCollatorWithFlattening
    from transformers.utils import is_flash_attn_2_available

    from tests.benchmarks.bench_qa_windows import tokens_per_epoch

    torch.manual_seed(0)
    config = BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                        vocab_size=100, attn_implementation="sdpa")
    model = BertModel(config).eval()
    sequences = [torch.randint(5, 100, (7,)), torch.randint(5, 100, (5,))]
    with torch.no_grad():
        separate = torch.cat([model(sequence[None]).last_hidden_state[0] for sequence in sequences])
        batch = DataCollatorWithFlattening()([{"input_ids": sequence.tolist()} for sequence in sequences])
        flat = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).last_hidden_state[0]
    real = sum(lengths)
    random_order = tokens_per_epoch(lengths, batch_size, grouped=False)
    grouped = tokens_per_epoch(lengths, batch_size, grouped=True)
    return {
        "bert_sdpa_keeps_flattened_sequences_apart": bool(torch.allclose(separate, flat, atol=1e-5)),
        "bert_supports_flash_attention": bool(getattr(BertModel, "_supports_flash_attn", False)),
        "flash_attention_2_installed": is_flash_attn_2_available(),
        "qa_head": "BertForQuestionAnswering scores start/end positions over each row of the batch; a flattened "
                   "batch is one row, so its loss would be one softmax across all packed questions: padding-free "
                   "batches do not fit the QA task without a head that splits rows at the sequence boundaries",
        "real_tokens": real,
        "padded_tokens_random_order": random_order,
        "padded_tokens_group_by_length": grouped,
        "tokens_saved_vs_random_order": round(1 - real / random_order, 3),
        "tokens_saved_vs_group_by_length": round(1 - real / grouped, 3),
    }


def section_bert_options(suite: Suite, smoke: bool, cuda: bool) -> None:
    from transformers import AutoModelForQuestionAnswering, BertConfig

    from tests.benchmarks.bench_bert_finetune import SIZES

    recipe = parsbert_speed_settings()
    if smoke:
        recipe.update(SMOKE_OVERRIDES, per_device_train_batch_size=4)
    batch = recipe["per_device_train_batch_size"]
    skip_steps, timed_steps = (1, 3) if smoke else (3, 15)
    steps = skip_steps + timed_steps
    blocks = 1 if smoke else 2
    dataset, collator, tokenizer = qa_windows(questions=steps * batch + 40, max_windows=steps * batch)
    size = "tiny" if smoke else "base"
    config = BertConfig(max_position_embeddings=512, attn_implementation="sdpa", **SIZES[size])
    torch.manual_seed(0)
    model = AutoModelForQuestionAnswering.from_config(config)
    suite.write("bert_options", {
        "model": f"BERT-{size} QA head, random weights", "recipe_settings": recipe, "batch_size": batch,
        "timed_steps_per_run": timed_steps, "after_untimed_steps": skip_steps, "abba_blocks": blocks,
        "windows": len(dataset), "device": torch.cuda.get_device_name(0) if cuda else "CPU",
        "command": f"python -m tests.benchmarks.gpu_suite --out OUT{' --smoke' if smoke else ''}",
    })

    def run(settings: dict, attention: str = "sdpa", data=dataset, data_collator=collator) -> Callable[[], dict]:
        def measure() -> dict:
            model.set_attn_implementation(attention)
            return train_rate(model, data, data_collator, settings, steps, skip_steps, rate_of="tokens")
        return measure

    plain = {key: recipe[key] for key in SAME_BATCH_KEYS if key in recipe}
    tf32_ok = cuda and torch.cuda.get_device_capability()[0] >= 8
    comparisons = [
        ("the recipe over plain Trainer defaults (fp32, random order, no workers); target 1.3", run(plain),
         run(recipe), True),
        ("fp32 instead of bf16", run(recipe), run({**recipe, "bf16": False}), True),
        ("eager attention instead of SDPA", run(recipe), run(recipe, attention="eager"), True),
        ("tf32 on", run(recipe), run({**recipe, "tf32": True}), tf32_ok),
        ("adamw_torch (for-each) instead of the default adamw_torch_fused", run(recipe),
         run({**recipe, "optim": "adamw_torch"}), True),
        ("random order instead of group_by_length", run(recipe),
         run({**recipe, "train_sampling_strategy": "random"}), True),
        ("0 loader workers, unpinned, instead of the recipe's workers", run(recipe),
         run({**recipe, "dataloader_num_workers": 0, "dataloader_pin_memory": False}), True),
        ("pad to a multiple of 8", run(recipe),
         run(recipe, data_collator=type(collator)(tokenizer, pad_to_multiple_of=8)), True),
    ]

    # Warm the device, the kernels and the allocator once, so the first A run is not the slowest.
    run(recipe)()
    rows = {}
    for index, (name, baseline, variant, possible) in enumerate(comparisons):
        if index == 1:
            mfu_at_384(suite, model, config, batch, skip_steps, steps, recipe, cuda)
        if not possible:
            rows[name] = {"status": "skipped: TF32 needs an Ampere or newer CUDA GPU"}
            suite.write("bert_options", {"comparisons": rows})
            continue
        began = time.monotonic()
        rows[name] = abba_ratios(baseline, variant, blocks)
        rows[name]["seconds"] = round(time.monotonic() - began, 1)
        suite.write("bert_options", {"comparisons": rows})
        ratio = rows[name]["ratio_b_over_a"]
        suite.log(f"bert_options: {name}: {ratio['text']}")
        if index == 0:
            suite.write("bert_options", {"flattening": flattening_check(
                [len(ids) for ids in dataset["input_ids"]], batch)})

    compile_needs = 90
    if smoke or suite.left() < compile_needs:
        rows["torch_compile"] = {"status": "skipped: " + ("--smoke" if smoke else f"under {compile_needs}s left")}
    else:
        compiled = run({**recipe, "torch_compile": True})
        compiled()  # compilation happens here, outside the timed runs
        rows["torch_compile"] = abba_ratios(run(recipe), compiled, blocks)
        ratio = rows["torch_compile"]["ratio_b_over_a"]
        suite.log(f"bert_options: torch_compile: {ratio['text']}")
    suite.write("bert_options", {"comparisons": rows})


def mfu_at_384(suite, model, config, batch, skip_steps, steps, recipe, cuda) -> None:
    """Tokens/s and MFU with every window 384 tokens long (no padding), the recipe's settings, two runs."""
    from transformers import default_data_collator

    from tests.benchmarks.bench_bert_finetune import peak_tflops, training_flops

    length = 384
    data = fixed_length_windows(batch * steps, length, config.vocab_size)
    model.set_attn_implementation("sdpa")
    rates = [train_rate(model, data, default_data_collator, recipe, steps, skip_steps, rate_of="tokens")["rate"]
             for _ in range(2)]
    flops_per_token = training_flops(model, config, np.full(batch, length)) / (batch * length)
    peak = peak_tflops(torch.cuda.get_device_name(0)) if cuda else None
    tflops = [rate * flops_per_token / 1e12 for rate in rates]
    suite.write("bert_options", {"mfu_seq_384": {
        "tokens_per_second": spread(rates, 1), "model_tflops_per_second": spread(tflops),
        "peak_tflops": peak, "mfu_percent": spread([100 * value / peak for value in tflops], 1) if peak else None,
        "target_percent": 35}})
    suite.log(f"bert_options: seq 384: {statistics.median(rates):.0f} tokens/s, {statistics.median(tflops):.3g} TFLOP/s"
              + (f", MFU {100 * statistics.median(tflops) / peak:.1f}%" if peak else ""))


# ---------------------------------------------------------------------------------------------------
# Issue 36, part 4: the compiled, bucketed step; padding-free classification; LoRA against full fine-tuning


def mfu_percent(rate: float, flops_per_item: float, peak: float | None) -> float | None:
    return round(100 * rate * flops_per_item / (peak * 1e12), 1) if peak else None


def section_fast_step(suite: Suite, smoke: bool, cuda: bool) -> None:
    """parsbert.yaml's QA job at its batch of 32: --fast_gpu (the recipe's settings plus the switch) against a
    plain Trainer on the same windows in the same order (target >= 2x, same losses to bf16 tolerance, MFU >=
    25%), compile time and break-even steps; then fixed 128 x 384 batches with --fast_gpu (target MFU >= 40%).
    Dropout is off, so that the two runs' losses differ by precision alone."""
    from transformers import AutoModelForQuestionAnswering, BertConfig, default_data_collator

    from hf_tasks.tasks.buckets import ShapeBuckets
    from hf_tasks.throughput import peak_tflops
    from tests.benchmarks.bench_bert_finetune import SIZES, training_flops

    recipe = parsbert_speed_settings()
    if smoke:
        recipe.update(SMOKE_OVERRIDES, per_device_train_batch_size=4, torch_compile_backend="eager")
    batch = recipe["per_device_train_batch_size"]
    skip_steps, timed_steps = (2, 3) if smoke else (5, 25)
    steps = skip_steps + timed_steps
    dataset, collator, tokenizer = qa_windows(questions=steps * batch + 40, max_windows=steps * batch)
    size = "tiny" if smoke else "base"
    config = BertConfig(max_position_embeddings=512, attn_implementation="sdpa", hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0, **SIZES[size])
    torch.manual_seed(0)
    model = AutoModelForQuestionAnswering.from_config(config)
    initial = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
    plain = {key: recipe[key] for key in SAME_BATCH_KEYS if key in recipe} | {"train_sampling_strategy": "sequential"}
    fast = {**recipe, "fast_gpu": True, "train_sampling_strategy": "sequential"}
    buckets = ShapeBuckets(collator, tokenizer.pad_token_id, 384, tokenizer.padding_side)
    peak = peak_tflops(torch.cuda.get_device_name(0)) if cuda else None
    lengths = np.array([len(ids) for ids in dataset["input_ids"]])
    flops_per_token = training_flops(model, config, lengths) / lengths.sum()
    suite.write("fast_step", {
        "model": f"BERT-{size} QA head, random weights, dropout 0", "batch_size": batch, "plain_settings": plain,
        "fast_settings": fast, "timed_steps_per_run": timed_steps, "after_untimed_steps": skip_steps,
        "mean_window_tokens": round(float(lengths.mean()), 1), "peak_tflops": peak,
        "command": f"python -m tests.benchmarks.gpu_suite --out OUT --sections fast_step{' --smoke' if smoke else ''}"})

    def run(settings: dict, data_collator) -> Callable[[], dict]:
        def measure() -> dict:
            model.load_state_dict(initial)
            return train_rate(model, dataset, data_collator, settings, steps, skip_steps, rate_of="tokens")
        return measure

    first_plain = run(plain, collator)()
    first_fast = run(fast, buckets)()  # compiles
    again_fast = run(fast, buckets)()
    compile_seconds = first_fast["run_seconds"] - again_fast["run_seconds"]
    plain_step, fast_step = (first_plain["seconds"] / timed_steps, again_fast["seconds"] / timed_steps)
    compared = min(len(first_plain["losses"]), 3)
    suite.write("fast_step", {
        "compile_seconds": round(compile_seconds, 1),
        "break_even_steps": round(compile_seconds / (plain_step - fast_step)) if plain_step > fast_step else None,
        "first_losses_plain": first_plain["losses"][:compared], "first_losses_fast": first_fast["losses"][:compared],
        "same_losses_to_bf16_tolerance": bool(np.allclose(first_fast["losses"][:compared],
                                                          first_plain["losses"][:compared], rtol=2e-2)),
    })
    comparison = abba_ratios(run(plain, collator), run(fast, buckets), blocks=1 if smoke else 2)
    fast_rate = comparison["b_rate"]["median"]
    suite.write("fast_step", {"fast_gpu_over_plain_trainer": comparison, "target_ratio": 2.0,
                              "fast_gpu_tokens_per_second": fast_rate,
                              "fast_gpu_mfu_percent": mfu_percent(fast_rate, flops_per_token, peak),
                              "target_mfu_percent": 25})
    suite.log(f"fast_step: --fast_gpu {comparison['ratio_b_over_a']['text']} the plain Trainer; "
              f"MFU {mfu_percent(fast_rate, flops_per_token, peak)}%; compile {compile_seconds:.0f}s")

    big_batch, length = (8, 64) if smoke else (128, 384)
    data = fixed_length_windows(big_batch * (3 if smoke else 8), length, config.vocab_size)
    big = {**fast, "per_device_train_batch_size": big_batch}
    rates = [train_rate(model, data, default_data_collator, big, 3 if smoke else 8, 1 if smoke else 3,
                        rate_of="tokens")["rate"] for _ in range(2)]
    per_token = training_flops(model, config, np.full(big_batch, length)) / (big_batch * length)
    suite.write("fast_step", {f"batch_{big_batch}_x_{length}": {
        "tokens_per_second": spread(rates, 1), "mfu_percent": [mfu_percent(rate, per_token, peak) for rate in rates],
        "target_mfu_percent": 40}})


def section_padding_free(suite: Suite, smoke: bool, cuda: bool) -> None:
    """BERT-base sequence classification on the FarsTail sample's pair lengths, batch 32, bf16: padding-free
    batches against dynamic padding (random order) and length-grouped padding, real tokens/s."""
    from datasets import Dataset
    from transformers import BertConfig, BertForSequenceClassification, DataCollatorWithPadding

    from hf_tasks.modeling.padding_free import enable_padding_free
    from hf_tasks.tasks.text import FlattenedSequences
    from tests.benchmarks.bench_bert_finetune import SIZES
    from tests.benchmarks.bench_padding_free import corpus_features

    features, tokenizer = corpus_features("farstail")
    dataset = Dataset.from_list([{**row, "labels": row.pop("label")} for row in features])
    batch = 4 if smoke else 32
    skip_steps, timed_steps = (1, 2) if smoke else (3, 15)
    settings = {"per_device_train_batch_size": batch, "bf16": cuda, "learning_rate": 3e-5}
    size = "tiny" if smoke else "base"
    attention = "flash_attention_2" if cuda and importlib.util.find_spec("flash_attn") else "sdpa"
    config = BertConfig(max_position_embeddings=512, num_labels=3, attn_implementation=attention,
                        **{**SIZES[size], "vocab_size": len(tokenizer)})
    torch.manual_seed(0)
    padded_model, flat_model = BertForSequenceClassification(config), BertForSequenceClassification(config)
    flat_model.load_state_dict(padded_model.state_dict())
    enable_padding_free(flat_model)

    def run(model, collator, order: str) -> Callable[[], dict]:
        return lambda: train_rate(model, dataset, collator, {**settings, "train_sampling_strategy": order},
                                  skip_steps + timed_steps, skip_steps, rate_of="tokens")

    suite.write("padding_free", {"model": f"BERT-{size} sequence classifier, random weights, {attention}",
                                 "data": "FarsTail sample pairs (tiny tokenizer), max 128", "batch_size": batch})
    flat = run(flat_model, FlattenedSequences(), "random")
    flat()
    for name, baseline in (("dynamic padding, random order", run(padded_model, DataCollatorWithPadding(tokenizer),
                                                                  "random")),
                           ("group_by_length", run(padded_model, DataCollatorWithPadding(tokenizer),
                                                   "group_by_length"))):
        comparison = abba_ratios(baseline, flat, blocks=1)
        suite.write("padding_free", {f"padding_free_over_{name}": comparison})
        suite.log(f"padding_free: {comparison['ratio_b_over_a']['text']} {name}")


class SyntheticImages(torch.utils.data.Dataset):
    """Random 224 px images with random labels: DeiT's work without image files."""

    def __init__(self, images: int, size: int, labels: int):
        self.images, self.size, self.labels = images, size, labels

    def __len__(self):
        return self.images

    def __getitem__(self, index):
        generator = torch.Generator().manual_seed(index)
        return {"pixel_values": torch.randn(3, self.size, self.size, generator=generator),
                "labels": index % self.labels}


def section_lora(suite: Suite, smoke: bool, cuda: bool) -> None:
    """LoRA (the recipes' --peft lora defaults) against full fine-tuning: rate and peak GPU memory of BERT-base
    QA (windows, batch 32), HuBERT-base (6 s clips, batch 8) and DeiT-B (224 px, batch 64), bf16."""
    from transformers import (AutoModelForQuestionAnswering, BertConfig, DeiTConfig, DeiTForImageClassification,
                              HubertConfig, HubertForSequenceClassification, default_data_collator)

    from hf_tasks.surgery.lora import LoraArguments, apply_lora
    from tests.benchmarks.bench_bert_finetune import SIZES

    skip_steps, timed_steps = (1, 2) if smoke else (3, 10)
    steps = skip_steps + timed_steps
    tiny_vision = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    families = {
        "bert_qa": (lambda: AutoModelForQuestionAnswering.from_config(BertConfig(
            max_position_embeddings=512, **SIZES["tiny" if smoke else "base"])), 4 if smoke else 32, "tokens"),
        "hubert": (lambda: HubertForSequenceClassification(HubertConfig(num_labels=6, **(
            dict(tiny_vision, conv_dim=(32, 32), conv_stride=(5, 4), conv_kernel=(10, 4), num_conv_pos_embeddings=16)
            if smoke else {}))), 2 if smoke else 8, "items"),
        "deit_b": (lambda: DeiTForImageClassification(DeiTConfig(num_labels=10, **(
            dict(tiny_vision, image_size=32, patch_size=8) if smoke else {}))), 4 if smoke else 64, "items"),
    }
    for name, (build, batch, rate_of) in families.items():
        if name == "bert_qa":
            data, collator, _ = qa_windows(questions=steps * batch + 40, max_windows=steps * batch)
        elif name == "hubert":
            clip_samples = int(16_000 * (0.25 if smoke else 6.0))
            data, collator = SyntheticClips(batch * steps, clip_samples, 6), default_data_collator
        else:
            data, collator = SyntheticImages(batch * steps, 32 if smoke else 224, 10), default_data_collator
        settings = {"per_device_train_batch_size": batch, "bf16": cuda, "learning_rate": 1e-4}
        row = {}
        for regime in ("full", "lora"):
            torch.manual_seed(0)
            model = build()
            if regime == "lora":
                model = apply_lora(model, LoraArguments(peft="lora"))
            trainable = sum(parameter.numel() for parameter in model.parameters() if parameter.requires_grad)
            figures = train_rate(model, data, collator, settings, steps, skip_steps, rate_of=rate_of)
            row[regime] = {"rate": figures["rate"], "rate_of": rate_of, "trainable_params": trainable,
                           "peak_memory_mb": figures.get("peak_memory_mb")}
            del model
            gc.collect()
            suite.write("lora", {name: row})
        row["lora_over_full_rate"] = round(row["lora"]["rate"] / row["full"]["rate"], 3)
        if row["full"]["peak_memory_mb"]:
            row["lora_over_full_memory"] = round(row["lora"]["peak_memory_mb"] / row["full"]["peak_memory_mb"], 3)
        suite.write("lora", {name: row})
        suite.log(f"lora {name}: rate x{row['lora_over_full_rate']}, memory x{row.get('lora_over_full_memory')}")


# ---------------------------------------------------------------------------------------------------
# Section 3: HuBERT-base clips/s


class SyntheticClips(torch.utils.data.Dataset):
    """Random 16 kHz waveforms of one length with random labels: the model's work without audio files."""

    def __init__(self, clips: int, samples: int, labels: int):
        rng = np.random.default_rng(0)
        self.values = rng.standard_normal((clips, samples), dtype=np.float32)
        self.labels = rng.integers(0, labels, size=clips)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return {"input_values": self.values[index], "labels": int(self.labels[index])}


def section_hubert(suite: Suite, smoke: bool, cuda: bool) -> None:
    from transformers import HubertConfig, default_data_collator

    from hf_tasks.modeling.audio import PooledAudioClassifier, PooledAudioClassifierConfig

    from hf_tasks.config_files import config_values

    config = config_values(Path(SHEMO_CONFIG))
    recipe = {key: config[key] for key in SPEED_KEYS if key in config}
    if smoke:
        recipe.update(SMOKE_OVERRIDES)
    encoder = (HubertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                            conv_dim=(32, 32), conv_stride=(5, 4), conv_kernel=(10, 4), num_conv_pos_embeddings=16)
               if smoke else HubertConfig())
    torch.manual_seed(0)
    model = PooledAudioClassifier(PooledAudioClassifierConfig(
        encoder=encoder, num_labels=6, head_hidden_size=config["head_hidden_size"],
        head_dropout=config["head_dropout"]))
    model.freeze_feature_encoder()
    skip_steps, timed_steps = (1, 2) if smoke else (2, 10)
    steps = skip_steps + timed_steps
    seconds = 0.25 if smoke else config["max_duration"]
    clips_per_step = recipe["per_device_train_batch_size"] * recipe.get("gradient_accumulation_steps", 1)
    dataset = SyntheticClips(clips_per_step * steps, int(16_000 * seconds), 6)
    plain = {key: recipe[key] for key in SAME_BATCH_KEYS if key in recipe}
    suite.write("hubert", {"model": f"HuBERT-{'tiny' if smoke else 'base'} + pooled head, random weights, "
                                    "feature encoder frozen", "clip_seconds": seconds,
                           "recipe_settings": recipe, "plain_settings": plain, "timed_steps_per_run": timed_steps})

    def run(settings):
        return lambda: train_rate(model, dataset, default_data_collator, settings, steps, skip_steps, rate_of="items")

    run(recipe)()
    comparison = abba_ratios(run(plain), run(recipe), blocks=1 if smoke else 2)
    suite.write("hubert", {"recipe_vs_plain_trainer": comparison,
                           "recipe_clips_per_second": comparison["b_rate"]["median"]})
    suite.log(f"hubert: recipe {comparison['b_rate']['median']} clips/s, "
              f"{comparison['ratio_b_over_a']['text']} a plain Trainer")


# ---------------------------------------------------------------------------------------------------
# Section 4: the accelerate presets


def section_presets(suite: Suite, smoke: bool, cuda: bool) -> None:
    presets = {"fsdp": None, "deepspeed_zero2": "deepspeed", "deepspeed_zero3": "deepspeed"}
    for preset, needs in presets.items():
        if needs and importlib.util.find_spec(needs) is None:
            suite.write("presets", {preset: {"status": f"not installed: {needs}"}})
            continue
        with tempfile.TemporaryDirectory() as workdir:
            command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                       f"recipes/accelerate/{preset}.yaml", "--num_processes", "1",
                       *([] if cuda else ["--mixed_precision", "no"]),
                       "recipes/parsquad.py", "--config", "recipes/configs/parsquad/tiny.yaml",
                       "--output_dir", workdir, "--max_steps", "5", "--do_eval", "false", "--do_predict", "false",
                       "--eval_strategy", "no", "--save_strategy", "no", "--load_best_model_at_end", "false",
                       "--logging_steps", "1", "--bf16", str(cuda).lower(), "--use_cpu", str(not cuda).lower()]
            began = time.monotonic()
            try:
                done = subprocess.run(command, capture_output=True, text=True, timeout=max(5.0, suite.left() - 3))
                status = "trained" if done.returncode == 0 else f"exit status {done.returncode}"
                tail = (done.stdout + done.stderr)[-1500:]
            except subprocess.TimeoutExpired as expired:
                status, tail = "timed out", (expired.stderr or b"").decode(errors="replace")[-1500:]
            results_file = Path(workdir) / "results.json"
            results = json.loads(results_file.read_text()) if results_file.exists() else {}
        suite.log_file.write(f"--- {preset} output ---\n{tail}\n")
        suite.write("presets", {preset: {
            "status": status, "seconds": round(time.monotonic() - began, 1), "train_loss": results.get("train_loss"),
            "command": "accelerate launch " + " ".join(command[3:]).replace(workdir, "OUT_DIR"),
            "output_tail": tail if status != "trained" else None}})
        suite.log(f"presets: {preset}: {status}")
    suite.write("presets", {"needs_several_gpus": "ddp.yaml, fsdp.yaml and the DeepSpeed presets shard or replicate "
                                                  "across processes: one process shows they start and train, "
                                                  "not their scaling; multi_node.yaml needs several machines"})


# ---------------------------------------------------------------------------------------------------


def summary(suite: Suite) -> str:
    """The closing table: one line per figure."""
    results = suite.results
    lines = ["Ratios are variant / baseline (median and range over alternated rounds): above 1, the named "
             "variant is faster.", "", "| section | figure | value |", "|---|---|---|"]
    for section, figures in results.items():
        lines.append(f"| {section} | status | {figures.get('status')} |")
    bert = results.get("bert_finetune", {})
    if "tokens_per_second" in bert:
        lines.append(f"| bert_finetune | tokens/s, MFU % | {bert['tokens_per_second']}, {bert.get('mfu_percent')} |")
    for name, row in results.get("cifar10", {}).items():
        if isinstance(row, dict) and "train_images_per_second" in row:
            lines.append(f"| cifar10 | {name} images/s (batch {row['batch_size']}, {row['precision']}) | "
                         f"{row['train_images_per_second']} |")
    options = results.get("bert_options", {})
    mfu = options.get("mfu_seq_384")
    if mfu:
        lines.append(f"| bert_options | seq 384: tokens/s, MFU % | {mfu['tokens_per_second']['median']}, "
                     f"{mfu['mfu_percent']['median'] if mfu['mfu_percent'] else None} |")
    for name, row in options.get("comparisons", {}).items():
        value = row["ratio_b_over_a"]["text"] if "ratio_b_over_a" in row else row.get("status")
        lines.append(f"| bert_options | {name} | {value} |")
    flat = options.get("flattening")
    if flat:
        lines.append(f"| bert_options | padding-free tokens saved vs group_by_length (SDPA keeps sequences apart: "
                     f"{flat['bert_sdpa_keeps_flattened_sequences_apart']}) | "
                     f"{flat['tokens_saved_vs_group_by_length']} |")
    hubert = results.get("hubert", {}).get("recipe_vs_plain_trainer")
    if hubert:
        lines.append(f"| hubert | clips/s recipe, plain; ratio | "
                     f"{hubert['b_rate']['median']}, {hubert['a_rate']['median']}; "
                     f"{hubert['ratio_b_over_a']['text']} |")
    fast = results.get("fast_step", {})
    if "fast_gpu_over_plain_trainer" in fast:
        lines.append(f"| fast_step | --fast_gpu / plain Trainer, batch {fast['batch_size']} (target 2x) | "
                     f"{fast['fast_gpu_over_plain_trainer']['ratio_b_over_a']['text']} |")
        lines.append(f"| fast_step | --fast_gpu tokens/s, MFU % (target 25) | {fast['fast_gpu_tokens_per_second']}, "
                     f"{fast['fast_gpu_mfu_percent']} |")
        lines.append(f"| fast_step | compile s, break-even steps, same losses (bf16 tolerance) | "
                     f"{fast['compile_seconds']}, {fast['break_even_steps']}, "
                     f"{fast['same_losses_to_bf16_tolerance']} |")
    for key, row in fast.items():
        if key.startswith("batch_") and isinstance(row, dict):
            lines.append(f"| fast_step | {key}: tokens/s, MFU % (target 40) | {row['tokens_per_second']['median']}, "
                         f"{row['mfu_percent']} |")
    for key, row in results.get("padding_free", {}).items():
        if key.startswith("padding_free_over_"):
            lines.append(f"| padding_free | {key.replace('_', ' ')} | {row['ratio_b_over_a']['text']} |")
    for name, row in results.get("lora", {}).items():
        if isinstance(row, dict) and "lora_over_full_rate" in row:
            lines.append(f"| lora | {name}: LoRA / full rate, peak memory | {row['lora_over_full_rate']}, "
                         f"{row.get('lora_over_full_memory')} |")
    for name, row in results.get("presets", {}).items():
        if isinstance(row, dict):
            lines.append(f"| presets | {name} | {row['status']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path,
                        help="folder for the section JSONs, suite.log and summary.md")
    parser.add_argument("--budget_s", type=float, default=480, help="wall seconds for everything, imports included")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny models and a few steps: checks the code on any machine")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS),
                        help="which sections to run (in the suite's order, under its caps)")
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import datasets

    transformers.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    cuda = torch.cuda.is_available()
    suite = Suite(args.out, args.budget_s)
    suite.log(f"device: {torch.cuda.get_device_name(0) if cuda else 'CPU'}; torch {torch.__version__}, "
              f"transformers {transformers.__version__}, datasets {datasets.__version__}; budget {args.budget_s:.0f}s")
    caps = SMOKE_CAPS_S if args.smoke else GPU_CAPS_S
    for section in SECTIONS:
        if section in args.sections:
            body = globals()[f"section_{section}"]
            suite.run_section(section, caps[section], lambda body=body: body(suite, args.smoke, cuda))
    table = summary(suite)
    (args.out / "summary.md").write_text(table, encoding="utf-8")
    print(table)


if __name__ == "__main__":
    main()
