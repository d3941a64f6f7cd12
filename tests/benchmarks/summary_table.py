"""The benchmark table of the docs (docs/benchmarks.md), built from the rows recorded in results/*.md.

    python -m tests.benchmarks.summary_table

Prints the table as Markdown; the docs build makes the same rows into the page's table (the `benchmark-table`
directive), so a new recorded row shows up there at the next build. Each benchmark's entry is made from the rows
under its table's latest header, the ones recorded by the benchmark's current code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

RESULTS = Path(__file__).parent / "results"


def latest_rows(name: str) -> list[dict[str, str]]:
    """The rows of results/<name>.md under its last header, as column → text."""
    lines = (RESULTS / f"{name}.md").read_text().splitlines()
    header_at = max(index for index, line in enumerate(lines) if line.startswith("| date |"))
    columns = [cell.strip() for cell in lines[header_at].strip("|").split("|")]
    rows = []
    for line in lines[header_at + 2:]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(columns, (cell.strip() for cell in line.strip("|").split("|")))))
    return rows


def _where(row: dict[str, str]) -> str:
    return f"{row['date']}, {row['machine']}" + (f", load {row['load_average']}" if "load_average" in row else "")


def _qa_postprocess(rows):
    row = rows[-1]
    return (f"{row['speedup']}, identical predictions; {row['examples']} examples ({_where(row)})")


def _qa_windows(rows):
    row = rows[-1]
    return (f"windowing {row['windowing_speedup']}; {row['padding_saving_vs_512']}x fewer tokens per epoch than "
            f"padding to 512 ({_where(row)})")


def _startup(rows):
    row = rows[-1]
    return (f"{row['questions']} questions: first run {row['first_run_seconds']} s, second "
            f"{row['second_run_seconds']} s; {row['speedup']} ({_where(row)})")


def _training_overhead(rows):
    row = rows[-1]
    recipes = [column.removesuffix("_step_time_ratio") for column in row if column.endswith("_step_time_ratio")]
    parts = [f"{recipe} {row[f'{recipe}_step_time_ratio']}, {row[f'{recipe}_verdict']}" for recipe in recipes]
    checks = "; ".join(f"{recipe} {row[f'{recipe}_interrupt_check']}" for recipe in recipes)
    return (f"step time runner/bare Trainer: {'; '.join(parts)}. The interrupt check, the runner's only per-step "
            f"work: {checks} ({row['setting']}; {_where(row)})")


def _pruning(rows):
    row = rows[-1]
    return (f"inference speed-up {row['speedup']} (the removed FLOPs bound it at {row['flops_ratio_bound']}x); "
            f"{row['size_reduction']} smaller, logits within {row['max_abs_logit_difference_vs_gated']} of the gated "
            f"model; batch {row['batch']} ({_where(row)})")


def _export(rows):
    row = rows[-1]
    sizes = [column.removeprefix("batch_").removesuffix("_ms_pytorch_full_fp32") for column in row
             if column.endswith("_ms_pytorch_full_fp32")]
    speedups = "; ".join(
        f"batch {size}: pruned + int8 {row[f'batch_{size}_speedup_onnx_pruned_int8_vs_pytorch_full_fp32']}, "
        f"full fp32 ONNX {row[f'batch_{size}_speedup_onnx_full_fp32_vs_pytorch_full_fp32']}" for size in sizes)
    return (f"ONNX Runtime over PyTorch fp32, {speedups}; ONNX fp32 {row['size_mb_onnx_full_fp32']} MB, pruned + int8 "
            f"{row['size_mb_onnx_pruned_int8']} MB with logits within "
            f"{row['max_abs_diff_vs_pytorch_onnx_pruned_int8']} "
            f"of PyTorch; int8 accuracy change on a tiny pruned FarsTail run "
            f"{row['tiny_farstail_prune50_int8_accuracy_change']} ({row['tiny_farstail_prune50_accuracy']}); "
            f"seq {row['seq_length']}, {row['threads']} thread, {row['setting']} ({_where(row)})")


def _feature_cache(rows):
    by_head = {row["head"]: row for row in rows}
    return "; ".join(
        f"{head}: {row['train_speedup']}, same losses and metrics (accuracy {row['eval_accuracy']}, F1 real/fake "
        f"{row['eval_f1_real_fake']}, {row['epochs']} epochs) ({_where(row)})"
        for head, row in by_head.items())


def _audio(rows):
    row = rows[-1]
    return (f"clips/s: HuBERT's training transform {row['training_transform_hubert_base']}; reading 44.1 kHz stereo "
            f"to 16 kHz {row['read_44k_stereo_to_16k']}; the task's decode step {row['task_decode_with_cache_write']} "
            f"({_where(row)})")


def _cifar10(rows):
    return "; ".join(
        f"{row['model']} ({row['trainable']} trainable, {row['precision']}, batch {row['batch_size']}): "
        f"{row['train_images_per_second']} images/s, one timed run ({_where(row)})" for row in rows)


def _bert_finetune(rows):
    return "; ".join(
        f"{row['setting']}: {row['tokens_per_second']} tokens/s, {row['model_tflops_per_second']} TFLOP/s"
        + (f", MFU {row['mfu_percent']}%" if row["mfu_percent"] != "None" else "") + f", one timed run ({_where(row)})"
        for row in rows)


def _help(rows):
    row = rows[-1]
    return (f"{row['recipe']}: built {row['built_seconds']} s, cached {row['cached_seconds']} s; {row['speedup']} "
            f"({_where(row)})")


def _study_storage(rows):
    row = rows[-1]
    claims = "; ".join(f"{storage}: {row[f'{storage}: trials_per_second']} trials/s (median claim "
                       f"{row[f'{storage}: median_claim_s']} s, slowest {row[f'{storage}: slowest_claim_s']} s)"
                       for storage in ("postgresql", "journal"))
    return f"{claims}; {row['postgresql: workers']} workers, {row['postgresql: trials']} trials in all ({_where(row)})"


def _padding_free(rows):
    row = rows[-1]
    parts = [f"{corpus}: padding-free over dynamic padding {row[f'{corpus}_padding_free_over_dynamic']}, over "
             f"length-grouped {row[f'{corpus}_padding_free_over_grouped']}; padding computed: dynamic "
             f"{row[f'{corpus}_dynamic_padding_percent']}%, grouped {row[f'{corpus}_grouped_padding_percent']}%, "
             f"--fast_gpu buckets {row[f'{corpus}_buckets_padding_percent']}%"
             for corpus in ("farstail", "constraint")]
    return "; ".join(parts) + f" ({row['setting']}; {_where(row)})"


def _fast_gpu(rows):
    row = rows[-1]
    return (f"one epoch: buckets {row['buckets_graphs']} graphs for {row['buckets_batch_lengths']} batch lengths, "
            f"{row['buckets_padding_percent']}% padding; dynamic padding {row['dynamic_padding_graphs']} graphs for "
            f"{row['dynamic_padding_batch_lengths']} lengths (recompile limit hit: "
            f"{row['dynamic_padding_recompile_limit_hit']}), {row['dynamic_padding_padding_percent']}% padding "
            f"({row['setting']}; {_where(row)})")


ENTRIES: list[tuple[str, str, Callable[[list[dict[str, str]]], str]]] = [
    # (results name, what it measures, figures from its rows)
    ("qa_postprocess", "QA postprocessing vs the per-window double loop", _qa_postprocess),
    ("qa_windows", "QA windowing vs the transformers example's preprocessing", _qa_windows),
    ("startup", "QA start-up: empty preprocessing cache vs a filled one", _startup),
    ("help", "a recipe's `--help` in a new process: built (first call) vs from the help cache", _help),
    ("training_overhead", "runner vs a bare `Trainer`, tiny training recipes", _training_overhead),
    ("pruning", "head pruning, 50% of a ParsBERT-sized model's heads", _pruning),
    ("export", "serving a ParsBERT-sized classifier: ONNX full, 50% heads pruned, pruned + int8", _export),
    ("feature_cache", "frozen-backbone feature cache (MiniLM-L6)", _feature_cache),
    ("audio", "audio loading, resampling, augmentation", _audio),
    ("cifar10", "CIFAR-10 model step (no variants compared)", _cifar10),
    ("bert_finetune", "BERT fine-tuning through the parsquad recipe: tokens/s and MFU (no variants compared)",
     _bert_finetune),
    ("study_storage", "a search's trials claimed by 32 workers from one optuna storage", _study_storage),
    ("padding_free", "padding-free classification batches vs dynamic and length-grouped padding, real tokens/s",
     _padding_free),
    ("fast_gpu", "`--fast_gpu` shape buckets: compiled graphs and padding over an epoch (counts, CPU)", _fast_gpu),
]


def rows() -> list[tuple[str, str, str]]:
    """(what it measures, the benchmark's module, its latest figures) for every benchmark."""
    return [(what, f"bench_{name}", figures(latest_rows(name))) for name, what, figures in ENTRIES]


def table() -> str:
    lines = ["| what | command (`python -m tests.benchmarks.…`) | recorded (median, range over alternated rounds) |",
             "|---|---|---|"]
    lines += [f"| {what} | `{command}` | {figures} |" for what, command, figures in rows()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(table(), end="")
