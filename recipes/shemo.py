"""Persian speech emotion recognition on ShEMO (6 emotions) with HuBERT or wav2vec2.

    accelerate launch recipes/shemo.py --config recipes/configs/shemo/hubert_base.yaml --data_dir <ShEMO>
    python recipes/shemo.py --config recipes/configs/shemo/tiny.yaml     # offline demo on synthetic clips, CPU

`--data_dir` is ShEMO's folder (female/ and male/ wav files, any depth); a hub audio dataset or
`--train_file` CSVs (path,label[,speaker]) work too. The split is speaker-independent by default (see
`hf_tasks.data.audio_clips` and `hf_tasks.tasks.audio`). Every training regime works on the speech encoder
(`hf_tasks.surgery.regime`: `--freeze layers:0-5`, `--keep_layers first:6`, `--peft lora`).
"""

import hf_tasks.help_cache  # noqa: F401  (prints a cached --help and exits, before the imports below)

from transformers import AutoFeatureExtractor

from hf_tasks.args import TrainingArguments
from hf_tasks.audio.augment import AugmentSettings
from hf_tasks.data import audio_clips
from hf_tasks.data.audio_clips import ClipArguments
from hf_tasks.modeling import audio_classifier
from hf_tasks.modeling.auto import load_processor
from hf_tasks.modeling.labels import ClassLabels
from hf_tasks.options import AudioHeadArguments, DataArguments, ModelArguments
from hf_tasks.run_state import RunState
from hf_tasks.registry import ModelCardFacts, Recipe
from hf_tasks.runner import run, setup
from hf_tasks.samples.owned_folder import generate_into_data_dir
from hf_tasks.samples.shemo import write_synthetic_shemo
from hf_tasks.surgery.regime import RegimeArguments, apply_regime
from hf_tasks.tasks.audio import AudioArguments, AudioClassificationTask


ARGUMENTS = (ModelArguments, DataArguments, ClipArguments, AudioArguments, AugmentSettings, AudioHeadArguments,
             RegimeArguments, TrainingArguments)


def main(state: RunState):
    setup(state)
    data_args, audio_args = state[DataArguments], state[AudioArguments]
    if audio_args.generate_synthetic_data:
        generate_into_data_dir(state, write_synthetic_shemo)
    data = audio_clips.load(data_args, state[ClipArguments], bad_rows=state.bad_rows)
    feature_extractor = load_processor(state[ModelArguments], AutoFeatureExtractor)
    head_args = state[AudioHeadArguments]
    labels = ClassLabels.of(data, class_weighted=head_args.class_weighted_loss, oversampled=audio_args.oversample)
    model = audio_classifier.build_model(state[ModelArguments], head_args, labels, feature_extractor)
    task = AudioClassificationTask(data, feature_extractor, data_args, audio_args, state[AugmentSettings],
                                   bad_rows=state.bad_rows,
                                   attention_mask=audio_classifier.takes_attention_mask(model, feature_extractor))
    model, callbacks = apply_regime(model, state[RegimeArguments], task, state.training_args)
    return run(
        task,
        model,
        state,
        processing_class=feature_extractor,
        callbacks=callbacks,
        model_card=RECIPE.card(
            "Speech emotion recognition (anger, fear, happiness, neutral, sadness, surprise) "
            f"with a {state[ClipArguments].split} split; per-class results in the classification report."
        ),
    )


RECIPE = Recipe(
    "shemo", __doc__, ARGUMENTS, main,
    unused=("max_seq_length", "padding_free"),  # clips are cropped by --max_duration, not tokens; no flattening
    model_card=ModelCardFacts("audio-classification", "ShEMO", language=("fa",),
                              tags=("audio-classification", "speech-emotion-recognition", "persian", "shemo")),
    writes_data_dir=True,
)

if __name__ == "__main__":
    RECIPE.cli()
