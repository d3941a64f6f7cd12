"""Attention views of a BERT-family model on one sentence or sentence pair (no training).

    python recipes/attention.py --config recipes/configs/attention/bert_base_uncased.yaml
    python recipes/attention.py --model_name_or_path runs/farstail-parsbert \
        --text "..." --text_pair "..." --output_dir runs/attention-farstail

Writes `head_view.html` and `model_view.html` (self-contained pages that draw the attention with
their own script: they open offline, from the file) and `attention_heads.png` (one panel per head,
rows = layers), and prints the model's prediction when it has a classification head. With
`--report_to tensorboard,mlflow,wandb,trackio` the grid also goes to those trackers (`hf_tasks.trackers`).
"""

from __future__ import annotations

import hf_tasks.help_cache  # noqa: F401  (prints a cached --help and exits, before the imports below)

from dataclasses import dataclass, field
from pathlib import Path

import torch

from hf_tasks.options import ModelArguments
from hf_tasks.registry import Recipe
from hf_tasks.run_state import RunState, resolved_config
from hf_tasks.interpret.attention import compute_attentions, load_model_and_tokenizer, write_attention_views
from hf_tasks.surgery.structure import LAYER_SET_HELP, parse_layer_set
from hf_tasks.errors import BadInputError
from hf_tasks.trackers import Trackers


@dataclass
class AttentionArguments:
    text: str = field(default=None, metadata={"help": "The sentence (or first sentence of a pair) to look at."})
    text_pair: str | None = field(default=None, metadata={"help": "Second sentence (e.g. an NLI hypothesis)."})
    output_dir: str = field(default="runs/attention", metadata={"help": "Folder for the HTML views and the PNG grid."})
    max_seq_length: int = field(default=128, metadata={"help": "Tokens kept from the input (longer is truncated)."})
    layers: str | None = field(default=None, metadata={"help": f"Only these layers: {LAYER_SET_HELP}. Default: all."})
    display_mode: str = field(default="light", metadata={"help": "Page colours: 'light' or 'dark'."})
    use_cpu: bool = field(default=False, metadata={"help": "Run on CPU even when a GPU is available."})
    report_to: str | None = field(
        default=None, metadata={"help": "Trackers that get the attention grid: tensorboard, mlflow, wandb, trackio "
                                        "(several: tensorboard,mlflow)."})
    run_name: str | None = field(default=None, metadata={"help": "The run's name in the trackers."})

    def __post_init__(self):
        if not self.text:
            raise BadInputError("Give the input sentence with --text (and --text_pair for a pair).")
        if self.display_mode not in ("light", "dark"):
            raise BadInputError(f"--display_mode {self.display_mode!r}: use 'light' or 'dark'.")


ARGUMENTS = (ModelArguments, AttentionArguments)


def main(state: RunState) -> dict[str, Path]:
    model_args, attention_args = state[ModelArguments], state[AttentionArguments]
    if model_args.model_name_or_path is None:
        raise BadInputError("Attention views need a trained model: pass --model_name_or_path.")
    model, tokenizer = load_model_and_tokenizer(
        model_args.model_name_or_path, tokenizer_name=model_args.tokenizer_name, **model_args.pretrained_kwargs()
    )
    if torch.cuda.is_available() and not attention_args.use_cpu:
        model.to("cuda")
    layers = None
    if attention_args.layers is not None:
        num_layers = model.config.num_hidden_layers
        layers = parse_layer_set(attention_args.layers, num_layers, what="--layers")
    maps = compute_attentions(
        model,
        tokenizer,
        attention_args.text,
        attention_args.text_pair,
        max_length=attention_args.max_seq_length,
        layers=layers,
    )
    paths = write_attention_views(maps, attention_args.output_dir, display_mode=attention_args.display_mode)
    for note in maps.notes:
        print(f"note: {note}")
    if maps.prediction is not None:
        print(f"prediction: {maps.prediction}")
    print(f"{len(maps.tokens)} tokens, {len(maps.layers)} layers, {maps.num_panels} heads")
    for name, path in paths.items():
        print(f"{name}: {path}")
    if attention_args.report_to:
        trackers = Trackers(attention_args.report_to.split(","), attention_args.output_dir, attention_args.run_name,
                            resolved_config(model_args, attention_args))
        trackers.report({"tokens": len(maps.tokens), "heads": maps.num_panels}, list(paths.values()))
    return paths


RECIPE = Recipe("attention", __doc__, ARGUMENTS, main)

if __name__ == "__main__":
    RECIPE.cli()
