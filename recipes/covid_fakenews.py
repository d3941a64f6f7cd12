"""COVID-19 fake-news tweets (Constraint@AAAI-2021): BERT with a [CLS]/pooler linear head or a BiGRU
head, fine-tuned end to end or feature-based (frozen backbone, optionally with cached features).

    accelerate launch recipes/covid_fakenews.py --config recipes/configs/covid_fakenews/bert_bigru.yaml
    python recipes/covid_fakenews.py --config recipes/configs/covid_fakenews/tiny.yaml     # offline demo on CPU
    python -m hf_tasks.text.tweets --train_file data/constraint/Constraint_Train.csv --row 12   # what the model reads
"""

import hf_tasks.help_cache  # noqa: F401  (prints a cached --help and exits, before the imports below)

from hf_tasks.args import TrainingArguments
from hf_tasks.data import constraint
from hf_tasks.data.constraint import ConstraintArguments
from hf_tasks.modeling import text_classifier
from hf_tasks.modeling.auto import load_processor
from hf_tasks.modeling.labels import ClassLabels
from hf_tasks.options import DataArguments, ModelArguments, TextHeadArguments
from hf_tasks.run_state import RunState
from hf_tasks.registry import ModelCardFacts, Recipe
from hf_tasks.runner import run, setup
from hf_tasks.surgery.regime import RegimeArguments, apply_regime
from hf_tasks.tasks.text import TextArguments, TextClassificationTask

HEAD_TITLES = {"auto": "[CLS]/pooler linear", "bigru": "BiGRU"}  # for the model card


ARGUMENTS = (ModelArguments, DataArguments, ConstraintArguments, TextArguments, TextHeadArguments, RegimeArguments,
             TrainingArguments)


def main(state: RunState):
    setup(state)
    tokenizer = load_processor(state[ModelArguments])
    constraint_args, text_args, head_args = state[ConstraintArguments], state[TextArguments], state[TextHeadArguments]
    data = constraint.load(state[DataArguments], constraint_args, bad_rows=state.bad_rows)
    model = text_classifier.build_model(state[ModelArguments], head_args,
                                        ClassLabels.of(data, binary_sigmoid=text_args.binary_sigmoid), tokenizer)
    task = TextClassificationTask(data, tokenizer, state[DataArguments], text_args,
                                  text_column=constraint_args.text_column, display_columns=constraint_args.kept_columns,
                                  id_column=constraint_args.id_column)
    model, callbacks = apply_regime(model, state[RegimeArguments], task, state.training_args)
    return run(
        task,
        model,
        state,
        processing_class=tokenizer,
        callbacks=callbacks,
        model_card=RECIPE.card(
            f"COVID-19 tweet real/fake classification, {HEAD_TITLES[head_args.head]} head, "
            + ("feature-based (frozen backbone)." if state[RegimeArguments].feature_based else "fine-tuned.")
        ),
    )


RECIPE = Recipe(
    "covid_fakenews", __doc__, ARGUMENTS, main,
    unused=("data_dir",),  # tweets come from CSV files or a hub dataset, never a folder
    model_card=ModelCardFacts("text-classification", "Constraint@AAAI-2021 COVID-19 fake news", language=("en",),
                              tags=("text-classification", "covid-19", "fake-news", "tweets")),
)

if __name__ == "__main__":
    RECIPE.cli()
