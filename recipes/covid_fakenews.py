"""COVID-19 fake-news tweets (Constraint@AAAI-2021): BERT with a [CLS]/pooler linear head or a BiGRU
head, fine-tuned end to end or feature-based (frozen backbone, optionally with cached features).

    accelerate launch recipes/covid_fakenews.py --config recipes/configs/covid_fakenews/bert_bigru.yaml
    python recipes/covid_fakenews.py --config recipes/configs/covid_fakenews/tiny.yaml     # offline demo on CPU
    python -m hf_tasks.text.tweets --train_file data/constraint/Constraint_Train.csv --row 12   # what the model reads
"""

import hf_tasks.help_cache  # noqa: F401  (prints a cached --help and exits, before the imports below)

import logging

from hf_tasks.args import DataArguments, ModelArguments, TrainingArguments, parse
from hf_tasks.data import constraint
from hf_tasks.data.constraint import ConstraintArguments
from hf_tasks.data.sources import class_names_of
from hf_tasks.errors import BadInputError, one_line_errors
from hf_tasks.modeling.auto import load_processor
from hf_tasks.modeling.feature_cache import FEATURE_BASED_LORA, feature_based
from hf_tasks.modeling.text_classifier import HeadArguments, build_text_classifier
from hf_tasks.runner import run, setup
from hf_tasks.surgery.lora import LoraArguments, apply_lora
from hf_tasks.tasks.text import TextArguments, TextClassificationTask

logger = logging.getLogger("hf_tasks")
HEAD_TITLES = {"auto": "[CLS]/pooler linear", "bigru": "BiGRU"}  # for the model card


# main's parameters, in order
ARGUMENTS = (ModelArguments, DataArguments, ConstraintArguments, TextArguments, HeadArguments, LoraArguments,
             TrainingArguments)
UNUSED = ("data_dir",)  # tweets come from CSV files or a hub dataset, never a folder


def main(model_args: ModelArguments, data_args: DataArguments, constraint_args: ConstraintArguments,
         text_args: TextArguments, head_args: HeadArguments, lora_args: LoraArguments,
         training_args: TrainingArguments):
    if head_args.feature_based and lora_args.peft:
        raise BadInputError(FEATURE_BASED_LORA)
    setup(training_args)
    tokenizer = load_processor(model_args)
    tokenizer.padding_side = "right"  # the BiGRU packs sequences by their lengths from the left
    data = constraint.load(data_args, constraint_args)
    model = build_text_classifier(model_args, head_args, class_names_of(data, "label"),
                                  binary_sigmoid=text_args.binary_sigmoid)
    model = apply_lora(model, lora_args)
    task = TextClassificationTask(data, tokenizer, data_args, text_args, text_column=constraint_args.text_column,
                                  display_columns=constraint_args.kept_columns, id_column=constraint_args.id_column)
    cache = None
    if head_args.feature_based:
        mode = "tokens" if head_args.head == "bigru" else "first_token"
        cache = feature_based(model, cache=mode if head_args.cache_features else None)
    results = run(
        task,
        model,
        training_args,
        processing_class=tokenizer,
        arguments=(model_args, data_args, constraint_args, text_args, head_args, lora_args, training_args),
        model_card={
            "recipe": "recipes/covid_fakenews.py",
            "task_type": "text-classification",
            "dataset": "Constraint@AAAI-2021 COVID-19 fake news",
            "language": ["en"],
            "tags": ["text-classification", "covid-19", "fake-news", "tweets"],
            "description": f"COVID-19 tweet real/fake classification, {HEAD_TITLES[head_args.head]} head, "
                           + ("feature-based (frozen backbone)." if head_args.feature_based else "fine-tuned."),
        },
    )
    if cache is not None:
        logger.info("Feature cache: %d examples stored, %d lookups served from it, %d computed.",
                    len(cache.features), cache.hits, cache.misses)
    return results


if __name__ == "__main__":
    with one_line_errors():
        main(*parse(*ARGUMENTS, description=__doc__, unused=UNUSED))
