"""End to end: the PQuAD recipe on the project's sample with a tiny BERT built from config."""

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys

import pytest
from transformers import AutoModelForQuestionAnswering, TrainerCallback

import parsquad
from hf_tasks.args import parse
from hf_tasks.data import squad
from hf_tasks.errors import TrainingInterrupted
from hf_tasks.modeling.auto import load_model, load_processor
from hf_tasks.runner import run
from hf_tasks.errors import BadInputError
from hf_tasks.tasks.qa import QuestionAnsweringTask
from tests.conftest import (REPO, assert_outcomes_give_the_results, launch_two_processes, recipe_args,
                            wandb_run_log)
from tests.test_portable import without_hf_tasks

CONFIG = "recipes/configs/parsquad/tiny.yaml"


def run_recipe(output_dir, *overrides):
    return parsquad.main(parse(*parsquad.ARGUMENTS, args=recipe_args(CONFIG, output_dir, *overrides)))


def null_baseline(split="validation") -> float:
    """EM of always answering "no answer": the share of unanswerable questions, in percent."""
    document = json.loads((REPO / f"hf_tasks/samples/pquad/{split}.json").read_text(encoding="utf-8"))
    questions = [qa for article in document["data"] for paragraph in article["paragraphs"] for qa in paragraph["qas"]]
    return 100 * sum(not qa["answers"] for qa in questions) / len(questions)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("parsquad")
    return output_dir, run_recipe(output_dir, "--save_strategy", "no", "--tune_null_threshold", "true")


def test_tiny_model_learns_well_above_the_all_null_baseline(trained):
    _, results = trained
    baseline = null_baseline()
    assert results["eval_exact"] > baseline + 30, (results["eval_exact"], baseline)
    assert results["eval_HasAns_exact"] > 50
    assert results["test_exact"] > null_baseline("test") + 30


def test_run_folder_holds_results_predictions_config_and_card(trained):
    output_dir, results = trained
    written = json.loads((output_dir / "results.json").read_text())
    assert written["eval_f1"] == pytest.approx(results["eval_f1"])
    assert written["trainable_params"] == written["total_params"] > 0
    predictions = json.loads((output_dir / "eval_predictions.json").read_text(encoding="utf-8"))
    assert len(predictions) == written["eval_total"]
    assert all(isinstance(text, str) for text in predictions.values())
    for name in ("config.yaml", "README.md", "training_curves.png", "model.safetensors", "test_predictions.json"):
        assert (output_dir / name).is_file(), name
    # Each question's exact and F1 under the official algorithm, keyed by its id, average to EM and F1.
    assert assert_outcomes_give_the_results(output_dir, results) == 4
    card = (output_dir / "README.md").read_text(encoding="utf-8")
    assert "eval_f1" in card and "python recipes/parsquad.py --config config.yaml" in card


def test_qa_errors_list_every_question_not_answered_exactly_worst_first(trained):
    output_dir, results = trained
    with (output_dir / "eval_qa_errors.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == round(results["eval_total"] * (1 - results["eval_exact"] / 100))
    predictions = json.loads((output_dir / "eval_predictions.json").read_text(encoding="utf-8"))
    assert all(row["answer"] == (predictions[row["id"]] or "(no answer)") for row in rows)
    scores = [float(row["f1"]) for row in rows]
    assert scores == sorted(scores) and all(score < 1 or row["answer"] != row["gold_answers"]
                                            for score, row in zip(scores, rows))


def test_tuned_threshold_is_stored_with_the_model_and_in_its_card(trained):
    output_dir, results = trained
    tuned = results["eval_tuned_null_threshold"]
    assert json.loads((output_dir / "config.json").read_text())["null_score_diff_threshold"] == tuned
    assert results["test_null_threshold"] == tuned
    # Validation is reported at the starting threshold and, separately, at the one tuned on itself.
    assert results["eval_null_threshold"] == 0.0
    assert results["eval_tuned_f1"] >= results["eval_f1"]
    assert {"eval_tuned_exact", "eval_exact", "eval_HasAns_f1"} <= set(results)
    card = (output_dir / "README.md").read_text(encoding="utf-8")
    assert "## No-answer threshold" in card and f"exceeds {tuned:.6g} (tuned" in card


def test_a_run_folder_evaluated_later_predicts_with_its_stored_threshold(trained, tmp_path):
    model_dir, results = trained
    later = run_recipe(tmp_path / "later", "--model_name_or_path", str(model_dir), "--do_train", "false")
    stored = results["eval_tuned_null_threshold"]
    assert later["eval_null_threshold"] == later["test_null_threshold"] == stored
    assert later["eval_f1"] == pytest.approx(results["eval_tuned_f1"])
    assert later["test_f1"] == pytest.approx(results["test_f1"])
    assert (json.loads((tmp_path / "later" / "test_predictions.json").read_text(encoding="utf-8"))
            == json.loads((model_dir / "test_predictions.json").read_text(encoding="utf-8")))
    explicit = run_recipe(tmp_path / "explicit", "--model_name_or_path", str(model_dir), "--do_train", "false",
                          "--do_eval", "false", "--null_score_diff_threshold", "0.0")
    assert explicit["test_null_threshold"] == 0.0


def test_a_stored_threshold_decides_the_answers(trained, tmp_path):
    model_dir, results = trained
    # A threshold no null-minus-span score exceeds answers every question, so unanswerable ones go wrong.
    edited = tmp_path / "always-answers"
    shutil.copytree(model_dir, edited)
    config = json.loads((edited / "config.json").read_text())
    config["null_score_diff_threshold"] = 1e6
    (edited / "config.json").write_text(json.dumps(config))
    always = run_recipe(tmp_path / "eval", "--model_name_or_path", str(edited), "--do_train", "false",
                        "--do_predict", "false")
    assert always["eval_null_threshold"] == 1e6
    assert always["eval_NoAns_exact"] < results["eval_NoAns_exact"] - 50


PIPELINE_ANSWERS_WITHOUT_HF_TASKS = """
import json, sys
try:
    import hf_tasks
except ImportError:
    pass
else:
    sys.exit("hf_tasks imported although it must not be importable here")
from transformers import pipeline
folders, test_file = json.loads(sys.argv[1]), sys.argv[2]
document = json.load(open(test_file, encoding="utf-8"))
questions = [(qa["id"], qa["question"], paragraph["context"]) for article in document["data"]
             for paragraph in article["paragraphs"] for qa in paragraph["qas"]]
answers = {}
for name, folder in folders.items():
    qa = pipeline("question-answering", model=folder, trust_remote_code=True, device="cpu")
    answers[name] = {row_id: qa(question=question, context=context)["answer"]
                     for row_id, question, context in questions}
print(json.dumps(answers, ensure_ascii=False))
"""


def test_question_answering_pipeline_repeats_the_test_predictions_with_the_stored_threshold(trained, tmp_path):
    model_dir, _ = trained
    folders = {"tuned": str(model_dir)}
    # A threshold below every null-minus-span score leaves every question unanswered; one above, none.
    for name, threshold in (("never-answers", -1e6), ("always-answers", 1e6)):
        shutil.copytree(model_dir, tmp_path / name, ignore=shutil.ignore_patterns("checkpoint-*"))
        config = json.loads((tmp_path / name / "config.json").read_text())
        config["null_score_diff_threshold"] = threshold
        (tmp_path / name / "config.json").write_text(json.dumps(config))
        folders[name] = str(tmp_path / name)
    finished = subprocess.run(
        [sys.executable, "-c", PIPELINE_ANSWERS_WITHOUT_HF_TASKS, json.dumps(folders),
         str(REPO / "hf_tasks/samples/pquad/test.json")],
        cwd=tmp_path, env=without_hf_tasks(tmp_path), capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr[-4000:]
    answers = json.loads(finished.stdout.strip().splitlines()[-1])
    expected = json.loads((model_dir / "test_predictions.json").read_text(encoding="utf-8"))
    # The recipe's predictions hold both kinds of answer, so the comparison covers the threshold.
    assert 0 < sum(text == "" for text in expected.values()) < len(expected)
    assert answers["tuned"] == expected
    assert set(answers["never-answers"].values()) == {""}
    assert "" not in answers["always-answers"].values()
    card = (model_dir / "README.md").read_text(encoding="utf-8")
    assert f'pipeline("question-answering", model="{model_dir}", trust_remote_code=True)' in card


def test_best_model_by_tuned_f1_needs_tuning(tmp_path):
    with pytest.raises(BadInputError, match="--metric_for_best_model tuned_f1 .*--tune_null_threshold"):
        run_recipe(tmp_path, "--metric_for_best_model", "tuned_f1", "--load_best_model_at_end", "true")


def train_file_with_an_answer_lacking_answer_start(folder):
    """The sample's training file with one answer's answer_start removed; returns its path and that question's id."""
    document = json.loads((REPO / "hf_tasks/samples/pquad/train.json").read_text(encoding="utf-8"))
    question = next(qa for qa in document["data"][0]["paragraphs"][0]["qas"] if qa["answers"])
    del question["answers"][0]["answer_start"]
    path = folder / "train.json"
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    return path, question["id"]


def test_an_answer_without_answer_start_stops_the_recipe_in_one_line_with_status_2(tmp_path):
    train_file, question_id = train_file_with_an_answer_lacking_answer_start(tmp_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("HF_TASKS_DEBUG", None)
    finished = subprocess.run(
        [sys.executable, "recipes/parsquad.py",
         *recipe_args(CONFIG, tmp_path / "run", "--train_file", str(train_file))],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 2, finished.stderr[-3000:]
    assert "Traceback" not in finished.stderr and finished.stderr.count("\n") == 1, finished.stderr
    line = finished.stderr
    assert str(train_file) in line and f"an answer without answer_start (question id {question_id!r})" in line
    assert "answer_start (a character position, a whole number)" in line and "--skip_bad_rows" in line
    assert not (tmp_path / "run" / "results.json").exists()


def test_skip_bad_rows_leaves_out_an_answer_without_answer_start_and_lists_it(tmp_path):
    train_file, question_id = train_file_with_an_answer_lacking_answer_start(tmp_path)
    results = run_recipe(tmp_path / "run", "--train_file", str(train_file), "--skip_bad_rows", "true",
                         "--max_train_samples", "16", "--max_eval_samples", "8", "--max_steps", "1",
                         "--do_predict", "false", "--save_strategy", "no")
    skipped = json.loads((tmp_path / "run" / "skipped_rows.json").read_text(encoding="utf-8"))
    assert skipped == [{"file": str(train_file), "question_id": question_id,
                        "reason": "an answer without answer_start"}]
    assert results["skipped_rows"] == 1
    assert json.loads((tmp_path / "run" / "results.json").read_text())["skipped_rows"] == 1


def test_resuming_from_a_checkpoint_reaches_the_uninterrupted_result(tmp_path):
    quick = ("--max_train_samples", "120", "--max_eval_samples", "40", "--num_train_epochs", "2",
             "--do_predict", "false", "--save_total_limit", "5")
    straight = run_recipe(tmp_path / "straight", *quick)
    first_epoch = sorted((tmp_path / "straight").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))[0]
    resumed_dir = tmp_path / "resumed"
    resumed_dir.mkdir()
    shutil.copytree(first_epoch, resumed_dir / first_epoch.name)
    resumed = run_recipe(resumed_dir, *quick, "--resume_from_checkpoint", "latest")
    for key in ("eval_loss", "eval_exact", "eval_f1"):
        assert resumed[key] == pytest.approx(straight[key], rel=1e-4), key


@pytest.mark.distributed
def test_two_process_evaluation_equals_one_process(trained, tmp_path):
    model_dir, _ = trained
    common = ["--model_name_or_path", str(model_dir), "--do_train", "false", "--do_predict", "false"]
    single = run_recipe(tmp_path / "one", *common)
    launch_two_processes(str(REPO / "recipes/parsquad.py"), *recipe_args(CONFIG, tmp_path / "two", *common))
    double = json.loads((tmp_path / "two" / "results.json").read_text())
    assert double["eval_total"] == single["eval_total"]
    for key in ("eval_exact", "eval_f1", "eval_HasAns_exact", "eval_NoAns_exact"):
        assert double[key] == pytest.approx(single[key]), key
    assert double["eval_loss"] == pytest.approx(single["eval_loss"], rel=1e-4)


def logged_values(run_log: bytes, key: str) -> list:
    """Values logged under `key` in an offline wandb run log (protobuf items: key, then field 16 JSON)."""
    values = []
    for match in re.finditer(re.escape(key.encode()) + rb"\x82\x01", run_log):
        size = run_log[match.end()]
        values.append(json.loads(run_log[match.end() + 1: match.end() + 1 + size]))
    return values


def test_wandb_offline_run_holds_config_and_eval_metrics(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    results = run_recipe(tmp_path / "run", "--max_train_samples", "32", "--max_eval_samples", "16", "--max_steps", "2",
                         "--do_predict", "false", "--report_to", "wandb", "--run_name", "tiny-wandb-check")
    run_log = wandb_run_log(tmp_path)
    for config_key in (b"learning_rate", b"doc_stride", b"answer_language", b"tiny-wandb-check"):
        assert config_key in run_log, config_key
    assert results["eval_exact"] in logged_values(run_log, "eval/exact")
    assert results["eval_f1"] in logged_values(run_log, "eval/f1")


class SignalAtStep(TrainerCallback):
    """Sends SIGTERM to this process when training reaches `step`, as a cluster would."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            os.kill(os.getpid(), signal.SIGTERM)


def test_sigterm_during_training_saves_a_checkpoint_and_stops_with_status_143(tmp_path):
    state = parse(*parsquad.ARGUMENTS, args=recipe_args(
        CONFIG, tmp_path, "--max_train_samples", "64", "--num_train_epochs", "3", "--save_strategy", "no"))
    model_args, data_args, qa_args, _, _ = state
    tokenizer = load_processor(model_args)
    task = QuestionAnsweringTask(squad.load(data_args, bad_rows=state.bad_rows), tokenizer, data_args, qa_args)
    model = load_model(AutoModelForQuestionAnswering, model_args)
    with pytest.raises(TrainingInterrupted) as stopped:
        run(task, model, state, processing_class=tokenizer, callbacks=[SignalAtStep(3)])
    assert stopped.value.step == 3 and stopped.value.code == 128 + signal.SIGTERM
    assert (tmp_path / "checkpoint-3").is_dir()
    assert not (tmp_path / "results.json").exists()
