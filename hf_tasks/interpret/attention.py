"""Attention weights of BERT-family encoders, rendered as offline HTML views and a PNG grid of heads.

Works for hub ids, local model folders and run folders of this toolkit (the runner saves the model
and tokenizer there). transformers 5.x records attention weights only with the eager attention
implementation (SDPA returns none), so models are loaded with `attn_implementation="eager"`.
"""

from __future__ import annotations

import html
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel

from hf_tasks.surgery import from_pretrained, pruned_heads_of
from hf_tasks.errors import BadInputError

logger = logging.getLogger(__name__)

#: Files that mark a folder as holding a tokenizer.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "sentencepiece.bpe.model", "spiece.model")


@dataclass
class Prediction:
    """The classification head's answer for one input."""

    label: str
    probability: float
    probabilities: dict[str, float]

    def __str__(self) -> str:
        others = ", ".join(f"{name}={p:.3f}" for name, p in self.probabilities.items())
        return f"{self.label} (p={self.probability:.3f}; {others})"


@dataclass
class AttentionMaps:
    """Attention weights of one input.

    `attentions[i]` has shape (heads, tokens, tokens) for layer `layers[i]`; rows are queries,
    columns keys. `heads[i]` are the original indices of those heads (a pruned layer keeps fewer).
    """

    tokens: list[str]
    layers: list[int]
    heads: list[list[int]]
    attentions: list[np.ndarray]
    sentence_b_start: int | None = None
    prediction: Prediction | None = None
    title: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def num_panels(self) -> int:
        return sum(len(layer_heads) for layer_heads in self.heads)


def _run_config(folder: Path) -> dict[str, Any]:
    """The `config.yaml` a run of this toolkit wrote next to (or above, for checkpoints) `folder`."""
    for candidate in (folder / "config.yaml", folder.parent / "config.yaml"):
        if candidate.is_file():
            loaded = yaml.safe_load(candidate.read_text(encoding="utf-8"))
            return loaded if isinstance(loaded, dict) else {}
    return {}


def _tokenizer_source(model_name_or_path: str, tokenizer_name: str | None) -> str:
    """Where the tokenizer lives: given explicitly, in the model folder, or named by the run's config."""
    if tokenizer_name:
        return tokenizer_name
    folder = Path(model_name_or_path)
    if not folder.is_dir() or any((folder / name).is_file() for name in TOKENIZER_FILES):
        return model_name_or_path
    run_config = _run_config(folder)
    source = run_config.get("tokenizer_name") or run_config.get("model_name_or_path")
    if source and source != model_name_or_path:
        return str(source)
    raise BadInputError(
        f"{folder}: holds no tokenizer ({', '.join(TOKENIZER_FILES)}) and no run config.yaml naming one; "
        "pass --tokenizer_name (hub id or folder)."
    )


def _has_classification_head(config) -> bool:
    return any(name.endswith("ForSequenceClassification") for name in (config.architectures or []))


def load_model_and_tokenizer(
    model_name_or_path: str,
    *,
    tokenizer_name: str | None = None,
    cache_dir: str | None = None,
    revision: str = "main",
    trust_remote_code: bool = False,
) -> tuple[PreTrainedModel, Any]:
    """Model (with its sequence-classification head when it has one) and tokenizer, in eval mode.

    Attention weights are requested with the eager attention implementation. Models whose heads
    were pruned by `hf_tasks.surgery` load through its `from_pretrained`, which rebuilds them.
    """
    import hf_tasks.modeling.bigru  # noqa: F401  registers the toolkit's BiGRU head with the Auto classes

    path = Path(model_name_or_path)
    # A hub id is "org/name"; anything else, or a path under an existing local folder such as
    # runs/, is a folder that must exist.
    looks_local = (
        path.is_absolute()
        or model_name_or_path.startswith(".")
        or model_name_or_path.count("/") > 1
        or (len(path.parts) > 1 and Path(path.parts[0]).is_dir())
    )
    if looks_local and not path.exists():
        raise BadInputError(f"{path}: no such model folder; give a hub id, a model folder or a run folder.")
    kwargs = {"cache_dir": cache_dir, "revision": revision, "trust_remote_code": trust_remote_code}
    try:
        config = AutoConfig.from_pretrained(model_name_or_path, **kwargs)
    except OSError as error:
        raise BadInputError(
            f"{model_name_or_path}: not a local model folder and not loadable from the Hub ({error}). A run "
            "folder is the output_dir of a recipe run; a hub id looks like org/name."
        ) from error
    model_class = AutoModelForSequenceClassification if _has_classification_head(config) else AutoModel
    model = from_pretrained(model_class, model_name_or_path, attn_implementation="eager", **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(_tokenizer_source(model_name_or_path, tokenizer_name), **kwargs)
    return model.eval(), tokenizer


def _prediction(model: PreTrainedModel, logits: torch.Tensor) -> Prediction:
    logits = logits[0].float()
    id2label = model.config.id2label or {}
    if logits.numel() == 1:
        # One sigmoid output: the probability of the positive class, the only one id2label names
        # (this toolkit's convention for binary_sigmoid models).
        positive_name = str(id2label.get(0, "positive"))
        positive = float(torch.sigmoid(logits)[0])
        probabilities = {positive_name: positive, f"not {positive_name}": 1.0 - positive}
    else:
        values = torch.softmax(logits, dim=-1).tolist()
        probabilities = {str(id2label.get(index, f"LABEL_{index}")): value for index, value in enumerate(values)}
    label = max(probabilities, key=probabilities.get)
    return Prediction(label, probabilities[label], probabilities)


def _sentence_b_start(encoded) -> int | None:
    sequence_ids = encoded.sequence_ids(0) if encoded.is_fast else None
    if sequence_ids is not None:
        return sequence_ids.index(1) if 1 in sequence_ids else None
    token_type_ids = encoded.get("token_type_ids")
    if token_type_ids is not None and 1 in token_type_ids[0].tolist():
        return token_type_ids[0].tolist().index(1)
    return None


@torch.no_grad()
def compute_attentions(
    model: PreTrainedModel,
    tokenizer,
    text: str,
    text_pair: str | None = None,
    *,
    max_length: int = 128,
    layers: list[int] | None = None,
) -> AttentionMaps:
    """Attention weights (and the prediction, for classifiers) of `model` on one sentence or pair.

    `layers` keeps only those layer indices (long inputs make the views slow in a browser).
    """
    if not text or not text.strip():
        raise BadInputError("The input sentence is empty; pass --text \"some sentence\".")
    encoded = tokenizer(text, text_pair, return_tensors="pt", truncation=True, max_length=max_length)
    notes = []
    untruncated = len(tokenizer(text, text_pair)["input_ids"])
    if untruncated > encoded["input_ids"].shape[1]:
        notes.append(f"input truncated from {untruncated} to {encoded['input_ids'].shape[1]} tokens (max_length)")
    device = next(model.parameters()).device
    inputs = {name: tensor.to(device) for name, tensor in encoded.items()}

    # The base model returns attentions whatever head sits on top (custom heads may not pass
    # `output_attentions` through); the full model gives the prediction.
    base = model.base_model
    outputs = base(**inputs, output_attentions=True)
    attentions = getattr(outputs, "attentions", None)
    if not attentions:
        raise BadInputError(
            f"{type(model).__name__}: the model returned no attention weights; it needs eager attention "
            "(load it with attn_implementation='eager') and an encoder that records attentions."
        )
    prediction = None
    if _has_classification_head(model.config) and model is not base:
        prediction = _prediction(model, model(**inputs).logits.cpu())

    wanted = list(range(len(attentions))) if layers is None else list(layers)
    for index in wanted:
        if not 0 <= index < len(attentions):
            raise BadInputError(f"layer {index} does not exist; the model has layers 0-{len(attentions) - 1}.")
    maps = [attentions[index][0].float().cpu().numpy() for index in wanted]
    return AttentionMaps(
        tokens=tokenizer.convert_ids_to_tokens(encoded["input_ids"][0].tolist()),
        layers=wanted,
        heads=[_kept_heads(model, index, layer_map.shape[0]) for index, layer_map in zip(wanted, maps)],
        attentions=maps,
        sentence_b_start=_sentence_b_start(encoded),
        prediction=prediction,
        title=text if text_pair is None else f"{text} ‖ {text_pair}",
        notes=notes,
    )


def _kept_heads(model: PreTrainedModel, layer: int, num_heads: int) -> list[int]:
    """Original numbers of the `num_heads` heads left in `layer` (all of them unless pruned)."""
    pruned = pruned_heads_of(model).get(layer, []) if getattr(model.config, "pruned_heads", None) else []
    kept = [head for head in range(num_heads + len(pruned)) if head not in pruned]
    if len(kept) != num_heads:
        raise BadInputError(
            f"Layer {layer} returned attention for {num_heads} heads but the config records pruned heads {pruned}; "
            "the saved model and its config disagree."
        )
    return kept


VIEW_SCRIPT = Path(__file__).with_name("attention_view.js")
PAGE_STYLE = """
body { font-family: sans-serif; margin: 1em; }
label { margin-right: 1.5em; }
.swatch { display: inline-block; color: white; padding: 2px 6px; margin: 2px; cursor: pointer; font-size: 12px; }
.token { cursor: default; }
.thumbnail { cursor: pointer; border: 1px solid #ddd; }
td.pruned { color: #aaa; font-size: 11px; text-align: center; }
th { font-weight: normal; font-size: 12px; text-align: right; padding-right: 6px; }
body.dark { background: #1e1e1e; color: #e6e6e6; }
body.dark .token { fill: #e6e6e6; }
body.dark .thumbnail { border-color: #444; }
"""
DISPLAY_MODES = ("light", "dark")


def _view_page(view: str, title: str, maps: AttentionMaps, display_mode: str = "light") -> str:
    """A standalone HTML page that draws `maps` with the package's own script, inlined: no library and
    no network. (bertviz's pages load d3, jQuery and require.js from a CDN, so they stay blank offline.)"""
    heading = html.escape(title)
    if maps.prediction is not None:
        heading += f"<br><small>prediction: {html.escape(str(maps.prediction))}</small>"
    notes = "".join(f"<p><small>{html.escape(note)}</small></p>" for note in maps.notes)
    data = {
        "view": view, "tokens": maps.tokens, "sentence_b_start": maps.sentence_b_start, "layers": maps.layers,
        "heads": maps.heads, "attentions": [np.round(layer_map, 4).tolist() for layer_map in maps.attentions],
    }
    # "</" inside the JSON would close the script element early.
    payload = json.dumps(data, ensure_ascii=False).replace("</", "<\\/")
    return (
        "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{html.escape(title)}</title>\n<style>{PAGE_STYLE}</style>\n</head>\n<body class=\"{display_mode}\">\n"
        f"<h3>{heading}</h3>\n{notes}<div id=\"attention-view\"></div>\n"
        f"<script type=\"application/json\" id=\"attention-data\">{payload}</script>\n"
        f"<script>\n{VIEW_SCRIPT.read_text(encoding='utf-8')}</script>\n</body>\n</html>\n"
    )


def write_head_view(maps: AttentionMaps, path: str | Path, *, display_mode: str = "light") -> Path:
    """One layer at a time, every head as a colour: lines from each token to the tokens it attends to."""
    path = Path(path)
    path.write_text(_view_page("head", f"Head view: {maps.title}", maps, display_mode), encoding="utf-8")
    return path


def write_model_view(maps: AttentionMaps, path: str | Path, *, display_mode: str = "light") -> Path:
    """Every layer x head as a small panel (pruned heads marked); a click shows one with its tokens."""
    path = Path(path)
    path.write_text(_view_page("model", f"Model view: {maps.title}", maps, display_mode), encoding="utf-8")
    return path


RIGHT_TO_LEFT = re.compile("[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufeff]")  # Hebrew and Arabic-script blocks


def renderer_shapes_text() -> bool:
    """Whether matplotlib lays out complex text itself: builds with libraqm (matplotlib >= 3.11's
    wheels) join Arabic-script letters and order right-to-left runs on their own."""
    from matplotlib import ft2font

    return getattr(ft2font, "__libraqm_version__", None) is not None


def displayed_token(token: str) -> str:
    """A token as matplotlib must be given it to show it readably. Without libraqm matplotlib draws
    characters one by one from left to right, so Persian (and any Arabic-script) text appears as
    isolated letters in reverse order; it then needs the joined letter forms and the visual order of
    the bidi algorithm. With libraqm the renderer does both, and doing them here too would reverse
    the word again."""
    if not RIGHT_TO_LEFT.search(token) or renderer_shapes_text():
        return token
    import arabic_reshaper
    from bidi.algorithm import get_display

    return get_display(arabic_reshaper.reshape(token))


def plot_attention_grid(maps: AttentionMaps, path: str | Path, *, label_tokens_up_to: int = 40) -> Path:
    """A PNG with one attention-map panel per head: rows are layers, columns heads.

    Token labels are drawn on each row's first and each column's lowest panel when the input has
    at most `label_tokens_up_to` tokens (beyond that they are unreadable).
    """
    from matplotlib.figure import Figure

    num_columns = max(max(layer_heads) + 1 for layer_heads in maps.heads)
    num_rows = len(maps.layers)
    label = len(maps.tokens) <= label_tokens_up_to
    labels = [displayed_token(token) for token in maps.tokens]
    lowest_row = {column: max(row for row, heads in enumerate(maps.heads) if column in heads)
                  for column in set().union(*maps.heads)}
    panel = 1.6 + (0.08 * len(maps.tokens) if label else 0.0)
    figure = Figure(figsize=(panel * num_columns + 1.0, panel * num_rows + 1.2), layout="constrained")
    axes = figure.subplots(num_rows, num_columns, squeeze=False)
    for row, (layer, layer_map, layer_heads) in enumerate(zip(maps.layers, maps.attentions, maps.heads)):
        for column in range(num_columns):
            axis = axes[row][column]
            if column not in layer_heads:
                axis.set_axis_off()
                continue
            weights = layer_map[layer_heads.index(column)]
            axis.imshow(weights, cmap="viridis", vmin=0.0, vmax=max(float(weights.max()), 1e-9),
                        interpolation="nearest")
            axis.set_title(f"layer {layer} head {column}", fontsize=7)
            label_x = label and lowest_row[column] == row
            label_y = label and column == min(layer_heads)
            axis.set_xticks(range(len(maps.tokens)) if label_x else [])
            axis.set_yticks(range(len(maps.tokens)) if label_y else [])
            if label_x:
                axis.set_xticklabels(labels, rotation=90, fontsize=6)
            if label_y:
                axis.set_yticklabels(labels, fontsize=6)
    figure.suptitle(
        f"{maps.title[:120]}\nrows: queries, columns: keys; brighter = more attention "
        "(each panel scaled to its maximum)",
        fontsize=9,
    )
    path = Path(path)
    figure.savefig(path, dpi=100)
    return path


def write_attention_views(maps: AttentionMaps, output_dir: str | Path, *,
                          display_mode: str = "light") -> dict[str, Path]:
    """Head view and model view (HTML) and the head grid (PNG) in `output_dir`."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    return {
        "head_view": write_head_view(maps, output_dir / "head_view.html", display_mode=display_mode),
        "model_view": write_model_view(maps, output_dir / "model_view.html", display_mode=display_mode),
        "grid": plot_attention_grid(maps, output_dir / "attention_heads.png"),
    }
