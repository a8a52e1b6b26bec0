"""Reading images the way every stage must see them: decoded safely, resized the same way.

`load_image` accepts what data files hold (a path, bytes, a ``{"bytes", "path"}`` dict as
`datasets` stores images, or a PIL image) and refuses decompression bombs and corrupt files
with an `InputError` naming the file. `resize_longest` is the one resize rule a task applies
before difficulty, training and evaluation alike (the DC-SFT study's code trained and sampled at
different resolutions; gengap resizes once, in the task, so every stage sees the same pixels).
`image_folder` lists a class-per-subfolder image tree (ImageNet's layout) deterministically.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from gengap.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
MAX_PIXELS = 64_000_000  # ~8000 x 8000: anything larger is refused before decoding


def load_image(source: Any, *, where: str | None = None, max_pixels: int = MAX_PIXELS
               ) -> Image.Image:
    """An RGB PIL image from a path, bytes, a datasets-style dict, or a PIL image."""
    if isinstance(source, Image.Image):
        return source.convert("RGB") if source.mode != "RGB" else source
    if isinstance(source, Mapping):
        if source.get("bytes"):
            return load_image(bytes(source["bytes"]), where=where or source.get("path"),
                              max_pixels=max_pixels)
        if source.get("path"):
            return load_image(source["path"], where=where, max_pixels=max_pixels)
        raise InputError("an image entry has neither bytes nor a path", where=where)
    if isinstance(source, bytes | bytearray):
        handle: Any = io.BytesIO(source)
        name = where or "image bytes"
    else:
        path = Path(source)
        if not path.is_file():
            raise InputError(f"no such image file: {path}", where=where,
                             hint="image paths are relative to the data file")
        handle, name = path, str(path)
    try:
        with Image.open(handle) as image:
            width, height = image.size  # read from the header: nothing is decoded yet
            if width * height > max_pixels:
                raise InputError(
                    f"image of {width}x{height} px is larger than {max_pixels:,} pixels",
                    where=name, hint="downscale it, or drop it from the data")
            image.load()
            return image.convert("RGB")
    except InputError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise InputError(f"cannot read the image: {exc}", where=name,
                         hint="the file is damaged or not an image") from None


def resize_longest(image: Image.Image, size: int | None) -> Image.Image:
    """Scale `image` so its longer side is `size` px (aspect kept); None leaves it as it is."""
    if size is None or max(image.size) == size:
        return image
    w, h = image.size
    scale = size / max(w, h)
    return image.resize((max(1, round(w * scale)), max(1, round(h * scale))),
                        Image.Resampling.BICUBIC)


def image_folder(root: str | Path) -> list[tuple[Path, str]]:
    """(image path, class folder name) for every image under ``root/<class>/``, sorted.

    Folder and file names are taken as they are (ImageNet-A's file names contain spaces);
    hidden files and non-image files are skipped.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"no such image folder: {root}")
    items = []
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir()
                            and not p.name.startswith(".")):
        for path in sorted(class_dir.rglob("*")):
            if (path.is_file() and not path.name.startswith(".")
                    and path.suffix.lower() in IMAGE_SUFFIXES):
                items.append((path, class_dir.name))
    if not items:
        raise InputError(f"no images under {root}/<class>/",
                         hint="an image folder holds one subfolder per class")
    return items
