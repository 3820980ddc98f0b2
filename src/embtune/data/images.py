"""Image corpora: a folder of images (``class/`` sub-folders become labels) or an index file (.jsonl/.csv with a
``path`` field and an optional ``label``; relative paths are relative to the index file).

Every image is decoded once while the corpus is read, so a corrupt, truncated, zero-byte or non-image file is found
here, skipped and listed in one warning, and never stops training mid-epoch. An image corpus is a :class:`Corpus`
whose items are absolute path strings.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from embtune.data.corpus import Corpus
from embtune.data.readers import check_readable, detect_format, iter_rows, shard_files, unit_of
from embtune.errors import InputError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
INDEX_FORMATS = {"jsonl", "csv", "tsv", "parquet"}


def is_image_corpus(path: str | Path) -> bool:
    """A folder of images, or an index file whose first row has a ``path`` field and no ``text`` field.

    A folder with no image in it but corpus files (.parquet, .jsonl ...) is a folder of text shards, not images.
    """
    path = Path(path)
    if path.is_dir():
        has_images = any(p.suffix.lower() in IMAGE_SUFFIXES for p in path.rglob("*"))
        return has_images or not shard_files(path)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return True
    try:
        if not path.is_file() or detect_format(path) not in INDEX_FORMATS or path.stat().st_size == 0:
            return False
        for _, row in iter_rows(path):
            return "path" in row and "text" not in row
    except (InputError, OSError, ValueError):
        return False
    return False


def _folder_items(folder: Path) -> tuple[list[Path], list[str] | None]:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(folder, f"holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
    in_subfolders = [p.parent != folder for p in files]
    if all(in_subfolders):
        return files, [p.relative_to(folder).parts[0] for p in files]
    if any(in_subfolders):
        log.warning("%s: some images are in sub-folders and some are not; reading without labels", folder)
    return files, None


def index_path(index: Path, value: str) -> Path:
    """An index file's ``path`` value as a path: ``~`` expanded, relative to the index file's folder."""
    path = Path(value.strip()).expanduser()
    return path if path.is_absolute() else index.parent / path


def _index_items(index: Path, label_field: str | None) -> tuple[list[Path], list[str] | None]:
    fmt = detect_format(index)
    files, labels = [], []
    for line, row in iter_rows(index, fmt):
        value = row.get("path")
        if not isinstance(value, str) or not value.strip():
            raise InputError(index, "field 'path' is missing or empty; each row needs the image's path", line=line,
                             unit=unit_of(fmt))
        files.append(index_path(index, value))
        label = row.get(label_field) if label_field else None
        labels.append(None if label is None or (isinstance(label, str) and not label.strip()) else str(label).strip())
    if not files:
        raise InputError(index, "has no rows: nothing to read")
    if label_field and all(label is not None for label in labels):
        return files, labels
    if label_field and any(label is not None for label in labels):
        log.warning("%s: field %r is missing for some images; reading without labels", index.name, label_field)
    return files, None


def read_image_corpus(path: str | Path, *, label_field: str | None = "label", use_labels: bool = True) -> Corpus:
    """Read an image folder or index file; unreadable images are skipped and listed in one warning.

    >>> corpus = read_image_corpus("../shared/data/cifar10-mini/train.jsonl")
    >>> len(corpus), corpus.n_labels
    (1000, 10)
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such file or folder")
    if path.is_dir():
        files, labels = _folder_items(path)
    elif path.suffix.lower() in IMAGE_SUFFIXES:  # one image
        files, labels = [path], None
    else:
        check_readable(path)
        files, labels = _index_items(path, label_field)
    if not use_labels:
        labels = None
    kept, kept_labels, bad = [], [], []
    for i, file in enumerate(files):
        problem = image_problem(file)
        if problem:
            bad.append(f"{file} ({problem})")
            continue
        kept.append(str(file.resolve()))
        if labels is not None:
            kept_labels.append(labels[i])
    if bad:
        shown = "; ".join(bad[:5]) + (f"; and {len(bad) - 5} more" if len(bad) > 5 else "")
        log.warning("%s: skipped %d unreadable image(s) of %d: %s", path.name, len(bad), len(files), shown)
    if not kept:
        raise InputError(path, f"none of its {len(files)} images could be read (first: {bad[0]})")
    return Corpus(texts=kept, labels=kept_labels if labels is not None else None, path=path, skipped_empty=len(bad),
                  unit="images")


def image_problem(path: Path) -> str | None:
    """Why ``path`` cannot be used as an image (None when it decodes)."""
    from PIL import Image, UnidentifiedImageError

    try:
        if path.stat().st_size == 0:
            return "empty file"
        with Image.open(path) as image:
            image.load()
            if image.width < 1 or image.height < 1:
                return "no pixels"
    except FileNotFoundError:
        return "no such file"
    except UnidentifiedImageError:
        return "not an image"
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        return f"cannot decode: {e}"
    return None


def open_rgb(path: str | Path):
    """The image at ``path`` as a decoded RGB PIL image: EXIF orientation applied, any mode (L, RGBA, CMYK, P) made
    RGB, transparent pixels put on white (not black)."""
    from PIL import Image, ImageOps

    with Image.open(path) as image:
        image = ImageOps.exif_transpose(image)
        if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
            background = Image.new("RGB", image.size, (255, 255, 255))
            background.paste(image.convert("RGBA"), mask=image.convert("RGBA").getchannel("A"))
            return background
        return image.convert("RGB")


def load_image(path: str | Path, resolution: int) -> torch.Tensor:
    """(3, resolution, resolution) uint8: EXIF orientation applied, any mode (L, RGBA, CMYK, P) made RGB, the shorter
    side resized to ``resolution`` and the centre cropped square."""
    import torch
    from PIL import Image

    image = open_rgb(path)
    scale = resolution / min(image.size)
    size = (max(resolution, round(image.width * scale)), max(resolution, round(image.height * scale)))
    image = image.resize(size, Image.Resampling.BICUBIC)
    left, top = (size[0] - resolution) // 2, (size[1] - resolution) // 2
    image = image.crop((left, top, left + resolution, top + resolution))
    array = np.asarray(image, dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1)
