"""Thumbnails of an image corpus for the explorer's panel: made when the page first asks for one, then read from the
embtune cache folder (``thumbnails/``), keyed by the image's path, size and modification time (an edited image gets a
new thumbnail). JPEG, at most 160 pixels on the longer side; EXIF orientation and transparency handled as the
encoders handle them.
"""

from __future__ import annotations

import hashlib
import io
import logging
from pathlib import Path

from embtune.errors import EmbtuneError

log = logging.getLogger(__name__)
SIZE = 160


def thumbnails_dir() -> Path:
    from embtune.encoders.cache import default_cache_dir

    return default_cache_dir() / "thumbnails"


def _key(path: Path) -> str:
    stat = path.stat()
    return hashlib.sha1(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}:{SIZE}".encode()).hexdigest()


def make_thumbnail(path: str | Path, size: int = SIZE) -> bytes:
    """A JPEG of the image at ``path`` fitted into ``size`` x ``size`` (small images are not enlarged)."""
    from PIL import Image

    from embtune.data.images import open_rgb

    image = open_rgb(path)
    image.thumbnail((size, size), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def thumbnail(path: str | Path) -> bytes:
    """The cached thumbnail of ``path`` (made and cached on first use)."""
    path = Path(path)
    try:
        cached = thumbnails_dir() / f"{_key(path)}.jpg"
    except OSError as e:
        raise EmbtuneError(f"{path}: cannot read the image ({e.strerror}); was it moved or deleted?") from None
    if cached.is_file():
        try:
            return cached.read_bytes()
        except OSError:
            pass
    try:
        data = make_thumbnail(path)
    except (OSError, ValueError) as e:
        raise EmbtuneError(f"{path}: cannot make a thumbnail ({e})") from None
    from embtune.atomic import write_cache

    write_cache(cached, lambda f: f.write(data), "a thumbnail")  # read-only cache: thumbnails are made each time
    return data
