"""Semantic segmentation inference (BEiT and other `AutoModelForSemanticSegmentation` models):
masks at the input's size, colour overlays beside the input, and scores against ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from PIL import Image
from transformers import AutoImageProcessor, AutoModelForSemanticSegmentation, PreTrainedModel

from hf_tasks.data.labelled_images import UNREADABLE_IMAGE_ERRORS
from hf_tasks.errors import BadInputError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
MASK_SUFFIXES = (".png", ".bmp", ".tif", ".tiff")


@dataclass
class SegmentationInput:
    """One image to segment, its ground-truth mask (class ids, or None) and a name for output files."""

    name: str
    image: Image.Image
    mask: np.ndarray | None = None


def load_segmenter(
    model_name_or_path: str,
    *,
    processor_name: str | None = None,
    cache_dir: str | None = None,
    revision: str = "main",
    trust_remote_code: bool = False,
) -> tuple[PreTrainedModel, Any]:
    """Segmentation model (e.g. `BeitForSemanticSegmentation`) in eval mode, and its image processor."""
    kwargs = {"cache_dir": cache_dir, "revision": revision, "trust_remote_code": trust_remote_code}
    try:
        model = AutoModelForSemanticSegmentation.from_pretrained(model_name_or_path, **kwargs)
        processor = AutoImageProcessor.from_pretrained(processor_name or model_name_or_path, **kwargs)
    except OSError as error:
        raise BadInputError(
            f"{model_name_or_path}: not a local segmentation model folder (config, weights and image processor) "
            f"and not loadable from the Hub ({error})."
        ) from error
    return model.eval(), processor


def class_names(model: PreTrainedModel) -> list[str]:
    id2label = model.config.id2label or {}
    return [str(id2label.get(index, index)) for index in range(model.config.num_labels)]


@torch.no_grad()
def predict_masks(model: PreTrainedModel, processor, images: Sequence[Image.Image]) -> list[np.ndarray]:
    """Class-id masks, one per image, at each image's own (height, width).

    The processor resizes every image to the model's input size; the logits are upsampled
    (bilinear) to the original size before the argmax.
    """
    device = next(model.parameters()).device
    inputs = processor(images=list(images), return_tensors="pt").to(device)
    outputs = model(**inputs)
    sizes = [(image.height, image.width) for image in images]
    masks = processor.post_process_semantic_segmentation(outputs, target_sizes=sizes)
    return [mask.cpu().numpy().astype(np.int32) for mask in masks]


def palette(num_classes: int, seed: int = 0) -> np.ndarray:
    """(num_classes, 3) distinct-enough RGB colours, the same on every run."""
    colours = np.random.default_rng(seed).integers(40, 256, size=(num_classes, 3))
    return colours.astype(np.uint8)


def overlay(image: Image.Image, mask: np.ndarray, colours: np.ndarray, alpha: float = 0.5) -> Image.Image:
    """`image` with each pixel blended with its class colour; the same size as `image`."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
    coloured = colours[np.clip(mask, 0, len(colours) - 1)].astype(np.float32)
    return Image.fromarray(((1 - alpha) * rgb + alpha * coloured).round().astype(np.uint8))


def side_by_side(left: Image.Image, right: Image.Image) -> Image.Image:
    """`left` and `right` next to each other (same height)."""
    canvas = Image.new("RGB", (left.width + right.width, max(left.height, right.height)), "white")
    canvas.paste(left.convert("RGB"), (0, 0))
    canvas.paste(right.convert("RGB"), (left.width, 0))
    return canvas


def mask_image(mask: np.ndarray) -> Image.Image:
    """A class-id mask as a lossless PNG-able image (8-bit when the ids fit, else 16-bit)."""
    if mask.max(initial=0) < 256:
        return Image.fromarray(mask.astype(np.uint8), mode="L")
    return Image.fromarray(mask.astype(np.uint16))


def reduce_labels(mask: np.ndarray, ignore_index: int = 255) -> np.ndarray:
    """ADE20K convention: 0 ("other") becomes `ignore_index`, class k becomes k - 1."""
    mask = mask.astype(np.int64)
    reduced = mask - 1
    reduced[(mask == 0) | (mask == ignore_index)] = ignore_index
    return reduced


def _open_image(path: Path, what: str = "image") -> Image.Image:
    try:
        with Image.open(path) as opened:
            opened.load()
            return opened
    except UNREADABLE_IMAGE_ERRORS as error:
        raise BadInputError(f"{path}: cannot read the {what} ({error}); replace or remove the file.") from error


def image_files(sources: Sequence[str | Path]) -> list[Path]:
    """Image files named by `sources`: files as given, folders expanded to their images (sorted)."""
    files: list[Path] = []
    for source in map(Path, sources):
        if source.is_dir():
            found = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not found:
                raise BadInputError(f"{source}: folder holds no images ({', '.join(IMAGE_SUFFIXES)}).")
            files.extend(found)
        elif source.is_file():
            files.append(source)
        else:
            raise BadInputError(f"{source}: no such image file or folder; check the path given to --images.")
    return files


def _mask_for(image_path: Path, mask_dir: Path) -> Path:
    for suffix in MASK_SUFFIXES:
        candidate = mask_dir / f"{image_path.stem}{suffix}"
        if candidate.is_file():
            return candidate
    raise BadInputError(
        f"{image_path}: no ground-truth mask {mask_dir / image_path.stem}.png in --mask_dir; give one mask per "
        "image, named like the image, or leave --mask_dir unset to only predict."
    )


def _checked_mask(mask: np.ndarray, image: Image.Image, where: str) -> np.ndarray:
    if mask.ndim == 3:  # an RGB(A) save of a grey mask: all channels equal
        if not (mask[..., :3] == mask[..., :1]).all():
            raise BadInputError(f"{where}: the mask is a colour image; masks must hold one class id per pixel.")
        mask = mask[..., 0]
    if mask.shape != (image.height, image.width):
        raise BadInputError(
            f"{where}: mask is {mask.shape[1]}x{mask.shape[0]} pixels but its image is {image.width}x{image.height}."
        )
    return mask.astype(np.int64)


def inputs_from_files(sources: Sequence[str | Path],
                      mask_dir: str | Path | None = None) -> tuple[int, Iterator[SegmentationInput]]:
    """Count and lazy iterator of images (and masks from `mask_dir`, matched by file stem).

    Every mask is located before the first image is read, so a missing one fails at once.
    """
    files = image_files(sources)
    if mask_dir is not None and not Path(mask_dir).is_dir():
        raise BadInputError(f"{mask_dir}: no such mask folder (--mask_dir).")
    masks = [_mask_for(path, Path(mask_dir)) for path in files] if mask_dir is not None else [None] * len(files)
    names = _unique_names([path.stem for path in files])

    def generate() -> Iterator[SegmentationInput]:
        for path, mask_path, name in zip(files, masks, names):
            image = _open_image(path).convert("RGB")
            mask = None
            if mask_path is not None:
                mask = _checked_mask(np.asarray(_open_image(mask_path, "mask")), image, str(mask_path))
            yield SegmentationInput(name, image, mask)

    return len(files), generate()


def inputs_from_dataset(dataset, image_column: str = "image",
                        mask_column: str | None = None) -> tuple[int, Iterator[SegmentationInput]]:
    """Count and lazy iterator over a `datasets.Dataset` with an image column (and a mask column)."""
    for column in (image_column, mask_column):
        if column is not None and column not in dataset.column_names:
            raise BadInputError(
                f"dataset has no column {column!r}; its columns are {dataset.column_names} "
                "(set --image_column / --mask_column)."
            )

    def generate() -> Iterator[SegmentationInput]:
        for index, row in enumerate(dataset):
            image = row[image_column]
            if not isinstance(image, Image.Image):
                raise BadInputError(f"dataset row {index}: column {image_column!r} does not hold an image.")
            image = image.convert("RGB")
            mask = None
            if mask_column is not None:
                mask = _checked_mask(np.asarray(row[mask_column]), image,
                                     f"dataset row {index}, column {mask_column!r}")
            yield SegmentationInput(f"{index:05d}", image, mask)

    return len(dataset), generate()


def _unique_names(stems: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    names = []
    for stem in stems:
        seen[stem] = seen.get(stem, 0) + 1
        names.append(stem if seen[stem] == 1 else f"{stem}-{seen[stem]}")
    return names


def class_fractions(mask: np.ndarray, names: Sequence[str], top: int = 10) -> dict[str, float]:
    """Share of the image's pixels per predicted class, largest first."""
    counts = np.bincount(mask.ravel(), minlength=len(names))
    order = np.argsort(counts)[::-1][:top]
    return {names[index]: round(float(counts[index] / mask.size), 4) for index in order if counts[index] > 0}
