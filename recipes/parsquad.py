"""Persian extractive QA with unanswerable questions (PQuAD, or any SQuAD v2-format data).

    accelerate launch recipes/parsquad.py --config recipes/configs/parsquad/parsbert.yaml
    python recipes/parsquad.py --config recipes/configs/parsquad/tiny.yaml     # offline demo on CPU
"""

import hf_tasks.help_cache  # noqa: F401  (prints a cached --help and exits, before the imports below)

from transformers import AutoModelForQuestionAnswering

from hf_tasks.args import TrainingArguments
from hf_tasks.options import DataArguments, ModelArguments
from hf_tasks.data import squad
from hf_tasks.modeling.auto import load_model, load_processor
from hf_tasks.run_state import RunState
from hf_tasks.registry import ModelCardFacts, Recipe
from hf_tasks.runner import run, setup
from hf_tasks.surgery.regime import RegimeArguments, apply_regime
from hf_tasks.tasks.qa import QAArguments, QuestionAnsweringTask


ARGUMENTS = (ModelArguments, DataArguments, QAArguments, RegimeArguments, TrainingArguments)


def main(state: RunState):
    setup(state)
    data = squad.load(state[DataArguments], bad_rows=state.bad_rows)
    tokenizer = load_processor(state[ModelArguments])
    model = load_model(AutoModelForQuestionAnswering, state[ModelArguments])
    # The task reads a no-answer threshold stored with the model and stores a tuned one there.
    task = QuestionAnsweringTask(data, tokenizer, state[DataArguments], state[QAArguments], model.config)
    model, callbacks = apply_regime(model, state[RegimeArguments], task, state.training_args)
    return run(
        task,
        model,
        state,
        processing_class=tokenizer,
        callbacks=callbacks,
        model_card=RECIPE.card("Extractive question answering with unanswerable questions (SQuAD v2 style)."),
    )


RECIPE = Recipe(
    "parsquad", __doc__, ARGUMENTS, main,
    unused=("data_dir",),  # QA reads SQuAD-format files or a hub dataset, never a folder
    model_card=ModelCardFacts("question-answering", "PQuAD", language=("fa",),
                              tags=("question-answering", "persian", "pquad")),
)

if __name__ == "__main__":
    RECIPE.cli()
