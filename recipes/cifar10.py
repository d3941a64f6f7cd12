"""CIFAR-10 transfer learning by fine-tuning a single trainable block (Malpure et al. 2021).

    accelerate launch recipes/cifar10.py --config recipes/configs/cifar10/deit_base_distilled.yaml
    python recipes/cifar10.py --config recipes/configs/cifar10/tiny.yaml    # offline demo, CPU

Backbones: any timm model name (wrapped with the paper's MLP head) or a transformers image model
(`facebook/deit-small-distilled-patch16-224`). The backbone is frozen except its last block
(`--trainable_modules paper`, see `hf_tasks.modeling.timm_model.PAPER_TRAINABLE_MODULES`). Data:
`--dataset_name uoft-cs/cifar10`, or `--data_dir` with an ImageFolder tree or the CIFAR-10 python
batches; see `hf_tasks.data.labelled_images`. The schedule is Adam with ReduceLROnPlateau on validation
accuracy, from the config; `epoch_times.json` records each epoch's train/eval time and images/s.
"""

import hf_tasks.help_cache  # noqa: F401  (prints a cached --help and exits, before the imports below)

from dataclasses import dataclass, field

from transformers import EarlyStoppingCallback

import hf_tasks.modeling.mlp  # noqa: F401  (registers the model type of mlp_baseline.yaml)
from hf_tasks.args import DataArguments, ModelArguments, TrainingArguments, parse
from hf_tasks.callbacks import EpochTimingCallback, check_plateau_schedule
from hf_tasks.data import labelled_images
from hf_tasks.data.labelled_images import LabelledImageArguments
from hf_tasks.data.sources import class_names_of
from hf_tasks.errors import one_line_errors
from hf_tasks.modeling.timm_model import TransferArguments, backbone_statistics, build_image_classifier, trainable_parts
from hf_tasks.runner import run, setup
from hf_tasks.surgery import parameter_counts, train_only
from hf_tasks.surgery.lora import LoraArguments, apply_lora
from hf_tasks.samples.images import write_shapes_tree
from hf_tasks.samples.owned_folder import generate_into_data_dir
from hf_tasks.tasks.image import ImageArguments, ImageClassificationTask, normalisation_statistics


@dataclass
class Cifar10Arguments(ImageArguments, LabelledImageArguments, TransferArguments):
    early_stopping_patience: int | None = field(
        default=None,
        metadata={"help": "Stop after this many evaluations without improvement (needs load_best_model_at_end)."},
    )
    generate_synthetic_data: bool = field(
        default=False, metadata={"help": "Write the coloured-shapes ImageFolder tree into --data_dir first (a new or "
                                         "empty folder, or one it wrote; a folder of your own data is read instead)."}
    )

    def __post_init__(self):
        ImageArguments.__post_init__(self)
        LabelledImageArguments.__post_init__(self)
        TransferArguments.__post_init__(self)


# main's parameters, in order
ARGUMENTS = (ModelArguments, DataArguments, Cifar10Arguments, LoraArguments, TrainingArguments)
# Images come from a hub dataset or --data_dir; nothing is tokenised.
UNUSED = ("train_file", "validation_file", "test_file", "max_seq_length", "preprocessing_num_workers")


def main(
    model_args: ModelArguments, data_args: DataArguments, task_args: Cifar10Arguments, lora_args: LoraArguments,
    training_args: TrainingArguments,
):
    setup(training_args)
    check_plateau_schedule(training_args)
    if task_args.generate_synthetic_data:
        generate_into_data_dir(data_args, training_args,
                               lambda folder: write_shapes_tree(folder, seed=training_args.seed))
    with training_args.main_process_first(desc="loading images"):
        data = labelled_images.load(data_args, task_args, seed=training_args.seed)
    name = model_args.model_name_or_path or model_args.config_name
    model = build_image_classifier(name, class_names_of(data, "label"), task_args, **model_args.pretrained_kwargs())
    trainable = train_only(model, trainable_parts(model, task_args.trainable_modules))
    counts = parameter_counts(model, by_part=True)
    print(
        f"Trainable parameters: backbone {counts['backbone_trainable_params']:,} of {counts['backbone_params']:,} "
        f"({', '.join(trainable) or 'none'}), head {counts['head_trainable_params']:,}, "
        f"total {counts['trainable_params']:,}"
    )
    mean_std = normalisation_statistics(
        task_args.normalization, lambda: backbone_statistics(model, name, **model_args.pretrained_kwargs())
    )
    task = ImageClassificationTask(data, task_args, mean_std)
    # LoRA replaces the trainable block: peft freezes the whole backbone and adapts its attention or convolutions.
    model = apply_lora(model, lora_args)
    callbacks = [EpochTimingCallback()]
    if task_args.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=task_args.early_stopping_patience))
    return run(
        task,
        model,
        training_args,
        processing_class=task.image_processor(),
        callbacks=callbacks,
        arguments=(model_args, data_args, task_args, lora_args, training_args),
        model_card={
            "recipe": "recipes/cifar10.py",
            "task_type": "image-classification",
            "dataset": "CIFAR-10",
            "tags": ["image-classification", "cifar10", "transfer-learning"],
            "description": f"`{name}` fine-tuned with one trainable block ({', '.join(trainable) or 'none'}; "
            f"backbone {counts['backbone_trainable_params']:,} + head {counts['head_trainable_params']:,} "
            "trainable parameters), after Malpure et al. 2021.",
        },
    )


if __name__ == "__main__":
    with one_line_errors():
        main(*parse(*ARGUMENTS, description=__doc__, unused=UNUSED))
