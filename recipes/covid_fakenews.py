"""COVID-19 fake-news tweets (Constraint@AAAI-2021): BERT with a [CLS]/pooler linear head or a BiGRU
head, fine-tuned end to end or feature-based (frozen backbone, optionally with cached features).

    accelerate launch recipes/covid_fakenews.py --config recipes/configs/covid_fakenews/bert_bigru.yaml
    python recipes/covid_fakenews.py --config recipes/configs/covid_fakenews/tiny.yaml     # offline demo on CPU
    python -m hf_tasks.text.tweets --train_file data/constraint/Constraint_Train.csv --row 12   # what the model reads
"""

import logging
from dataclasses import dataclass, field

import torch
from transformers import AutoConfig, AutoModelForSequenceClassification

from hf_tasks.args import DataArguments, ModelArguments, TrainingArguments, parse
from hf_tasks.data import constraint
from hf_tasks.data.constraint import ConstraintArguments
from hf_tasks.errors import one_line_errors
from hf_tasks.modeling.auto import load_config, load_model, load_processor
from hf_tasks.modeling.bigru import BiGRUConfig, BiGRUForSequenceClassification
from hf_tasks.modeling.feature_cache import FEATURE_BASED_LORA, feature_based
from hf_tasks.runner import run, setup
from hf_tasks.surgery.lora import LoraArguments, apply_lora
from hf_tasks.errors import BadInputError
from hf_tasks.tasks.classification import label_maps
from hf_tasks.tasks.text import TextArguments, TextClassificationTask

logger = logging.getLogger("hf_tasks")


@dataclass
class HeadArguments:
    head: str = field(
        default="linear",
        metadata={"help": "'linear': [CLS]/pooler → linear (AutoModelForSequenceClassification); "
                          "'bigru': token states → bidirectional GRU → linear."},
    )
    feature_based: bool = field(
        default=False, metadata={"help": "Freeze the backbone (run without dropout) and train only the head."}
    )
    cache_features: bool = field(
        default=False,
        metadata={"help": "With --feature_based: compute the frozen backbone's outputs once per example and "
                          "reuse them in later epochs and evaluations."},
    )
    gru_hidden_size: int = field(default=256, metadata={"help": "GRU hidden size per direction."})
    gru_num_layers: int = field(default=1, metadata={"help": "Stacked GRU layers."})
    gru_dropout: float = field(default=0.0, metadata={"help": "Dropout between stacked GRU layers."})
    classifier_dropout: float | None = field(
        default=None, metadata={"help": "Dropout before the classifier (unset: the backbone's, or 0.1 for bigru)."}
    )

    def __post_init__(self):
        if self.head not in ("linear", "bigru"):
            raise BadInputError(f"--head must be 'linear' or 'bigru', got {self.head!r}.")
        if self.cache_features and not self.feature_based:
            raise BadInputError("--cache_features needs --feature_based (only a frozen backbone's outputs can be reused).")


def build_model(model_args: ModelArguments, head_args: HeadArguments, task: TextClassificationTask):
    if task.binary_sigmoid:
        # One output: the probability of the second class (e.g. "fake"), which pipelines show by name.
        positive = task.label_names[1]
        labels = {"id2label": {0: positive}, "label2id": {positive: 0}, "num_labels": 1,
                  "problem_type": "multi_label_classification"}
    else:
        labels = {**label_maps(task.label_names), "problem_type": "single_label_classification"}
    # Weights train in float32 whatever the checkpoint stores; --bf16/--fp16 add mixed precision.
    labels["dtype"] = torch.float32
    dropout = {} if head_args.classifier_dropout is None else {"classifier_dropout": head_args.classifier_dropout}
    if head_args.head == "linear":
        return load_model(AutoModelForSequenceClassification, model_args, **labels, **dropout)

    source = model_args.config_name or model_args.model_name_or_path
    if AutoConfig.from_pretrained(source, **model_args.pretrained_kwargs()).model_type == BiGRUConfig.model_type:
        return load_model(AutoModelForSequenceClassification, model_args, **labels, **dropout)  # a trained BiGRU model
    head = {"gru_hidden_size": head_args.gru_hidden_size, "gru_num_layers": head_args.gru_num_layers,
            "gru_dropout": head_args.gru_dropout, **labels, **dropout}
    if model_args.model_name_or_path is None:
        return BiGRUForSequenceClassification(BiGRUConfig(encoder=load_config(model_args), **head))
    encoder_kwargs = {**model_args.pretrained_kwargs(), "dtype": head.pop("dtype")}
    if model_args.config_name:
        encoder_kwargs["config"] = load_config(model_args)
    return BiGRUForSequenceClassification.from_pretrained_encoder(
        model_args.model_name_or_path, encoder_kwargs=encoder_kwargs, **head
    )


ARGUMENTS = (ModelArguments, DataArguments, ConstraintArguments, TextArguments, HeadArguments, LoraArguments, TrainingArguments)  # main's parameters, in order
UNUSED = ("data_dir",)  # tweets come from CSV files or a hub dataset, never a folder


def main(model_args: ModelArguments, data_args: DataArguments, constraint_args: ConstraintArguments,
         text_args: TextArguments, head_args: HeadArguments, lora_args: LoraArguments, training_args: TrainingArguments):
    if head_args.feature_based and lora_args.peft:
        raise BadInputError(FEATURE_BASED_LORA)
    setup(training_args)
    tokenizer = load_processor(model_args)
    tokenizer.padding_side = "right"  # the BiGRU packs sequences by their lengths from the left
    data = constraint.load(data_args, constraint_args)
    task = TextClassificationTask(data, tokenizer, data_args, text_args, text_column=constraint_args.text_column,
                                  display_columns=constraint_args.kept_columns)
    model = apply_lora(build_model(model_args, head_args, task), lora_args)
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
            "description": f"COVID-19 tweet real/fake classification, {head_args.head} head, "
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
