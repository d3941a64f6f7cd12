"""Run a list of experiment configs (over seeds, in parallel over devices) and write one comparison
table, a picture, and optionally a hyperparameter search. The command is `python -m hf_tasks.study`;
`hf_tasks.study.cli` describes it."""

from hf_tasks.study.cli import main, parse_study_args
from hf_tasks.study.runs import StudyArguments, resolve_recipe

__all__ = ["StudyArguments", "main", "parse_study_args", "resolve_recipe"]
