"""Persian extractive QA with unanswerable questions (PQuAD, or any SQuAD v2-format data).

    accelerate launch recipes/parsquad.py --config recipes/configs/parsquad/parsbert.yaml
    python recipes/parsquad.py --config recipes/configs/parsquad/tiny.yaml     # offline demo on CPU
"""

import hf_tasks.help_cache  # noqa: F401  (prints a cached --help and exits, before the imports below)

from transformers import AutoModelForQuestionAnswering

from hf_tasks.args import DataArguments, ModelArguments, TrainingArguments, parse
from hf_tasks.data import squad
from hf_tasks.errors import one_line_errors
from hf_tasks.modeling.auto import load_model, load_processor
from hf_tasks.runner import run, setup
from hf_tasks.surgery.lora import LoraArguments, apply_lora
from hf_tasks.tasks.qa import QAArguments, QuestionAnsweringTask


# main's parameters, in order
ARGUMENTS = (ModelArguments, DataArguments, QAArguments, LoraArguments, TrainingArguments)
UNUSED = ("data_dir",)  # QA reads SQuAD-format files or a hub dataset, never a folder


def main(model_args: ModelArguments, data_args: DataArguments, qa_args: QAArguments, lora_args: LoraArguments,
         training_args: TrainingArguments):
    setup(training_args)
    data = squad.load(data_args)
    tokenizer = load_processor(model_args)
    model = load_model(AutoModelForQuestionAnswering, model_args)
    # The task reads a no-answer threshold stored with the model and stores a tuned one there.
    task = QuestionAnsweringTask(data, tokenizer, data_args, qa_args, model.config)
    model = apply_lora(model, lora_args)
    return run(
        task,
        model,
        training_args,
        processing_class=tokenizer,
        arguments=(model_args, data_args, qa_args, lora_args, training_args),
        model_card={
            "recipe": "recipes/parsquad.py",
            "task_type": "question-answering",
            "dataset": "PQuAD",
            "language": ["fa"],
            "tags": ["question-answering", "persian", "pquad"],
            "description": "Extractive question answering with unanswerable questions (SQuAD v2 style).",
        },
    )


if __name__ == "__main__":
    with one_line_errors():
        main(*parse(*ARGUMENTS, description=__doc__, unused=UNUSED))
