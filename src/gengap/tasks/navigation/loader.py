"""The study's data, when a user has it: the route file and street views by pano id.

- Route file: a JSON list ``[routes, count]`` of route records (`gengap.tasks.navigation.
  route` documents a record). `load_routes` checks the shape and every record's fields, with
  an `InputError` naming the route and the fix.
- Pano mapping: a pickle of ``{pano id: {"geocode": [lat, lng], "north_rotation": deg,
  "image": path}}`` or of ``{(lat, lng): pano id}`` (both are read). It is read only through
  `SafeUnpickler`, which refuses every global (no class, no function, no module can be
  named), so a hostile pickle can build nothing but plain containers, numbers and strings.
- Street views: a panorama (equirectangular, 360 degrees wide) whose column 0 faces
  ``north_rotation`` degrees; `street_views` crops the four 90-degree views around a heading
  (front, right, back, left) into the same 2x2 grid gengap's renderer draws.
"""

from __future__ import annotations

import io
import json
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from PIL import Image

from gengap.errors import InputError
from gengap.images import load_image
from gengap.tasks.navigation.actions import normalize_heading
from gengap.tasks.navigation.city import geo_distance
from gengap.tasks.navigation.render import LINE
from gengap.tasks.navigation.route import build_rail, parse_milestones

MAX_PICKLE_BYTES = 256 * 1024 * 1024


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that refuses every global: only built-in containers and scalars load."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refused global {module}.{name}: the pano mapping may "
                                     "hold only dicts, lists, tuples, strings and numbers")


def safe_load_pickle(path: str | Path) -> Any:
    """Unpickle `path` with `SafeUnpickler` (an `InputError` for anything else)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"no such file: {path}", where=str(path))
    data = path.read_bytes()
    if len(data) > MAX_PICKLE_BYTES:
        raise InputError(f"the pano mapping is {len(data)} bytes (at most {MAX_PICKLE_BYTES})",
                         where=str(path))
    try:
        return SafeUnpickler(io.BytesIO(data)).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError,
            AttributeError, MemoryError) as exc:
        raise InputError(f"cannot read the pano mapping: {exc}", where=str(path),
                         hint="it must be a pickle of plain dicts/lists/strings/numbers") from None


def _check_geocode(value: Any, where: str) -> list[float]:
    if (not isinstance(value, list | tuple) or len(value) != 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
            or not (-90 <= value[0] <= 90 and -180 <= value[1] <= 180)):
        raise InputError(f"bad geocode {value!r}", where=where, hint="geocodes are [lat, lng]")
    return [float(value[0]), float(value[1])]


def check_record(record: Any, where: str) -> dict[str, Any]:
    """One route record, checked (the fields `build_rail` and the prompts need)."""
    if not isinstance(record, Mapping):
        raise InputError(f"a route record must be an object, got {type(record).__name__}",
                         where=where)
    for key in ("start_place", "route_results", "dest_place", "milestone_info"):
        if key not in record:
            raise InputError(f"route record lacks {key!r}", where=where,
                             hint="records come from the study's route file")
    _check_geocode(record["start_place"].get("relocated_geocode"), f"{where}.start_place")
    results = record["route_results"]
    geocodes = results.get("geocode_list") if isinstance(results, Mapping) else None
    if not isinstance(geocodes, list) or not geocodes:
        raise InputError("route_results.geocode_list must be a non-empty list", where=where)
    for j, g in enumerate(geocodes):
        _check_geocode(g, f"{where}.geocode_list[{j}]")
    marks = results.get("landmark_list", [])
    if not isinstance(marks, list):
        raise InputError("route_results.landmark_list must be a list", where=where)
    blocks = parse_milestones(record["milestone_info"], where=where)
    if len(blocks) != len(geocodes):
        raise InputError(f"{len(blocks)} milestone blocks for {len(geocodes)} geocodes",
                         where=where)
    heading = record.get("init_heading", 0)
    if heading is not None and (isinstance(heading, bool)
                                or not isinstance(heading, int | float)):
        raise InputError(f"init_heading must be a number, got {heading!r}", where=where)
    return dict(record)


def load_routes(path: str | Path) -> list[dict[str, Any]]:
    """The route records of the study's route file ``[routes, count]`` (checked)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"no such route file: {path}", where=str(path))
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"the route file is not JSON: {exc}", where=str(path)) from None
    if (not isinstance(data, list) or len(data) != 2 or not isinstance(data[0], list)
            or isinstance(data[1], bool) or not isinstance(data[1], int)):
        raise InputError("the route file must be a JSON list [routes, count]", where=str(path),
                         hint="as the study writes it: [[route, ...], number of routes]")
    routes, count = data
    if count != len(routes):
        raise InputError(f"the route file says {count} routes but holds {len(routes)}",
                         where=str(path))
    return [check_record(r, f"{path}: route {i}") for i, r in enumerate(routes)]


class PanoIndex:
    """Street views by pano id: nearest pano to a geocode, its image and north rotation."""

    def __init__(self, mapping_path: str | Path, image_root: str | Path | None = None):
        raw = safe_load_pickle(mapping_path)
        self.root = Path(image_root) if image_root else Path(mapping_path).parent
        if not isinstance(raw, Mapping) or not raw:
            raise InputError("the pano mapping must be a non-empty dict", where=str(mapping_path))
        self.panos: dict[str, dict[str, Any]] = {}
        for key, value in raw.items():
            if isinstance(value, Mapping):  # pano id -> {geocode, north_rotation, image}
                entry = {"geocode": _check_geocode(list(value.get("geocode", ())),
                                                   f"{mapping_path}: pano {key}"),
                         "north_rotation": float(value.get("north_rotation", 0.0)),
                         "image": value.get("image") or f"{key}.jpg"}
                self.panos[str(key)] = entry
            elif isinstance(key, tuple) and isinstance(value, str):  # (lat, lng) -> pano id
                self.panos[value] = {"geocode": _check_geocode(list(key), str(mapping_path)),
                                     "north_rotation": 0.0, "image": f"{value}.jpg"}
            else:
                raise InputError(f"unreadable pano mapping entry {key!r}",
                                 where=str(mapping_path))

    def nearest(self, geocode: list[float]) -> str:
        """The pano id nearest to `geocode`."""
        return min(self.panos, key=lambda p: geo_distance(self.panos[p]["geocode"], geocode))

    def views(self, pano: str, heading: float, size: int) -> Image.Image:
        """The 2x2 grid of the four views around `heading` from pano `pano`."""
        entry = self.panos[pano]
        image = load_image(self.root / entry["image"], where=f"pano {pano}")
        return street_views(image, heading, entry["north_rotation"], size)


def street_views(panorama: Image.Image, heading: float, north_rotation: float,
                 size: int) -> Image.Image:
    """Crop [front, right / back, left] 90-degree views from an equirectangular panorama whose
    column 0 faces `north_rotation` degrees (columns grow clockwise)."""
    width, height = panorama.size
    doubled = Image.new("RGB", (2 * width, height))  # the seam wraps: crop from two copies
    doubled.paste(panorama.convert("RGB"), (0, 0))
    doubled.paste(panorama.convert("RGB"), (width, 0))
    canvas = Image.new("RGB", (2 * size + LINE, 2 * size + LINE), (0, 0, 0))
    top, bottom = int(height * 0.25), int(height * 0.75)
    for i, offset in enumerate((0, 90, 180, 270)):
        centre = normalize_heading(heading + offset - north_rotation) / 360.0 * width
        left = round(centre - width / 8) % width
        view = doubled.crop((left, top, left + width // 4, bottom)).resize((size, size))
        canvas.paste(view, ((i % 2) * (size + LINE), (i // 2) * (size + LINE)))
    return canvas


def route_rail(record: Mapping[str, Any], *, straight_line_length: int = 2,
               where: str = "route") -> tuple[list[str], list[dict[str, Any]]]:
    """`build_rail` of a loaded record (init heading 0/missing: drawn per route name)."""
    import random

    seed = json.dumps(record.get("start_place", {}), sort_keys=True, default=str)
    return build_rail(record, straight_line_length=straight_line_length,
                      rng=random.Random(seed), where=where)
