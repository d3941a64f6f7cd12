import json
from pathlib import Path

import numpy as np
import pytest
from datasets import DatasetDict
from transformers import AutoTokenizer, TrainingArguments

from hf_tasks.options import DataArguments
from hf_tasks.data.bad_rows import BadRows
from hf_tasks.data import squad
from hf_tasks.samples.pquad import make_split
from hf_tasks.errors import BadInputError
from hf_tasks.tasks.qa import QAArguments, QuestionAnsweringTask, context_offsets, postprocess
from tests.benchmarks.bench_qa_postprocess import synthetic_windows
from tests.benchmarks.qa_reference import reference_postprocess

TOKENIZER = "hf_tasks/samples/tiny-bert-fa"


def squad_file(tmp_path: Path, document: dict, name="data.json") -> Path:
    path = tmp_path / name
    text = json.dumps(document, ensure_ascii=False)
    if not path.exists() or path.read_text(encoding="utf-8") != text:  # rewriting would invalidate caches
        path.write_text(text, encoding="utf-8")
    return path


def one_question(context: str, question: str, answers: list[dict], qid="q1") -> dict:
    return {"data": [{"title": "t", "paragraphs": [{"context": context, "qas": [
        {"id": qid, "question": question, "answers": answers, "is_impossible": not answers}]}]}]}


def question_ids(document: dict) -> list[str]:
    return [qa["id"] for article in document["data"] for paragraph in article["paragraphs"] for qa in paragraph["qas"]]


def build(tmp_path, train_doc=None, eval_doc=None, max_seq_length=64, doc_stride=16, bad_rows=None, **data):
    data_args = DataArguments(
        train_file=str(squad_file(tmp_path, train_doc, "train.json")) if train_doc else None,
        validation_file=str(squad_file(tmp_path, eval_doc, "validation.json")) if eval_doc else None,
        max_seq_length=max_seq_length, **data,
    )
    task = QuestionAnsweringTask(squad.load(data_args, bad_rows=bad_rows or BadRows(False)),
                                 AutoTokenizer.from_pretrained(TOKENIZER), data_args,
                                 QAArguments(doc_stride=doc_stride))
    features = task.features(TrainingArguments(output_dir=str(tmp_path / "out"), use_cpu=True))
    return task, features


def test_labelled_spans_decode_to_the_gold_answer_and_absent_answers_point_at_cls(tmp_path):
    document = make_split(30, seed=3, prefix="w")
    task, features = build(tmp_path, eval_doc=document, max_seq_length=48, doc_stride=16)
    windows, examples = task.windows["validation"], task.examples["validation"]
    offsets = context_offsets(windows, max(len(ids) for ids in windows["input_ids"]))
    checked_inside = checked_outside = 0
    for window, (start, end, example) in enumerate(zip(windows["start_positions"], windows["end_positions"],
                                                       windows["example_index"])):
        answers = examples[example]["answers"]
        context = examples[example]["context"]
        if start == 0:
            assert end == 0
            if answers["text"]:  # the answer lies outside this window
                first = answers["answer_start"][0]
                window_chars = offsets[window][offsets[window, :, 0] >= 0]
                assert first < window_chars[0, 0] or first + len(answers["text"][0]) > window_chars[-1, 1]
                checked_outside += 1
            continue
        assert context[offsets[window, start, 0]:offsets[window, end, 1]] == answers["text"][0]
        checked_inside += 1
    assert checked_inside > 20 and checked_outside > 5
    assert set(features["validation"].column_names) >= {"input_ids", "start_positions", "end_positions"}
    assert "offset_mapping" not in features["validation"].column_names


def test_persian_zwnj_and_mixed_digits_survive_the_round_trip(tmp_path):
    context = "کتاب «نامه‌های سبز» در سال ۱۳۵۲ و نسخهٔ دوم در 1360 چاپ شد."
    cases = [("نامه‌های سبز", "کتاب چه نام دارد؟"), ("۱۳۵۲", "در چه سالی؟"), ("1360", "نسخه دوم کی؟")]
    document = {"data": [{"title": "t", "paragraphs": [{"context": context, "qas": [
        {"id": f"q{i}", "question": question, "answers": [{"text": text, "answer_start": context.index(text)}]}
        for i, (text, question) in enumerate(cases)]}]}]}
    task, _ = build(tmp_path, eval_doc=document, max_seq_length=64)
    windows = task.windows["validation"]
    offsets = context_offsets(windows, max(len(ids) for ids in windows["input_ids"]))
    decoded = [context[offsets[w, s, 0]:offsets[w, e, 1]]
               for w, (s, e) in enumerate(zip(windows["start_positions"], windows["end_positions"]))]
    assert decoded == [text for text, _ in cases]


def test_vectorised_postprocessing_equals_the_reference_loop():
    # The inputs can tell windows of one example apart: read with another window's offsets, the same
    # logits give other answers, so an implementation that mixed them up could not pass.
    contexts, example_index, offsets, starts, ends = synthetic_windows(60, width=96, seed=0)
    shared = np.flatnonzero(example_index[1:] == example_index[:-1])  # a window whose successor is the same example's
    swapped = offsets.copy()
    swapped[shared], swapped[shared + 1] = offsets[shared + 1], offsets[shared]
    assert reference_postprocess(contexts, example_index, swapped, starts, ends)[0] != \
        reference_postprocess(contexts, example_index, offsets, starts, ends)[0]
    for seed in range(3):
        inputs = synthetic_windows(60, width=96, seed=seed)
        for n_best, max_length in ((20, 30), (5, 4)):
            fast_texts, fast_diffs = postprocess(*inputs, n_best_size=n_best, max_answer_length=max_length)
            slow_texts, slow_diffs = reference_postprocess(*inputs, n_best_size=n_best, max_answer_length=max_length)
            assert fast_texts == slow_texts
            np.testing.assert_allclose(fast_diffs, slow_diffs)


def test_a_window_without_valid_span_predicts_no_answer():
    contexts, example_index, offsets, starts, ends = synthetic_windows(3, width=32, seed=0)
    offsets[example_index == 1] = -1  # example 1 has no context tokens at all
    texts, diffs = postprocess(contexts, example_index, offsets, starts, ends)
    assert texts[1] == "" and np.isinf(diffs[1])
    assert texts[0] and np.isfinite(diffs[0])


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["data"][0]["paragraphs"][0]["qas"][0]["answers"][0].update(answer_start=3), "not at answer_start=3"),
    (lambda d: d["data"][0]["paragraphs"][0]["qas"][0].update(question="  "), "empty question"),
    (lambda d: d["data"][0]["paragraphs"][0].update(context=""), "empty context"),
])
def test_bad_rows_fail_naming_file_and_id(tmp_path, mutate, message):
    document = one_question("سلام دنیا زیباست", "چه چیزی زیباست؟", [{"text": "دنیا", "answer_start": 5}])
    mutate(document)
    with pytest.raises(BadInputError, match=rf"train.json: .*{message}.* \(question id 'q1'\)"):
        build(tmp_path, train_doc=document)


@pytest.mark.parametrize("answer, message", [
    ({"text": "دنیا"}, "an answer without answer_start"),
    ({"text": "دنیا", "answer_start": "five"}, "answer_start 'five' is not a character position"),
    ({"text": "دنیا", "answer_start": 5.5}, "answer_start 5.5 is not a character position"),
    ({"text": "دنیا", "answer_start": -1}, "answer_start -1 is not a character position"),
    ({"answer_start": 5}, "an answer without text"),
])
def test_an_answer_without_a_usable_answer_start_fails_naming_file_id_and_fix(tmp_path, answer, message):
    # Before the data adapter these stopped with a bare KeyError or ValueError, or passed (5.5 read as 5).
    document = one_question("سلام دنیا زیباست", "چه چیزی زیباست؟", [answer], qid="q-7")
    with pytest.raises(BadInputError) as stopped:
        build(tmp_path, train_doc=document)
    text = str(stopped.value)
    assert text.startswith(str(tmp_path / "train.json") + ": ")
    assert f"{message} (question id 'q-7')" in text
    assert "answer_start (a character position, a whole number)" in text and "--skip_bad_rows" in text


def test_answer_start_written_as_text_or_a_whole_float_is_a_position(tmp_path):
    answers = [{"text": "دنیا", "answer_start": "5"}, {"text": "دنیا", "answer_start": 5.0}]
    task, _ = build(tmp_path, eval_doc=one_question("سلام دنیا زیباست", "چه؟", answers))
    assert task.examples["validation"][0]["answers"] == {"text": ["دنیا", "دنیا"], "answer_start": [5, 5]}


def test_duplicate_ids_and_non_squad_json_fail(tmp_path):
    document = one_question("سلام دنیا", "چه؟", [{"text": "دنیا", "answer_start": 5}])
    document["data"].append(document["data"][0])
    with pytest.raises(BadInputError, match="duplicate id"):
        build(tmp_path, train_doc=document)
    with pytest.raises(BadInputError, match="expected SQuAD v2 JSON"):
        build(tmp_path, train_doc={"rows": []})
    with pytest.raises(BadInputError, match="no such file"):
        squad.load(DataArguments(train_file=str(tmp_path / "missing.json")), bad_rows=BadRows(False))


def test_skip_bad_rows_records_every_skipped_id(tmp_path):
    document = make_split(3, seed=1, prefix="s")
    bad = document["data"][1]["paragraphs"][0]["qas"]
    answerable = next(qa for qa in bad if qa["answers"])
    answerable["answers"][0]["answer_start"] += 1
    missing_start = next(qa for qa in document["data"][2]["paragraphs"][0]["qas"] if qa["answers"])
    del missing_start["answers"][0]["answer_start"]
    log = BadRows(True)
    task, features = build(tmp_path, train_doc=document, bad_rows=log)
    skipped = log.skipped
    assert [row["question_id"] for row in skipped] == [answerable["id"], missing_start["id"]]
    assert "answer_start" in skipped[0]["reason"]
    assert skipped[1]["reason"] == "an answer without answer_start"
    assert {row["file"] for row in skipped} == {str(tmp_path / "train.json")}
    assert task.data["train"]["id"] == [qid for qid in question_ids(document)
                                        if qid not in (answerable["id"], missing_start["id"])]


def test_limits_apply_to_the_questions_left_after_validation(tmp_path):
    document = make_split(3, seed=1, prefix="l")
    first = document["data"][0]["paragraphs"][0]["qas"][0]
    first["question"] = " "
    data = squad.load(DataArguments(train_file=str(squad_file(tmp_path, document, "train.json")),
                                    max_train_samples=4), bad_rows=BadRows(True))
    assert data["train"]["id"] == question_ids(document)[1:5]


def test_a_hub_style_dataset_is_validated_like_files(tmp_path):
    # `--dataset_name` may name a local folder `load_dataset` reads: here, flat rows with SQuAD v2 columns.
    folder = tmp_path / "hub"
    folder.mkdir()
    context = "سلام دنیا زیباست"
    rows = [{"id": "h1", "title": "t", "context": context, "question": "چه؟",
             "answers": {"text": ["دنیا"], "answer_start": [5]}},
            {"id": "h2", "title": "t", "context": context, "question": "چه؟",
             "answers": {"text": ["دنیا"], "answer_start": [2]}},
            {"id": "h3", "title": "t", "context": context, "question": "کی؟",
             "answers": {"text": [], "answer_start": []}}]
    lines = [json.dumps(row, ensure_ascii=False) for row in rows]
    (folder / "train.jsonl").write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(BadInputError, match=rf"{folder}\[train\]: answer 'دنیا' is not at answer_start=2 .*"
                                            r"\(question id 'h2'\)"):
        squad.load(DataArguments(dataset_name=str(folder)), bad_rows=BadRows(False))
    skipping = BadRows(True)
    data = squad.load(DataArguments(dataset_name=str(folder)), bad_rows=skipping)
    assert data["train"]["id"] == ["h1", "h3"]
    assert data["train"]["answers"] == [{"text": ["دنیا"], "answer_start": [5]}, {"text": [], "answer_start": []}]
    assert [row["question_id"] for row in skipping.skipped] == ["h2"]


def test_windows_are_cached_per_content_tokenizer_and_arguments(tmp_path, empty_preprocessing_cache):
    document = make_split(4, seed=5, prefix="c")
    _, first = build(tmp_path, train_doc=document)
    cached = first["train"].cache_files
    # The first build computed its windows: its cache file is new, in a folder that was empty.
    assert [Path(file["filename"]).parent for file in cached] == [empty_preprocessing_cache]
    assert [path.name for path in empty_preprocessing_cache.glob("*.arrow")] == [Path(cached[0]["filename"]).name]
    _, second = build(tmp_path, train_doc=document)
    _, other_stride = build(tmp_path, train_doc=document, doc_stride=8)
    assert cached == second["train"].cache_files
    assert other_stride["train"].cache_files != cached
    assert first["train"]["input_ids"] == second["train"]["input_ids"]
    _, fresh = build(tmp_path, train_doc=document, overwrite_cache=True)
    assert fresh["train"].cache_files != cached


def test_asking_for_a_split_the_data_lacks_fails_before_training(tmp_path):
    from hf_tasks.run_state import RunState
    from hf_tasks.runner import run

    data_args = DataArguments(train_file=str(squad_file(tmp_path, make_split(2, seed=0, prefix="r"))),
                              max_seq_length=64)
    task = QuestionAnsweringTask(squad.load(data_args, bad_rows=BadRows(False)),
                                 AutoTokenizer.from_pretrained(TOKENIZER), data_args, QAArguments(doc_stride=16))
    args = TrainingArguments(output_dir=str(tmp_path / "out"), use_cpu=True, do_train=True, do_eval=True)
    with pytest.raises(ValueError, match="--do_eval needs the validation split"):
        run(task, None, RunState([args]))


def threshold_task(model_config, **qa_args) -> QuestionAnsweringTask:
    return QuestionAnsweringTask(DatasetDict(), AutoTokenizer.from_pretrained(TOKENIZER), DataArguments(),
                                 QAArguments(**qa_args), model_config)


def test_the_threshold_stored_with_the_model_is_the_default_unless_one_is_given():
    from transformers import BertConfig

    stored = BertConfig(null_score_diff_threshold=-1.5)
    assert threshold_task(stored).prediction_threshold() == -1.5
    assert threshold_task(stored, null_score_diff_threshold=0.25).prediction_threshold() == 0.25
    assert threshold_task(BertConfig()).prediction_threshold() == 0.0


def test_tuning_without_validation_or_stored_threshold_warns(caplog):
    from transformers import BertConfig

    with caplog.at_level("INFO", logger="hf_tasks"):
        assert threshold_task(BertConfig(), tune_null_threshold=True).prediction_threshold() == 0.0
    # Only this package's records: an earlier test in the same worker may leave transformers logging at INFO.
    assert [record.levelname for record in caplog.records if record.name.startswith("hf_tasks")] == ["WARNING"]
    assert "no validation split" in caplog.text and "--null_score_diff_threshold" in caplog.text
    caplog.clear()
    with caplog.at_level("INFO", logger="hf_tasks"):
        stored = BertConfig(null_score_diff_threshold=2.0)
        assert threshold_task(stored, tune_null_threshold=True).prediction_threshold() == 2.0
    assert "WARNING" not in [record.levelname for record in caplog.records]


def test_a_split_whose_every_question_is_skipped_stops_instead_of_loading_empty(tmp_path):
    path = squad_file(tmp_path, one_question("abc", "?", [{"text": "zz", "answer_start": 0}]), "train.json")
    with pytest.raises(BadInputError, match=r"train.json: no usable questions \(all 1 skipped\)"):
        squad.load(DataArguments(train_file=str(path)), bad_rows=BadRows(True))
