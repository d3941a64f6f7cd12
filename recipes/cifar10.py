"""CIFAR-10 transfer learning by fine-tuning a single trainable block (Malpure et al. 2021).

    accelerate launch recipes/cifar10.py --config recipes/configs/cifar10/deit_base_distilled.yaml
    python recipes/cifar10.py --config recipes/configs/cifar10/tiny.yaml    # offline demo, CPU

Backbones: any timm model name (wrapped with the paper's MLP head) or a transformers image model
(`facebook/deit-small-distilled-patch16-224`). The configs freeze the backbone except its last block
(`--trainable_modules paper`, see `hf_tasks.modeling.image_classifier.paper_trainable_modules`); every other
training regime works too (`--freeze`, `--peft lora`, `--feature_based`; see `hf_tasks.surgery.regime`). Data:
`--dataset_name uoft-cs/cifar10`, or `--data_dir` with an ImageFolder tree or the CIFAR-10 python
batches; see `hf_tasks.data.labelled_images`. The schedule is Adam with ReduceLROnPlateau on validation
accuracy, from the config; `epoch_times.json` records each epoch's train/eval time and images/s.
"""

import hf_tasks.help_cache  # noqa: F401  (prints a cached --help and exits, before the imports below)

from dataclasses import dataclass, field

from transformers import EarlyStoppingCallback

import hf_tasks.modeling.mlp  # noqa: F401  (registers the model type of mlp_baseline.yaml)
from hf_tasks.args import TrainingArguments
from hf_tasks.callbacks import EpochTimingCallback, check_plateau_schedule
from hf_tasks.data import labelled_images
from hf_tasks.data.labelled_images import LabelledImageArguments
from hf_tasks.modeling import image_classifier
from hf_tasks.modeling.labels import ClassLabels
from hf_tasks.options import DataArguments, ImageHeadArguments, ImageModelArguments
from hf_tasks.run_state import RunState
from hf_tasks.registry import ModelCardFacts, Recipe
from hf_tasks.runner import run, setup
from hf_tasks.surgery import parameter_counts
from hf_tasks.surgery.regime import RegimeArguments, apply_regime
from hf_tasks.samples.images import write_shapes_tree
from hf_tasks.samples.owned_folder import generate_into_data_dir
from hf_tasks.tasks.image import ImageArguments, ImageClassificationTask, normalisation_statistics

@dataclass
class Cifar10Arguments:
    """What this recipe adds to the image groups."""

    early_stopping_patience: int | None = field(
        default=None,
        metadata={"help": "Stop after this many evaluations without improvement (needs load_best_model_at_end)."},
    )
    generate_synthetic_data: bool = field(
        default=False, metadata={"help": "Write the coloured-shapes ImageFolder tree into --data_dir first (a new or "
                                         "empty folder, or one it wrote; a folder of your own data is read instead)."}
    )


ARGUMENTS = (ImageModelArguments, DataArguments, ImageArguments, LabelledImageArguments, ImageHeadArguments,
             Cifar10Arguments, RegimeArguments, TrainingArguments)


def main(state: RunState):
    setup(state)
    model_args, recipe_args, training_args = state[ImageModelArguments], state[Cifar10Arguments], state.training_args
    check_plateau_schedule(training_args)
    if recipe_args.generate_synthetic_data:
        generate_into_data_dir(state,
                               lambda folder: write_shapes_tree(folder, seed=training_args.seed))
    with training_args.main_process_first(desc="loading images"):
        data = labelled_images.load(state[DataArguments], state[LabelledImageArguments], seed=training_args.seed,
                                    bad_rows=state.bad_rows)
    processor = image_classifier.load_processor(model_args)
    model = image_classifier.build_model(model_args, state[ImageHeadArguments], ClassLabels.of(data), processor)
    image_args = state[ImageArguments]
    task = ImageClassificationTask(data, image_args, normalisation_statistics(
        image_args.normalization, image_classifier.backbone_statistics(model, processor)))
    model, callbacks = apply_regime(model, state[RegimeArguments], task, training_args)
    callbacks.append(EpochTimingCallback())
    if recipe_args.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=recipe_args.early_stopping_patience))
    counts = parameter_counts(model)
    return run(
        task,
        model,
        state,
        processing_class=task.image_processor(),
        callbacks=callbacks,
        model_card=RECIPE.card(
            f"`{model_args.source}` fine-tuned with trainable backbone parts "
            f"{state[RegimeArguments].trainable_modules or 'all'} ({counts['trainable_params']:,} trainable "
            "parameters), after Malpure et al. 2021."
        ),
    )


RECIPE = Recipe(
    "cifar10", __doc__, ARGUMENTS, main,
    # Images come from a hub dataset or --data_dir; nothing is tokenised or flattened.
    unused=("train_file", "validation_file", "test_file", "max_seq_length", "preprocessing_num_workers",
            "padding_free"),
    model_card=ModelCardFacts("image-classification", "CIFAR-10",
                              tags=("image-classification", "cifar10", "transfer-learning")),
    writes_data_dir=True,
)

if __name__ == "__main__":
    RECIPE.cli()
