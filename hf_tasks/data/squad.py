"""The SQuAD v2 adapter (PQuAD is this format): JSON files or a hub QA dataset → validated question rows.

Every split comes out with the columns `id`, `title`, `context`, `question` and
`answers` = {`text`: [...], `answer_start`: [...]} (empty lists for an unanswerable question).
Each question is checked before anything is tokenised: a non-empty context and question, an id
unique within its split, and every answer's text found at its integer `answer_start`. Unusable
questions go to the run's bad-row policy (`bad_rows`): one error naming file, question ids
and fix, or with `--skip_bad_rows` listed in skipped_rows.json. Sample limits apply afterwards.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hf_tasks.data.bad_rows import BadRows, RowProblem, require_usable
from hf_tasks.data.sources import load_splits
from hf_tasks.data.splits import limit_splits
from hf_tasks.errors import BadInputError

SQUAD_SHAPE = '{"data": [{"title": ..., "paragraphs": [{"context": ..., "qas": [{"id", "question", "answers"}]}]}]}'
# What a hub (or `load_dataset` folder) split must hold; `title` is optional.
HUB_COLUMNS = ("id", "context", "question", "answers")
FIX = ("fix these questions: each needs a non-empty context and question, an id unique in its split, and answers "
       "whose text is found in the context at their answer_start (a character position, a whole number)")


def question_features():
    """The `datasets` features every split of this adapter has."""
    from datasets import Features, Sequence, Value

    text = Value("string")
    return Features({"id": text, "title": text, "context": text, "question": text,
                     "answers": Sequence({"text": text, "answer_start": Value("int64")})})


def load(data_args, *, bad_rows: BadRows):
    """Validated question rows of `--dataset_name` or `--train_file` / `--validation_file` / `--test_file`
    (SQuAD v2 JSON), limited by `--max_*_samples`, as a `datasets.DatasetDict`."""
    from datasets import Dataset, DatasetDict

    def validated(questions: list[dict[str, Any]], source: str) -> Dataset:
        return Dataset.from_list(usable_rows(questions, source, bad_rows), features=question_features())

    splits = load_splits(data_args, lambda path, split: validated(read_squad_json(path), str(path)))
    if data_args.dataset_name:
        for name, split in list(splits.items()):
            source = f"{data_args.dataset_name}[{name}]"
            splits[name] = validated(hub_questions(split, source), source)
    return DatasetDict(limit_splits(splits, data_args))


def read_squad_json(path: Path) -> list[dict[str, Any]]:
    """The questions of a SQuAD v2 / PQuAD JSON file, one dict each (id, title, context, question, and
    answers as the file has them: a list of {"text", "answer_start"}), not yet validated.

    A file that is not SQuAD v2 JSON at all stops here; problems of single questions are found by `row_problem`.
    """
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BadInputError(f"{path}: not readable as UTF-8 JSON ({error}); expected SQuAD v2 JSON {SQUAD_SHAPE}.")
    if not isinstance(document, dict) or not isinstance(document.get("data"), list):
        found = sorted(document) if isinstance(document, dict) else type(document).__name__
        raise BadInputError(f"{path}: expected SQuAD v2 JSON {SQUAD_SHAPE}; found top level {found}.")
    questions = []
    for article_number, article in enumerate(document["data"]):
        for paragraph in article.get("paragraphs", []) if isinstance(article, dict) else []:
            if "context" not in paragraph or "qas" not in paragraph:
                raise BadInputError(
                    f"{path}: article {article_number} has a paragraph without 'context' or 'qas' "
                    f"(keys: {sorted(paragraph)}); expected {SQUAD_SHAPE}."
                )
            for qa in paragraph["qas"]:
                missing = {"id", "question"} - set(qa)
                if missing:
                    raise BadInputError(
                        f"{path}: article {article_number}: a question lacks {sorted(missing)}; every question "
                        "needs 'id', 'question' and 'answers' (empty for unanswerable)."
                    )
                questions.append({
                    "id": str(qa["id"]),
                    "title": article.get("title") or "",
                    "context": paragraph["context"],
                    "question": qa["question"],
                    "answers": qa.get("answers") or [],
                })
    if not questions:
        raise BadInputError(f"{path}: no questions found; expected SQuAD v2 JSON {SQUAD_SHAPE}.")
    return questions


def hub_questions(split, source: str) -> list[dict[str, Any]]:
    """A hub split's rows in `read_squad_json`'s shape (answers as a list of {"text", "answer_start"})."""
    missing = [column for column in HUB_COLUMNS if column not in split.column_names]
    if missing:
        raise BadInputError(
            f"--dataset_name {source}: no column {', '.join(repr(c) for c in missing)} "
            f"(columns: {split.column_names}); a QA dataset needs the SQuAD v2 columns id, context, question and "
            "answers {text, answer_start}."
        )
    questions = []
    for row in split.to_list():
        answers = row["answers"] or {}
        texts, starts = answers.get("text") or [], answers.get("answer_start") or []
        questions.append({
            "id": str(row["id"]),
            "title": row.get("title") or "",
            "context": row["context"],
            "question": row["question"],
            "answers": [{"text": text, "answer_start": start} for text, start in zip(texts, starts)],
        })
    return questions


def character_position(value: Any) -> int | None:
    """`value` as a character position (a whole number ≥ 0, also when written "12" or 12.0), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    return value if isinstance(value, int) and value >= 0 else None


def answer_problem(context: str, answer: Any) -> str | None:
    """Why one answer of a question cannot be used, or None."""
    if not isinstance(answer, dict) or not isinstance(answer.get("text"), str) or not answer["text"]:
        return "an answer without text"
    if "answer_start" not in answer:
        return "an answer without answer_start"
    start = character_position(answer["answer_start"])
    if start is None:
        return f"answer_start {answer['answer_start']!r} is not a character position"
    text = answer["text"]
    found = context[start:start + len(text)]
    if found != text:
        hint = context.find(text)
        where = f"the text occurs at {hint}" if hint >= 0 else "the text does not occur in the context"
        return f"answer {text!r} is not at answer_start={start} (the context has {found!r} there; {where})"
    return None


def row_problem(question: dict[str, Any]) -> str | None:
    """Why a question (as `read_squad_json` gives it) cannot be used, or None when it is fine."""
    context = question["context"]
    if not isinstance(context, str) or not context.strip():
        return "empty context"
    if not isinstance(question["question"], str) or not question["question"].strip():
        return "empty question"
    if not isinstance(question["answers"], list):
        return "answers is not a list of {text, answer_start}"
    for answer in question["answers"]:
        problem = answer_problem(context, answer)
        if problem is not None:
            return problem
    return None


def usable_rows(questions: list[dict[str, Any]], source: str, bad_rows) -> list[dict[str, Any]]:
    """The questions of `source` that pass `row_problem` and have unique ids, as rows of this adapter's
    columns; the others go to `bad_rows` (which stops the run unless --skip_bad_rows)."""
    kept, seen, problems = [], set(), []
    for question in questions:
        problem = row_problem(question)
        if problem is None and question["id"] in seen:
            problem = "duplicate id"
        if problem is not None:
            problems.append(RowProblem("question id", question["id"], problem))
            continue
        seen.add(question["id"])
        answers = question["answers"]
        kept.append({**question, "answers": {
            "text": [answer["text"] for answer in answers],
            "answer_start": [character_position(answer["answer_start"]) for answer in answers],
        }})
    bad_rows.settle(source, problems, FIX)
    require_usable(source, len(kept), len(questions), "questions", "fix the file")
    return kept
