"""Run folder → ONNX for serving, with an optional int8 variant, each checked against PyTorch.

    python -m hf_tasks.export runs/farstail-prune50 --format onnx --quantize int8

Writes `onnx/model.onnx` (and `onnx/model_int8.onnx`, dynamically quantised by onnxruntime: int8
weights, activations quantised on the fly; weights use 7 of their 8 bits, because onnxruntime's u8 x s8
kernels on CPUs without VNNI (most AMD and pre-2019 Intel CPUs) add products pairwise in 16 bits and
saturate on full-range weights, which moved a tiny MLP's logits by 0.49 there) and `onnx/export.json`
into the run folder. These model families export: BERT-family QA and sequence classifiers, the pooled
audio head and HuBERT/wav2vec2 classifiers, timm and MLP image classifiers, ViT; head-pruned and layer-
deleted ones included (each layer keeps its own head count in the graph). The BiGRU head does not yet:
torch.onnx fails on its packed sequences, and export says so in one line.

Parity: both ONNX models run on the same inputs as the PyTorch model and the largest absolute
difference of their outputs is recorded, also relative to the largest PyTorch output or 1, whichever
is larger (int8's promise: within INT8_TOLERANCE of it), with the top-1 agreement on the decided rows, those whose two
best PyTorch outputs are further apart than twice that bound (a quantisation that keeps its promise
cannot flip them; near-ties may flip on any CPU). For a text classifier whose run folder holds
`eval_predictions.csv` with gold labels, the accuracy of PyTorch and of the int8 model on those
validation rows (texts as the CSV stores them) is recorded too, and their difference is the int8
metric change; other families record the int8 model's top-1 agreement with PyTorch on the parity
inputs. The exported graph is the model's forward pass: inputs are prepared by the folder's
tokenizer or processor, as for `transformers.pipeline`.
"""

from __future__ import annotations

import hf_tasks.help_cache  # noqa: F401  (prints a cached --help and exits, before the imports below)

import csv
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import yaml
from transformers import AutoConfig, AutoFeatureExtractor, AutoImageProcessor, AutoTokenizer

from hf_tasks.errors import BadInputError, one_line_errors
from hf_tasks.files import write_atomic
import hf_tasks.modeling  # noqa: F401  (registers hf_tasks' own models with the Auto classes)
from hf_tasks.parsing import parse_command
from hf_tasks.portable import AUTO_CLASSES
from hf_tasks.modeling.loading import from_pretrained

logger = logging.getLogger("hf_tasks.export")

ONNX_FOLDER = "onnx"
EXPORT_FILES = ("model.onnx", "model_int8.onnx", "export.json")
OPSET = 17
# Largest output difference a correct fp32 export shows (float reordering only); above it the export is wrong.
FP32_TOLERANCE = 1e-3
INT8_TOLERANCE = 0.1
PARITY_BATCH = 4
PROCESSOR_CLASSES = {"input_ids": AutoTokenizer, "input_values": AutoFeatureExtractor,
                     "pixel_values": AutoImageProcessor}


def load_for_export(folder: Path):
    """The run folder's model in eval mode with eager attention (the graph the exporter traces), and
    the Auto class it loads through."""
    try:
        # A folder may come from anywhere: its own code runs only where the user said so, never here.
        config = AutoConfig.from_pretrained(folder, trust_remote_code=False)
    except ValueError as error:
        raise BadInputError(f"{folder}/config.json: model_type is none that transformers or hf_tasks knows, and "
                            "export does not run a folder's own code (auto_map); export a folder a recipe "
                            f"wrote. ({str(error).splitlines()[0]})") from error
    architecture = (config.architectures or [None])[0]
    for auto_class in AUTO_CLASSES:
        model_class = auto_class._model_mapping.get(type(config), None)
        if model_class is not None and model_class.__name__ == architecture:
            model = from_pretrained(auto_class, str(folder), attn_implementation="eager", trust_remote_code=False)
            return model.eval(), auto_class.__name__
    raise BadInputError(f"{folder}/config.json: architecture {architecture} loads through none of "
                        f"{[auto.__name__ for auto in AUTO_CLASSES]}; export a folder a recipe wrote.")


def output_names(auto_class_name: str) -> list[str]:
    return ["start_logits", "end_logits"] if auto_class_name == "AutoModelForQuestionAnswering" else ["logits"]


class OutputsAsTuple(torch.nn.Module):
    """The model's forward taking its inputs positionally and returning only the named outputs, as the
    ONNX exporter needs."""

    def __init__(self, model, input_names: list[str], outputs: list[str]):
        super().__init__()
        self.model, self.input_names, self.outputs = model, input_names, outputs

    def forward(self, *inputs):
        result = self.model(**dict(zip(self.input_names, inputs)))
        return tuple(result[name] for name in self.outputs)


def _run_config(folder: Path) -> dict:
    """The run's resolved arguments (config.yaml), or {} for a folder no recipe wrote."""
    path = folder / "config.yaml"
    return (yaml.safe_load(path.read_text(encoding="utf-8")) or {}) if path.is_file() else {}


def _image_size(model, run_config: dict) -> int:
    """The side of the square images the model was trained on: its config's, the recipe's --image_size,
    or the timm backbone's default input size."""
    pretrained = getattr(getattr(model, "backbone", None), "pretrained_cfg", None) or {}
    return (getattr(model.config, "image_size", None) or run_config.get("image_size")
            or pretrained.get("input_size", (3, 224, 224))[-1])


def _text_rows(folder: Path) -> tuple[list, list[str]] | None:
    """Inputs (texts or text pairs) and gold labels of the run's labelled validation predictions."""
    path = folder / "eval_predictions.csv"
    if not path.is_file():
        return None
    with path.open(encoding="utf-8", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("gold_label")]
    if not rows:
        return None
    # The prediction file shows the task's display columns before its own; the row number and the id
    # column (named in the run's config) are not model inputs.
    not_inputs = {"row", _run_config(folder).get("id_column")}
    columns = [column for column in list(rows[0])[: list(rows[0]).index("gold_label")] if column not in not_inputs]
    if len(columns) not in (1, 2):
        return None
    texts = [row[columns[0]] if len(columns) == 1 else (row[columns[0]], row[columns[1]]) for row in rows]
    return texts, [row["gold_label"] for row in rows]


def _tokenize(processor, texts: list) -> dict[str, np.ndarray]:
    if isinstance(texts[0], tuple):
        first, second = zip(*texts)
        encoded = processor(list(first), list(second), padding=True, truncation=True, return_tensors="np")
    else:
        encoded = processor(list(texts), padding=True, truncation=True, return_tensors="np")
    return dict(encoded)


def parity_inputs(model, processor, folder: Path) -> dict[str, np.ndarray]:
    """A small batch in the form the folder's processor produces: validation texts (or made-up ones),
    noise clips, random images."""
    generator = np.random.default_rng(0)
    main_input = model.main_input_name
    if main_input == "input_ids":
        labelled = _text_rows(folder)
        texts = labelled[0][:PARITY_BATCH] if labelled else ["a short text", "a somewhat longer text to pad to"]
        if not labelled and "QuestionAnswering" in type(model).__name__:
            texts = [("a question", "the context that holds the answer"), ("why", "because")]
        return _tokenize(processor, texts)
    if main_input == "input_values":
        clips = [generator.standard_normal(length).astype(np.float32) for length in (16000, 12000)]
        if processor is None:
            return {"input_values": np.stack([clip[:12000] for clip in clips])}
        encoded = processor(clips, sampling_rate=processor.sampling_rate, padding=True, return_tensors="np")
        return {name: value for name, value in encoded.items() if name in ("input_values", "attention_mask")}
    if main_input == "pixel_values":
        size = _image_size(model, _run_config(folder))
        images = generator.standard_normal((2, 3, size, size)).astype(np.float32)
        if processor is not None:
            from PIL import Image

            pictures = [Image.fromarray(generator.integers(0, 255, (size, size, 3), dtype=np.uint8)) for _ in range(2)]
            images = processor(pictures, return_tensors="np")["pixel_values"].astype(np.float32)
        return {"pixel_values": images}
    raise BadInputError(f"{folder}: the model's main input {main_input!r} is none that export knows "
                        "(input_ids, input_values, pixel_values).")


def _processor(model, folder: Path):
    """The folder's tokenizer, feature extractor or image processor for the model's main input; None
    where an audio or image folder has none (raw inputs are then fed as they are)."""
    auto_class = PROCESSOR_CLASSES[model.main_input_name]
    try:
        return auto_class.from_pretrained(folder, trust_remote_code=False)
    except (OSError, ValueError, TypeError) as error:
        if model.main_input_name == "input_ids":
            raise BadInputError(f"{folder}: no tokenizer saved beside the model ({error}); save the run's "
                                "tokenizer there (recipes do) and export again.") from error
        return None


def export_onnx(model, inputs: dict[str, np.ndarray], outputs: list[str], path: Path) -> None:
    names = list(inputs)
    dynamic = {name: {0: "batch", 1: "sequence"} if value.ndim == 2 else {0: "batch"} for name, value in inputs.items()}
    dynamic.update({name: {0: "batch"} for name in outputs})
    torch.onnx.export(OutputsAsTuple(model, names, outputs),
                      tuple(torch.from_numpy(value) for value in inputs.values()),
                      str(path), input_names=names, output_names=outputs, dynamic_axes=dynamic,
                      opset_version=OPSET, dynamo=False)


def quantize_int8(source: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # reduce_range: 7-bit weights, so that no CPU's int8 kernels saturate (see the module docstring).
    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, reduce_range=True)


def onnx_session(path: Path):
    import onnxruntime

    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def run_onnx(session, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    wanted = {graph_input.name for graph_input in session.get_inputs()}
    return session.run(None, {name: value for name, value in inputs.items() if name in wanted})


def run_torch(model, inputs: dict[str, np.ndarray], outputs: list[str]) -> list[np.ndarray]:
    with torch.no_grad():
        result = model(**{name: torch.from_numpy(value) for name, value in inputs.items()})
    return [result[name].numpy() for name in outputs]


def max_abs_diff(first: list[np.ndarray], second: list[np.ndarray]) -> float:
    return float(max(np.abs(a - b).max() for a, b in zip(first, second)))


def parity(produced: list[np.ndarray], expected: list[np.ndarray]) -> dict:
    """How far `produced` is from PyTorch's `expected` outputs, absolutely and relative to their largest
    magnitude, and whether the first output's top-1 agrees, on all rows and on the decided ones."""
    difference = max_abs_diff(produced, expected)
    # Outputs all near zero (an untrained tiny head) carry no scale of their own; int8 is then held to 1.
    scale = max(1.0, float(max(np.abs(output).max() for output in expected)))
    rows, expected_rows = produced[0].reshape(-1, produced[0].shape[-1]), expected[0].reshape(-1, expected[0].shape[-1])
    agree = rows.argmax(-1) == expected_rows.argmax(-1)
    best_two = np.sort(expected_rows, axis=-1)[:, -2:]
    decided = best_two[:, 1] - best_two[:, 0] > 2 * INT8_TOLERANCE * scale
    return {"max_abs_diff": difference, "max_abs_diff_relative": difference / scale,
            "top1_agreement": float(np.mean(agree)), "decided_rows": int(decided.sum()),
            "decided_top1_agreement": float(np.mean(agree[decided])) if decided.any() else None}


def validation_accuracy(model, processor, session, folder: Path, outputs: list[str]) -> dict | None:
    """Accuracy of PyTorch and of `session` on the run's labelled validation rows (text classifiers)."""
    labelled = _text_rows(folder) if model.main_input_name == "input_ids" and outputs == ["logits"] else None
    if labelled is None:
        return None
    texts, gold = labelled
    id2label = model.config.id2label
    correct_torch = correct_onnx = 0
    for start in range(0, len(texts), 16):
        batch = _tokenize(processor, texts[start:start + 16])
        expected = gold[start:start + 16]
        torch_labels = [id2label[index] for index in run_torch(model, batch, outputs)[0].argmax(-1)]
        onnx_labels = [id2label[index] for index in run_onnx(session, batch)[0].argmax(-1)]
        correct_torch += sum(map(str.__eq__, torch_labels, expected))
        correct_onnx += sum(map(str.__eq__, onnx_labels, expected))
    accuracy_torch, accuracy_onnx = correct_torch / len(texts), correct_onnx / len(texts)
    return {"split": "validation (eval_predictions.csv)", "rows": len(texts), "accuracy_pytorch": accuracy_torch,
            "accuracy_onnx": accuracy_onnx, "accuracy_change": accuracy_onnx - accuracy_torch}


def export(folder: str | Path, *, quantize: str | None = None, overwrite: bool = False) -> dict:
    """Export the run folder's model to `folder/onnx/`; returns what export.json records."""
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise BadInputError(f"{folder}: no config.json here; give a run folder that holds a saved model.")
    target = folder / ONNX_FOLDER
    earlier = [target / name for name in EXPORT_FILES if (target / name).exists()]
    if earlier and not overwrite:
        raise BadInputError(f"{target} already holds files ({', '.join(path.name for path in earlier)}); add "
                            "--overwrite to replace them, or move them away.")
    model, auto_class_name = load_for_export(folder)
    if any(isinstance(module, torch.nn.RNNBase) for module in model.modules()):
        # torch.onnx's TorchScript exporter fails on packed sequences (an internal error in its
        # peephole pass) and the dynamo exporter on the head's data-dependent padding check.
        raise BadInputError(f"{folder}: {type(model).__name__} runs a recurrent layer over packed sequences, "
                            "which torch.onnx cannot export yet; serve it with PyTorch (transformers pipeline).")
    processor = _processor(model, folder)
    outputs = output_names(auto_class_name)
    inputs = parity_inputs(model, processor, folder)
    expected = run_torch(model, inputs, outputs)
    target.mkdir(exist_ok=True)
    for path in earlier:  # an earlier export's own files; a variant not asked for again must not linger
        path.unlink()

    files = {"fp32": target / "model.onnx"}
    export_onnx(model, inputs, outputs, files["fp32"])
    if quantize == "int8":
        files["int8"] = target / "model_int8.onnx"
        quantize_int8(files["fp32"], files["int8"])
    report = {"format": "onnx", "opset": OPSET, "auto_class": auto_class_name, "inputs": list(inputs),
              "outputs": outputs, "parity_batch": {name: list(value.shape) for name, value in inputs.items()},
              "variants": {}}
    for variant, path in files.items():
        session = onnx_session(path)
        produced = run_onnx(session, inputs)
        entry = {"file": path.name, "size_mb": round(path.stat().st_size / 2**20, 3), **parity(produced, expected)}
        if variant == "int8":
            entry["validation"] = validation_accuracy(model, processor, session, folder, outputs)
            if entry["max_abs_diff_relative"] > INT8_TOLERANCE:
                logger.warning("%s: outputs differ from PyTorch's by %.0f%% of their largest value (int8 promises "
                               "<= %.0f%%); check the validation accuracy before serving it.", path,
                               100 * entry["max_abs_diff_relative"], 100 * INT8_TOLERANCE)
        report["variants"][variant] = entry
    write_atomic(target / "export.json", json.dumps(report, indent=2) + "\n")
    fp32_diff = report["variants"]["fp32"]["max_abs_diff"]
    if fp32_diff > FP32_TOLERANCE:
        raise RuntimeError(f"{files['fp32']} differs from the PyTorch model by {fp32_diff:.2e} "
                           f"(> {FP32_TOLERANCE}); the export is wrong (see {target / 'export.json'}).")
    return report


def _summary(report: dict) -> str:
    lines = []
    for variant, entry in report["variants"].items():
        line = (f"{variant}: {entry['file']} {entry['size_mb']} MB, "
                f"max abs diff vs PyTorch {entry['max_abs_diff']:.2e}, "
                f"top-1 agreement {entry['top1_agreement']:.0%}")
        validation = entry.get("validation")
        if validation:
            line += (f"; validation accuracy {validation['accuracy_pytorch']:.4f} -> {validation['accuracy_onnx']:.4f} "
                     f"({validation['accuracy_change']:+.4f}, {validation['rows']} rows)")
        lines.append(line)
    return "\n".join(lines)


@dataclass
class ExportOptions:
    """What is written beside the run's model."""

    format: Literal["onnx"] = field(default="onnx", metadata={"help": "The format written; onnx is the one there is."})
    quantize: Literal["int8"] | None = field(default=None, metadata={
        "help": "Also write a dynamically quantised int8 model (onnxruntime.quantization)."})
    overwrite: bool = field(default=False, metadata={"help": "Replace the files of an earlier export."})


def main(argv: list[str] | None = None) -> dict:
    (run_folder,), options = parse_command(ExportOptions, argv, words=("RUN",), description=__doc__)
    report = export(run_folder, quantize=options.quantize, overwrite=options.overwrite)
    print(_summary(report))
    print(f"written: {Path(run_folder) / ONNX_FOLDER}")
    return report


if __name__ == "__main__":
    with one_line_errors():
        main()
