"""Persian NLI on FarsTail (premise, hypothesis → entailment / contradiction / neutral), with model
surgery: freezing, layer deletion and attention-head pruning (`hf_tasks.surgery`).

    accelerate launch recipes/farstail.py --config recipes/configs/farstail/parsbert.yaml
    python recipes/farstail.py --config recipes/configs/farstail/tiny.yaml     # offline demo on CPU
    python -m hf_tasks.study recipes/configs/farstail/*.yaml --output_dir runs/study   # the comparison table
"""

import hf_tasks.help_cache  # noqa: F401  (prints a cached --help and exits, before the imports below)

from transformers import AutoModelForSequenceClassification

from hf_tasks.args import DataArguments, ModelArguments, TrainingArguments, parse
from hf_tasks.data import farstail
from hf_tasks.data.farstail import FarsTailArguments
from hf_tasks.data.sources import class_names_of
from hf_tasks.errors import one_line_errors
from hf_tasks.modeling.auto import load_model, load_processor
from hf_tasks.runner import run, setup
from hf_tasks.surgery import SurgeryArguments, apply_surgery
from hf_tasks.surgery.lora import LoraArguments, apply_lora
from hf_tasks.modeling.labels import label_maps
from hf_tasks.tasks.pairs import PairArguments, PairClassificationTask


# main's parameters, in order
ARGUMENTS = (ModelArguments, DataArguments, FarsTailArguments, PairArguments, SurgeryArguments, LoraArguments,
             TrainingArguments)
UNUSED = ("data_dir",)  # NLI reads TSV files or a hub dataset, never a folder


def main(model_args: ModelArguments, data_args: DataArguments, farstail_args: FarsTailArguments,
         pair_args: PairArguments, surgery_args: SurgeryArguments, lora_args: LoraArguments,
         training_args: TrainingArguments):
    setup(training_args)
    data = farstail.load(data_args, farstail_args)
    tokenizer = load_processor(model_args)
    model = load_model(AutoModelForSequenceClassification, model_args, **label_maps(class_names_of(data, "label")))
    task = PairClassificationTask(data, tokenizer, data_args, pair_args, subset_columns=farstail.HARD_COLUMNS)
    callbacks = apply_surgery(model, surgery_args, splits=task.features(training_args),
                              training=training_args.do_train, data_collator=task.data_collator,
                              seed=training_args.seed)
    model = apply_lora(model, lora_args, surgery_args, training=training_args.do_train)
    return run(
        task,
        model,
        training_args,
        processing_class=tokenizer,
        callbacks=callbacks,
        arguments=(model_args, data_args, farstail_args, pair_args, surgery_args, lora_args, training_args),
        model_card={
            "recipe": "recipes/farstail.py",
            "task_type": "text-classification",
            "dataset": "FarsTail",
            "language": ["fa"],
            "tags": ["text-classification", "natural-language-inference", "persian", "farstail"],
            "description": "Persian natural language inference (entailment / contradiction / neutral) "
                           "fine-tuned on FarsTail.",
        },
    )


if __name__ == "__main__":
    with one_line_errors():
        main(*parse(*ARGUMENTS, description=__doc__, unused=UNUSED))
