"""Persian NLI on FarsTail (premise, hypothesis → entailment / contradiction / neutral), with model
surgery: freezing, layer deletion and attention-head pruning (`hf_tasks.surgery.regime`).

    accelerate launch recipes/farstail.py --config recipes/configs/farstail/parsbert.yaml
    python recipes/farstail.py --config recipes/configs/farstail/tiny.yaml     # offline demo on CPU
    python -m hf_tasks.study recipes/configs/farstail/*.yaml --output_dir runs/study   # the comparison table
"""

import hf_tasks.help_cache  # noqa: F401  (prints a cached --help and exits, before the imports below)

from hf_tasks.args import TrainingArguments
from hf_tasks.data import farstail
from hf_tasks.data.farstail import FarsTailArguments
from hf_tasks.modeling import text_classifier
from hf_tasks.modeling.auto import load_processor
from hf_tasks.modeling.labels import ClassLabels
from hf_tasks.options import DataArguments, ModelArguments, TextHeadArguments
from hf_tasks.run_state import RunState
from hf_tasks.registry import ModelCardFacts, Recipe
from hf_tasks.runner import run, setup
from hf_tasks.surgery.regime import RegimeArguments, apply_regime
from hf_tasks.tasks.pairs import PairArguments, PairClassificationTask


ARGUMENTS = (ModelArguments, DataArguments, FarsTailArguments, PairArguments, TextHeadArguments, RegimeArguments,
             TrainingArguments)


def main(state: RunState):
    setup(state)
    data = farstail.load(state[DataArguments], state[FarsTailArguments], bad_rows=state.bad_rows)
    tokenizer = load_processor(state[ModelArguments])
    model = text_classifier.build_model(state[ModelArguments], state[TextHeadArguments], ClassLabels.of(data),
                                        tokenizer)
    task = PairClassificationTask(data, tokenizer, state[DataArguments], state[PairArguments],
                                  subset_columns=farstail.HARD_COLUMNS)
    model, callbacks = apply_regime(model, state[RegimeArguments], task, state.training_args)
    return run(
        task,
        model,
        state,
        processing_class=tokenizer,
        callbacks=callbacks,
        model_card=RECIPE.card("Persian natural language inference (entailment / contradiction / neutral) "
                               "fine-tuned on FarsTail."),
    )


RECIPE = Recipe(
    "farstail", __doc__, ARGUMENTS, main,
    unused=("data_dir",),  # NLI reads TSV files or a hub dataset, never a folder
    model_card=ModelCardFacts("text-classification", "FarsTail", language=("fa",),
                              tags=("text-classification", "natural-language-inference", "persian", "farstail")),
)

if __name__ == "__main__":
    RECIPE.cli()
