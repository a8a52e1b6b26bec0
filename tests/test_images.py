"""Image reading: every source form, bombs and corrupt files refused, the one resize rule."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from gengap.errors import InputError
from gengap.images import image_folder, load_image, resize_longest


def _png(size=(20, 10), colour=(255, 0, 0)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def test_every_source_form_gives_the_same_rgb_image(tmp_path: Path) -> None:
    data = _png()
    (tmp_path / "a.png").write_bytes(data)
    forms = [tmp_path / "a.png", str(tmp_path / "a.png"), data, {"bytes": data, "path": None},
             {"bytes": None, "path": str(tmp_path / "a.png")}, Image.open(io.BytesIO(data))]
    images = [load_image(f) for f in forms]
    assert all(im.mode == "RGB" and im.size == (20, 10) for im in images)
    assert all(im.getpixel((3, 3)) == (255, 0, 0) for im in images)


def test_bombs_corrupt_and_missing_files_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="larger than"):
        load_image(_png((300, 300)), max_pixels=10_000)
    (tmp_path / "bad.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(InputError, match="cannot read"):
        load_image(tmp_path / "bad.png")
    truncated = _png((64, 64))[:60]
    with pytest.raises(InputError, match="cannot read"):
        load_image(truncated)
    with pytest.raises(InputError, match="no such image"):
        load_image(tmp_path / "missing.png")


def test_resize_longest_keeps_the_aspect() -> None:
    image = Image.new("RGB", (200, 100))
    assert resize_longest(image, 64).size == (64, 32)
    assert resize_longest(image, None) is image


def test_image_folder_lists_classes_in_order_with_spaces(tmp_path: Path) -> None:
    for cls, name in (("n02", "b b.jpg"), ("n01", "a.png"), ("n01", ".hidden.png"),
                      ("n01", "notes.txt")):
        (tmp_path / cls).mkdir(exist_ok=True)
        (tmp_path / cls / name).write_bytes(_png())
    items = image_folder(tmp_path)
    assert [(p.name, c) for p, c in items] == [("a.png", "n01"), ("b b.jpg", "n02")]
    with pytest.raises(InputError, match="no images"):
        image_folder(tmp_path / "n01")
