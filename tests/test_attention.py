"""Attention views: bertviz HTML pages, the PNG grid of heads, predictions, run folders."""

from __future__ import annotations

import html
import shutil
import subprocess
import unicodedata
import warnings

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from scipy import ndimage
from transformers import AutoModelForSequenceClassification, BertConfig, BertForSequenceClassification

import attention as attention_recipe
from hf_tasks.args import parse
from hf_tasks.interpret.attention import (
    AttentionMaps,
    compute_attentions,
    displayed_token,
    load_model_and_tokenizer,
    plot_attention_grid,
    write_head_view,
    write_model_view,
)
from hf_tasks.samples.tiny_models import train_wordpiece_tokenizer
from hf_tasks.interpret import attention
from hf_tasks.surgery import keep_layers, prune_heads
from hf_tasks.errors import BadInputError
from tests.conftest import REPO

LABELS = ["entailment", "contradiction", "neutral"]
TEXTS = ["the cat sat on the mat", "a dog ran in the park", "the cat is sleeping", "nobody is in the park"]
NUM_LAYERS, NUM_HEADS = 3, 4


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A saved tiny BERT NLI classifier with its tokenizer."""
    folder = tmp_path_factory.mktemp("tiny-nli")
    tokenizer = train_wordpiece_tokenizer(TEXTS, vocab_size=200)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=NUM_LAYERS, num_attention_heads=NUM_HEADS,
        intermediate_size=64, id2label=dict(enumerate(LABELS)), label2id={n: i for i, n in enumerate(LABELS)},
        architectures=["BertForSequenceClassification"],
    )
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def pair_maps(model_dir):
    model, tokenizer = load_model_and_tokenizer(str(model_dir))
    return compute_attentions(model, tokenizer, "the cat sat on the mat", "a cat is sleeping")


def count_heatmap_panels(png_path) -> int:
    """Connected blocks of colour (viridis is saturated everywhere; text and background are grey)."""
    pixels = np.asarray(Image.open(png_path).convert("RGB")).astype(int)
    saturated = (pixels.max(axis=2) - pixels.min(axis=2)) > 40
    labelled, count = ndimage.label(saturated)
    sizes = np.bincount(labelled.ravel())[1:]
    return int((sizes > 100).sum())


def test_attentions_are_per_head_probability_rows(pair_maps):
    assert pair_maps.layers == list(range(NUM_LAYERS))
    assert all(heads == list(range(NUM_HEADS)) for heads in pair_maps.heads)
    for layer_map in pair_maps.attentions:
        assert layer_map.shape == (NUM_HEADS, len(pair_maps.tokens), len(pair_maps.tokens))
        np.testing.assert_allclose(layer_map.sum(axis=-1), 1.0, atol=1e-5)


def test_sentence_pair_split_and_prediction(model_dir, pair_maps):
    tokens = pair_maps.tokens
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]"
    start = pair_maps.sentence_b_start
    assert tokens[start - 1] == "[SEP]" and tokens[start] != "[SEP]"

    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    _, tokenizer = load_model_and_tokenizer(str(model_dir))
    with torch.no_grad():
        logits = model(**tokenizer("the cat sat on the mat", "a cat is sleeping", return_tensors="pt")).logits[0]
    prediction = pair_maps.prediction
    assert prediction.label == LABELS[int(logits.argmax())]
    assert set(prediction.probabilities) == set(LABELS)
    assert sum(prediction.probabilities.values()) == pytest.approx(1.0)
    assert prediction.probability == max(prediction.probabilities.values())


def test_html_views_are_standalone_pages_with_the_tokens(pair_maps, tmp_path):
    for writer, name in ((write_head_view, "head.html"), (write_model_view, "model.html")):
        page = writer(pair_maps, tmp_path / name).read_text(encoding="utf-8")
        assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
        # Offline: the drawing script is inlined and nothing is fetched.
        assert "<script src" not in page and "http://" not in page.replace("http://www.w3.org/2000/svg", "")
        assert "https://" not in page and "function drawPanel" in page
        for token in pair_maps.tokens:
            assert f'"{token}"' in page
        assert "Sentence A -> Sentence B" in page
        assert pair_maps.prediction.label in page


def test_png_grid_has_one_panel_per_head(pair_maps, tmp_path):
    path = plot_attention_grid(pair_maps, tmp_path / "grid.png")
    assert count_heatmap_panels(path) == NUM_LAYERS * NUM_HEADS


def test_persian_tokens_are_shaped_here_when_the_renderer_does_not(monkeypatch):
    monkeypatch.setattr(attention, "renderer_shapes_text", lambda: False)
    assert displayed_token("[CLS]") == "[CLS]"
    drawn = displayed_token("کتاب")  # kaf, teh, alef, beh
    # Presentation forms (U+FB50-U+FEFF) carry the joined shapes; the last letter comes first on screen
    # (alef never joins the letter after it, so that beh stands isolated).
    assert len(drawn) == 4 and all(0xFB50 <= ord(letter) <= 0xFEFF for letter in drawn)
    assert [unicodedata.name(letter) for letter in drawn] == [
        "ARABIC LETTER BEH ISOLATED FORM", "ARABIC LETTER ALEF FINAL FORM", "ARABIC LETTER TEH MEDIAL FORM",
        "ARABIC LETTER KEHEH INITIAL FORM"]


def rendered(text: str) -> np.ndarray:
    """The pixels matplotlib draws for `text` (Agg, 200 dpi)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(2, 0.6), dpi=200)
    figure.text(0.05, 0.3, text, fontsize=14)
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., 0].copy()


@pytest.mark.skipif(not attention.renderer_shapes_text(), reason="this matplotlib has no libraqm text layout")
def test_persian_tokens_reach_a_shaping_renderer_unchanged():
    """With libraqm, matplotlib joins and orders Arabic-script letters itself: the grid's labels must
    draw exactly as the word in logical order does, not as its pre-shaped visual form (drawn reversed)."""
    import arabic_reshaper
    from bidi.algorithm import get_display

    word = "کتابخانه"
    assert np.array_equal(rendered(displayed_token(word)), rendered(word))
    assert not np.array_equal(rendered(get_display(arabic_reshaper.reshape(word))), rendered(word))


def test_png_grid_of_persian_tokens_needs_no_missing_glyphs(tmp_path):
    tokens = ["[CLS]", "کتاب", "##ها", "خوب", "[SEP]"]
    maps = AttentionMaps(layers=[0], heads=[[0]], attentions=[np.full((1, 5, 5), 0.2)], tokens=tokens, title="fa")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns "Glyph ... missing from font"
        assert count_heatmap_panels(plot_attention_grid(maps, tmp_path / "fa.png")) == 1


def test_head_pruned_model_reloads_and_draws_only_its_heads(model_dir, tmp_path):
    model, tokenizer = load_model_and_tokenizer(str(model_dir))
    prune_heads(model, {1: [1, 2]})
    model.save_pretrained(tmp_path / "pruned")
    tokenizer.save_pretrained(tmp_path / "pruned")
    reloaded, tokenizer = load_model_and_tokenizer(str(tmp_path / "pruned"))
    maps = compute_attentions(reloaded, tokenizer, "the cat sat on the mat")
    assert maps.heads == [[0, 1, 2, 3], [0, 3], [0, 1, 2, 3]]
    assert maps.attentions[1].shape[0] == 2
    assert count_heatmap_panels(plot_attention_grid(maps, tmp_path / "pruned.png")) == NUM_LAYERS * NUM_HEADS - 2
    page = write_model_view(maps, tmp_path / "pruned.html").read_text(encoding="utf-8")
    assert all(f'"{token}"' in page for token in maps.tokens)


def test_layer_subset_and_layer_deleted_model(model_dir, tmp_path):
    model, tokenizer = load_model_and_tokenizer(str(model_dir))
    maps = compute_attentions(model, tokenizer, "the cat sat", layers=[2])
    assert maps.layers == [2] and len(maps.attentions) == 1
    assert count_heatmap_panels(plot_attention_grid(maps, tmp_path / "one_layer.png")) == NUM_HEADS

    keep_layers(model, "first:2")
    model.save_pretrained(tmp_path / "two-layers")
    tokenizer.save_pretrained(tmp_path / "two-layers")
    reloaded, tokenizer = load_model_and_tokenizer(str(tmp_path / "two-layers"))
    maps = compute_attentions(reloaded, tokenizer, "the cat sat")
    assert len(maps.attentions) == 2
    assert count_heatmap_panels(plot_attention_grid(maps, tmp_path / "two_layers.png")) == 2 * NUM_HEADS
    with pytest.raises(BadInputError, match="layers 0-1"):
        compute_attentions(reloaded, tokenizer, "the cat sat", layers=[2])


def test_custom_head_run_folder_gives_encoder_attentions_and_sigmoid_prediction(model_dir, tmp_path):
    from hf_tasks.modeling.bigru import BiGRUForSequenceClassification

    model = BiGRUForSequenceClassification.from_pretrained_encoder(
        str(model_dir), num_labels=1, id2label={0: "fake"}, label2id={"fake": 0}, gru_hidden_size=8
    )
    model.save_pretrained(tmp_path / "bigru")
    load_model_and_tokenizer(str(model_dir))[1].save_pretrained(tmp_path / "bigru")
    reloaded, tokenizer = load_model_and_tokenizer(str(tmp_path / "bigru"))
    assert isinstance(reloaded, BiGRUForSequenceClassification)
    maps = compute_attentions(reloaded, tokenizer, "the cat sat on the mat")
    assert len(maps.attentions) == NUM_LAYERS
    with torch.no_grad():
        logit = reloaded(**tokenizer("the cat sat on the mat", return_tensors="pt")).logits[0, 0]
    assert maps.prediction.probabilities["fake"] == pytest.approx(float(torch.sigmoid(logit)))
    assert maps.prediction.label == ("fake" if logit > 0 else "not fake")


def test_run_folder_without_tokenizer_uses_the_run_config(model_dir, tmp_path):
    run_dir = tmp_path / "run"
    AutoModelForSequenceClassification.from_pretrained(model_dir).save_pretrained(run_dir)
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"model_name_or_path": str(model_dir)}), encoding="utf-8")
    model, tokenizer = load_model_and_tokenizer(str(run_dir))
    assert model.config._attn_implementation == "eager"
    assert tokenizer.convert_ids_to_tokens(tokenizer("the cat")["input_ids"])[0] == "[CLS]"

    (run_dir / "config.yaml").unlink()
    with pytest.raises(BadInputError, match="tokenizer_name"):
        load_model_and_tokenizer(str(run_dir))


def test_missing_model_folder_and_empty_text_fail_early(model_dir, tmp_path):
    with pytest.raises(BadInputError, match="no such model folder"):
        load_model_and_tokenizer(str(tmp_path / "nope"))
    model, tokenizer = load_model_and_tokenizer(str(model_dir))
    with pytest.raises(BadInputError, match="empty"):
        compute_attentions(model, tokenizer, "  ")


def test_recipe_writes_views_and_prints_prediction(model_dir, tmp_path, capsys):
    args = ["--model_name_or_path", str(model_dir), "--text", "the cat sat on the mat", "--text_pair",
            "the cat is sleeping", "--output_dir", str(tmp_path / "views"), "--layers", "last:2", "--use_cpu"]
    paths = attention_recipe.main(parse(*attention_recipe.ARGUMENTS, args=args))
    assert {path.name for path in paths.values()} == {"head_view.html", "model_view.html", "attention_heads.png"}
    assert all(path.is_file() for path in paths.values())
    assert count_heatmap_panels(paths["grid"]) == 2 * NUM_HEADS
    printed = capsys.readouterr().out
    assert "prediction: " in printed and any(label in printed for label in LABELS)


@pytest.mark.parametrize("config", sorted((REPO / "recipes/configs/attention").glob("*.yaml")), ids=lambda p: p.stem)
def test_configs_parse(config):
    model_args, attention_args = parse(*attention_recipe.ARGUMENTS, args=["--config", str(config)])
    assert model_args.model_name_or_path and attention_args.text
    assert attention_args.output_dir.startswith("runs/")


def browser() -> str | None:
    return next((found for name in ("chromium", "chromium-browser", "google-chrome") if (found := shutil.which(name))),
                None)


@pytest.mark.slow
@pytest.mark.skipif(browser() is None, reason="needs a headless Chromium")
@pytest.mark.parametrize("view", ["head", "model"])
def test_the_views_draw_in_a_headless_browser_without_a_network(view, pair_maps, tmp_path):
    writer = write_head_view if view == "head" else write_model_view
    page = writer(pair_maps, tmp_path / f"{view}.html")
    finished = subprocess.run(
        [browser(), "--headless", "--no-sandbox", "--disable-gpu", "--proxy-server=127.0.0.1:9",
         "--proxy-bypass-list=<-loopback>", f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=3000",
         "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    drawn = finished.stdout
    assert drawn.count("<line") > 10, finished.stderr[-2000:]  # the script ran and drew attention lines
    if view == "head":
        assert all(f">{html.escape(token)}</text>" in drawn for token in pair_maps.tokens)
    else:
        assert drawn.count('class="thumbnail"') == NUM_LAYERS * NUM_HEADS
