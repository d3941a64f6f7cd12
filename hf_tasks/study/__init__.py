"""Run a list of experiment configs (over seeds, in parallel over devices) and write one comparison
table, a picture, and optionally a hyperparameter search. The command is `python -m hf_tasks.study`
(or `hf-tasks study`); `hf_tasks.study.cli` describes it."""

import importlib

# Imported when first used, so that `python -m hf_tasks.study --help` answers from the help cache before them.
_EXPORTS = {"StudyArguments": "hf_tasks.study.runs", "resolve_recipe": "hf_tasks.study.runs",
            "main": "hf_tasks.study.cli", "parse_study_args": "hf_tasks.study.cli"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
