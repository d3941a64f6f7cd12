"""Extractive question answering with unanswerable questions (PQuAD, SQuAD v2).

validated question rows (`hf_tasks.data.squad`) → overlapping token windows with offsets → dynamic
padding → best span per example across its windows, or no answer when the null score wins → SQuAD v2
EM/F1 with language-aware normalisation.
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from datasets import Dataset, DatasetDict
from transformers import DataCollatorWithPadding

from hf_tasks.errors import BadInputError
from hf_tasks.files import write_atomic, write_with
from hf_tasks.metrics.squad import best_null_threshold, per_question_scores, squad_v2_scores
from hf_tasks.modeling.qa_pipeline import ANSWER_SETTINGS_KEY, NULL_THRESHOLD_KEY, postprocess
from hf_tasks.data.cache import preprocessing_cache, tokenizer_fingerprint
from hf_tasks.data.splits import SPLITS
from hf_tasks.tasks.base import Task

logger = logging.getLogger(__name__)

# Bump when `QuestionAnsweringTask.tokenize_windows` changes the windows it builds (a test holds its source).
WINDOWS_VERSION = 1


@dataclass
class QAArguments:
    doc_stride: int = field(default=128, metadata={"help": "Tokens shared by consecutive windows of a long context."})
    n_best_size: int = field(default=20, metadata={"help": "Top start and end logits searched per window."})
    max_answer_length: int = field(default=30, metadata={"help": "Longest answer span, in tokens."})
    null_score_diff_threshold: float | None = field(
        default=None,
        metadata={"help": "Predict no answer when null score - best span score exceeds this. Unset: the threshold "
                          "stored in the model's config by an earlier --tune_null_threshold run, else 0.0."},
    )
    tune_null_threshold: bool = field(
        default=False,
        metadata={"help": "Pick the threshold that maximises validation F1, use it for the test split and store it "
                          "in the model's config; validation EM/F1 at it are eval_tuned_exact/eval_tuned_f1."},
    )
    answer_language: str = field(
        default="fa", metadata={"help": "Answer normalisation for EM/F1: 'fa' (Persian) or 'en' (official SQuAD)."}
    )


def context_offsets(features: Dataset, width: int) -> np.ndarray:
    """(features, width, 2) character offsets of context tokens; -1 elsewhere and in padding."""
    column = features.with_format("arrow")[:]["offset_mapping"]
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    lengths = column.value_lengths().to_numpy()
    flat = column.flatten().flatten().to_numpy().reshape(-1, 2)
    rows = np.repeat(np.arange(len(lengths)), lengths)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    cols = np.arange(len(flat)) - np.repeat(starts, lengths)
    offsets = np.full((len(lengths), width, 2), -1, dtype=np.int64)
    keep = cols < width
    offsets[rows[keep], cols[keep]] = flat[keep]
    return offsets


class QuestionAnsweringTask(Task):
    """SQuAD v2-style extractive QA: windows in, answer texts and EM/F1 out."""

    padding_free_refusal = ("the span head scores start and end over each row, so a flattened row would be one "
                            "softmax across every packed window")

    feature_unit = "windows"

    def __init__(self, data: DatasetDict, tokenizer, data_args, qa_args: QAArguments, model_config=None):
        """`data` holds the question rows of each split (`hf_tasks.data.squad.load`); `data_args` gives
        the sequence length and preprocessing settings. `model_config` is the config of the model this
        task scores: a threshold stored there is the default, and a tuned one is written there, so that
        it is saved with the model."""
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError("QA needs a fast tokenizer (offset mappings); this checkpoint's tokenizer is not one.")
        self.data, self.data_args, self.qa_args, self.tokenizer = data, data_args, qa_args, tokenizer
        self.max_seq_length = data_args.max_seq_length or 384
        if qa_args.doc_stride >= self.max_seq_length:
            raise BadInputError(f"--doc_stride {qa_args.doc_stride} must be smaller than --max_seq_length "
                                f"{self.max_seq_length}; lower --doc_stride (e.g. to a quarter of it).")
        self.data_collator = DataCollatorWithPadding(tokenizer)
        self.model_config = model_config
        if model_config is not None:
            # Saved with the model, so that its shipped pipeline builds the same windows and picks the same spans.
            setattr(model_config, ANSWER_SETTINGS_KEY, {
                "max_seq_length": self.max_seq_length, "doc_stride": qa_args.doc_stride,
                "n_best_size": qa_args.n_best_size, "max_answer_length": qa_args.max_answer_length})
        self.stored_threshold = getattr(model_config, NULL_THRESHOLD_KEY, None)
        if qa_args.null_score_diff_threshold is not None:
            self.default_threshold = qa_args.null_score_diff_threshold
        else:
            self.default_threshold = 0.0 if self.stored_threshold is None else self.stored_threshold
        self.tuned_threshold: float | None = None
        self.examples: dict[str, Dataset] = {}
        self.windows: dict[str, Dataset] = {}
        self.scored: dict[str, dict] = {}
        self._offsets: dict[tuple[str, int], np.ndarray] = {}

    def unavailable_metrics(self) -> dict[str, str]:
        if self.qa_args.tune_null_threshold:
            return {}
        return dict.fromkeys(("tuned_exact", "tuned_f1", "tuned_null_threshold"),
                             "reported only with --tune_null_threshold true; turn tuning on or choose f1")

    def build_features(self, training_args) -> dict[str, Dataset]:
        built = {}
        with training_args.main_process_first(desc="QA windows"):
            for name in SPLITS:
                if name not in self.data:
                    continue
                examples = self.data[name]
                self.check_window_room(examples)
                windows = examples.map(
                    self.tokenize_windows,
                    batched=True,
                    with_indices=True,
                    remove_columns=examples.column_names,
                    fn_kwargs={"keep_offsets": name != "train"},
                    num_proc=self.data_args.preprocessing_num_workers,
                    load_from_cache_file=not self.data_args.overwrite_cache,
                    desc=f"Windows of {name}",
                    **(self.windows_cache(examples, name != "train") or {}),
                )
                if name != "train":
                    self.examples[name], self.windows[name] = examples, windows
                built[name] = windows.remove_columns([c for c in ("example_id", "example_index", "offset_mapping")
                                                        if c in windows.column_names])
        return built

    def check_window_room(self, examples: Dataset) -> None:
        """Stop when a question leaves its windows no more room for the context than --doc_stride tokens (the
        tokenizer cannot cut such a context into windows), naming the longest question."""
        questions = [question.lstrip() for question in examples["question"]]
        if not questions:
            return
        lengths = [len(ids) for ids in self.tokenizer(questions, add_special_tokens=False)["input_ids"]]
        longest = int(np.argmax(lengths))
        room = self.max_seq_length - lengths[longest] - self.tokenizer.num_special_tokens_to_add(pair=True)
        if room <= self.qa_args.doc_stride:
            raise BadInputError(
                f"question id {examples[longest]['id']!r}: its {lengths[longest]} tokens leave {max(room, 0)} of "
                f"each {self.max_seq_length}-token window for the context, not more than --doc_stride "
                f"{self.qa_args.doc_stride}; raise --max_seq_length or lower --doc_stride.")

    def windows_cache(self, examples: Dataset, keep_offsets: bool) -> dict[str, str] | None:
        """An on-disk cache of a split's windows, keyed by its rows, the tokenizer and the window settings."""
        return preprocessing_cache(
            self.data_args, examples, "qa-windows", WINDOWS_VERSION,
            tokenizer_fingerprint(self.tokenizer), self.max_seq_length, self.qa_args.doc_stride, keep_offsets,
        )

    def tokenize_windows(self, examples: dict[str, list], indices: list[int], keep_offsets: bool) -> dict[str, list]:
        """Overlapping windows of question + context with answer token positions ([CLS] when absent)."""
        encoded = self.tokenizer(
            [question.lstrip() for question in examples["question"]],
            examples["context"],
            truncation="only_second",
            max_length=self.max_seq_length,
            stride=self.qa_args.doc_stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
        )
        sample_of_window = encoded.pop("overflow_to_sample_mapping")
        offsets_of_windows = encoded.pop("offset_mapping")
        starts, ends, example_ids, example_indices, context_offsets_ = [], [], [], [], []
        for window, offsets in enumerate(offsets_of_windows):
            sample = sample_of_window[window]
            sequence_ids = encoded.sequence_ids(window)
            cls_index = encoded["input_ids"][window].index(self.tokenizer.cls_token_id)
            context = [i for i, sequence in enumerate(sequence_ids) if sequence == 1]
            first, last = context[0], context[-1]
            answers = examples["answers"][sample]
            start_token = end_token = cls_index
            if answers["answer_start"]:
                start_char = answers["answer_start"][0]
                end_char = start_char + len(answers["text"][0])
                if offsets[first][0] <= start_char and offsets[last][1] >= end_char:
                    token_starts = np.array([offsets[i][0] for i in range(first, last + 1)])
                    token_ends = np.array([offsets[i][1] for i in range(first, last + 1)])
                    start_token = first + int(np.searchsorted(token_ends, start_char, side="right"))
                    end_token = first + int(np.searchsorted(token_starts, end_char, side="left")) - 1
            starts.append(start_token)
            ends.append(end_token)
            if keep_offsets:
                example_ids.append(examples["id"][sample])
                example_indices.append(indices[sample])
                context_offsets_.append([list(offset) if sequence == 1 else [-1, -1]
                                         for offset, sequence in zip(offsets, sequence_ids)])
        encoded["start_positions"], encoded["end_positions"] = starts, ends
        if keep_offsets:
            encoded["example_id"] = example_ids
            encoded["example_index"] = example_indices
            encoded["offset_mapping"] = context_offsets_
        return encoded

    def score(self, split: str, predictions: Any, label_ids: Any) -> dict[str, float]:
        start_logits, end_logits = (np.asarray(array) for array in predictions[:2])
        windows, examples = self.windows[split], self.examples[split]
        width = start_logits.shape[1]
        if (split, width) not in self._offsets:
            self._offsets[split, width] = context_offsets(windows, width)
        texts, score_diffs = postprocess(
            examples["context"],
            np.asarray(windows["example_index"]),
            self._offsets[split, width],
            start_logits,
            end_logits,
            self.qa_args.n_best_size,
            self.qa_args.max_answer_length,
        )
        metrics: dict[str, float] = {"loss": self.window_loss(split, start_logits, end_logits)}
        ids = examples["id"]
        references = {row_id: answers["text"] for row_id, answers in zip(ids, examples["answers"])}
        best_texts = dict(zip(ids, texts))
        diffs = dict(zip(ids, score_diffs.tolist()))
        if split == "validation" and self.qa_args.tune_null_threshold:
            language = self.qa_args.answer_language
            self.tuned_threshold, tuned = best_null_threshold(diffs, best_texts, references, language)
            metrics.update(tuned_null_threshold=self.tuned_threshold, tuned_exact=tuned["exact"], tuned_f1=tuned["f1"])
            if self.model_config is not None:
                setattr(self.model_config, NULL_THRESHOLD_KEY, self.tuned_threshold)
        # Validation is scored at the threshold the run started with, so eval_exact/eval_f1 are never
        # tuned on the questions they score; only the test split gets a threshold tuned in this run.
        threshold = self.default_threshold if split == "validation" else self.prediction_threshold()
        metrics["null_threshold"] = threshold
        answers = {row_id: "" if diffs[row_id] > threshold else text for row_id, text in best_texts.items()}
        self.scored[split] = {"answers": answers, "score_diffs": diffs}
        if any(references.values()) or split != "test":
            metrics.update(squad_v2_scores(answers, references, self.qa_args.answer_language))
            self.scored[split]["questions"] = per_question_scores(answers, references,
                                                                   self.qa_args.answer_language)
        return metrics

    def prediction_threshold(self) -> float:
        """The threshold for the test split: tuned in this run, else given, else stored with the model, else 0.0."""
        if self.tuned_threshold is not None:
            return self.tuned_threshold
        if self.qa_args.tune_null_threshold and self.qa_args.null_score_diff_threshold is None:
            if self.stored_threshold is None:
                logger.warning(
                    "--tune_null_threshold: no validation split was scored to tune on and the model stores no "
                    "threshold, so the test split uses %s; give --validation_file (with --do_eval) or "
                    "--null_score_diff_threshold.", self.default_threshold)
            else:
                logger.info("--tune_null_threshold: no validation split was scored; the test split uses the "
                            "threshold stored with the model, %s.", self.stored_threshold)
        return self.default_threshold

    def model_card_notes(self) -> str:
        threshold = getattr(self.model_config, NULL_THRESHOLD_KEY, None)
        if threshold is None:
            return ""
        source = ("tuned for the best F1 on this run's validation split" if self.tuned_threshold is not None
                  else "stored by the model this run started from")
        return (f"## No-answer threshold\n\nA question gets no answer when its null score minus its best span score "
                f"exceeds {threshold:.6g} ({source}). The model's config carries it as `{NULL_THRESHOLD_KEY}` "
                "(saved in `config.json` with the model), and `recipes/parsquad.py` uses it whenever it evaluates or "
                "predicts with this model unless `--null_score_diff_threshold` is given, and so does the "
                "`question-answering` pipeline shipped with it (see Load it).\n\n")

    def window_loss(self, split: str, start_logits: np.ndarray, end_logits: np.ndarray) -> float:
        """Mean over windows of the start/end cross-entropy over each window's own tokens (no padding)."""
        windows = self.windows[split]
        lengths = np.array([len(ids) for ids in windows["input_ids"]])
        padding = np.arange(start_logits.shape[1])[None, :] >= lengths[:, None]
        losses = []
        for logits, positions in ((start_logits, windows["start_positions"]), (end_logits, windows["end_positions"])):
            logits = np.where(padding, -np.inf, logits.astype(np.float64))
            top = logits.max(axis=1, keepdims=True)
            log_normaliser = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))
            losses.append(log_normaliser - logits[np.arange(len(logits)), np.asarray(positions)])
        return float(np.mean((losses[0] + losses[1]) / 2))

    def write_predictions(self, split: str, output_dir: Path, file_prefix: str) -> list[Path]:
        scored = self.scored.get(split)
        if scored is None:
            return []
        answers_path = output_dir / f"{file_prefix}_predictions.json"
        write_atomic(answers_path, json.dumps(scored["answers"], ensure_ascii=False, indent=1))
        diffs_path = output_dir / f"{file_prefix}_null_odds.json"
        # JSON has no infinity: an example without any valid span gets null.
        diffs = {key: (value if np.isfinite(value) else None) for key, value in scored["score_diffs"].items()}
        write_atomic(diffs_path, json.dumps(diffs, indent=1))
        return [answers_path, diffs_path, *self._write_question_scores(scored, output_dir, file_prefix),
                *self._write_errors(split, scored, output_dir, file_prefix)]

    @staticmethod
    def _write_question_scores(scored: dict, output_dir: Path, file_prefix: str) -> list[Path]:
        """`{file_prefix}_question_scores.csv`: each question's exact and F1 (0..1, official algorithm, at the
        threshold the split was scored with), keyed by question id; their means are the split's exact/f1 / 100."""
        if "questions" not in scored:
            return []

        def write(handle) -> None:
            writer = csv.writer(handle)
            writer.writerow(["example_id", "has_answer", "exact", "f1"])
            for question, (answerable, exact, f1) in scored["questions"].items():
                writer.writerow([question, int(answerable), exact, f1])

        return [write_with(output_dir / f"{file_prefix}_question_scores.csv", write)]

    def _write_errors(self, split: str, scored: dict, output_dir: Path, file_prefix: str) -> list[Path]:
        """`{file_prefix}_qa_errors.csv`: every question whose answer is not an exact match (id, question, gold
        answers, answer, F1), worst first; nothing for a split without references."""
        if "questions" not in scored:
            return []
        examples = self.examples[split]
        references = dict(zip(examples["id"], (gold["text"] for gold in examples["answers"])))
        predicted = scored["answers"]
        rows = []
        for row_id, question in zip(examples["id"], examples["question"]):
            _, exact, token_f1 = scored["questions"][row_id]
            if exact < 1.0:
                gold = " | ".join(references[row_id]) or "(no answer)"
                rows.append([row_id, question.strip(), gold, predicted[row_id] or "(no answer)", round(token_f1, 4)])
        rows.sort(key=lambda row: row[-1])
        header = ["id", "question", "gold_answers", "answer", "f1"]
        return [write_with(output_dir / f"{file_prefix}_qa_errors.csv", lambda handle: csv.writer(handle).writerows(
            [header, *rows]))]

    def summary(self, metrics: dict[str, float]) -> str:
        parts = [f"EM {metrics['exact']:.2f}", f"F1 {metrics['f1']:.2f}"] if "exact" in metrics else []
        for group in ("HasAns", "NoAns"):
            if f"{group}_exact" in metrics:
                parts.append(f"{group} EM/F1 {metrics[f'{group}_exact']:.1f}/{metrics[f'{group}_f1']:.1f} "
                             f"(n={int(metrics[f'{group}_total'])})")
        if "null_threshold" in metrics:
            parts.append(f"null threshold {metrics['null_threshold']:.3f}")
        if "tuned_f1" in metrics:
            parts.append(f"tuned on itself: EM/F1 {metrics['tuned_exact']:.2f}/{metrics['tuned_f1']:.2f} at threshold "
                         f"{metrics['tuned_null_threshold']:.3f}")
        return ", ".join(parts) or "no references to score against"
