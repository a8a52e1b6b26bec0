"""Cities gengap generates itself: a street network, named landmarks, geocodes.

A city is a jittered, rotated grid with varied block lengths (55-150 m), one or two diagonal
avenues cutting across it (intersections where five to eight streets meet, headings near 45
degrees off the grid), some streets removed (T-junctions) and dead-end stubs, and named places
at street corners. Positions are metres east (x) and north (y) of the city's origin; geocodes
are [lat, lng] around a made-up centre, so routes come out in the study's record shape.

Hand-written rather than networkx/osmnx: the network is a few dozen nodes, must be a pure
function of (style, seed) with nothing downloaded, and needs only adjacency and headings.
"""

from __future__ import annotations

import functools
import math
import random
from collections import deque
from dataclasses import dataclass, field

from gengap.tasks.navigation.actions import normalize_heading

EARTH_RADIUS = 6_371_000.0

# Named places (invented). Each has a brand colour and logo shape that stay the same in every
# city style, as a chain's sign does (what the visual variant must recognise).
PLACES = (
    "Blue Door Cafe", "Luna Pizza", "Harbor Bank", "Green Cross Pharmacy", "Metro Books",
    "Sunrise Bakery", "Golden Dragon", "City Library", "Union Station", "Grand Hotel",
    "Rose Theater", "Corner Deli", "Star Burger", "Pearl Sushi", "Maple Market",
    "Iron Gym", "Nova Cinema", "Olive Bistro", "Post Office", "Red Lantern",
    "Silver Spoon", "Tea House", "Urban Florist", "Violet Salon",
)


@dataclass(frozen=True)
class Landmark:
    """A named place at position (x, y) metres; `node` is the corner's intersection or -1."""

    name: str
    x: float
    y: float
    node: int = -1


@dataclass
class City:
    """A street network: node positions, adjacency, landmarks, and its geocode frame."""

    name: str
    style: str
    seed: int
    nodes: list[tuple[float, float]]
    adjacency: dict[int, list[int]]
    landmarks: list[Landmark]
    origin: tuple[float, float]  # [lat, lng] of (0, 0)
    rotation: float
    corner_landmarks: dict[int, list[Landmark]] = field(default_factory=dict)

    def heading(self, a: int, b: int) -> float:
        """The heading from node `a` to node `b` (degrees clockwise from north)."""
        return heading_xy(self.nodes[a], self.nodes[b])

    def arms(self, node: int) -> list[float]:
        """Headings of the streets leaving `node`."""
        return sorted(self.heading(node, n) for n in self.adjacency[node])

    def geocode(self, xy: tuple[float, float]) -> list[float]:
        """[lat, lng] of a position in metres."""
        lat0, lng0 = self.origin
        lat = lat0 + math.degrees(xy[1] / EARTH_RADIUS)
        lng = lng0 + math.degrees(xy[0] / (EARTH_RADIUS * math.cos(math.radians(lat0))))
        return [round(lat, 7), round(lng, 7)]

    def dead_ends(self) -> list[int]:
        """Nodes with a single street."""
        return [n for n, adj in self.adjacency.items() if len(adj) == 1]


def heading_xy(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Heading from a to b in the x-east / y-north plane."""
    return normalize_heading(math.degrees(math.atan2(b[0] - a[0], b[1] - a[1])))


def distance_xy(a: tuple[float, float], b: tuple[float, float]) -> float:
    return math.hypot(b[0] - a[0], b[1] - a[1])


def geo_heading(a: list[float], b: list[float]) -> float:
    """Initial great-circle bearing from geocode a to geocode b ([lat, lng], degrees)."""
    lat1, lat2 = math.radians(a[0]), math.radians(b[0])
    dlng = math.radians(b[1] - a[1])
    x = math.sin(dlng) * math.cos(lat2)
    y = math.cos(lat1) * math.sin(lat2) - math.sin(lat1) * math.cos(lat2) * math.cos(dlng)
    return normalize_heading(math.degrees(math.atan2(x, y)))


def geo_distance(a: list[float], b: list[float]) -> float:
    """Haversine distance in metres between two [lat, lng] geocodes."""
    lat1, lat2 = math.radians(a[0]), math.radians(b[0])
    dlat, dlng = lat2 - lat1, math.radians(b[1] - a[1])
    h = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlng / 2) ** 2
    return 2 * EARTH_RADIUS * math.asin(min(1.0, math.sqrt(h)))


def _rotate(x: float, y: float, degrees: float) -> tuple[float, float]:
    t = math.radians(degrees)
    return (x * math.cos(t) + y * math.sin(t), -x * math.sin(t) + y * math.cos(t))


def _connected(adjacency: dict[int, set[int]]) -> bool:
    start = next(iter(adjacency))
    seen, queue = {start}, deque([start])
    while queue:
        for n in adjacency[queue.popleft()]:
            if n not in seen:
                seen.add(n)
                queue.append(n)
    return len(seen) == len(adjacency)


@functools.lru_cache(maxsize=64)
def generate_city(style: str, seed: int) -> City:
    """City `seed` of `style` (a pure function of both; cached)."""
    rng = random.Random(f"gengap-navigation-city/{style}/{seed}")
    cols, rows = rng.randint(6, 8), rng.randint(6, 8)
    xs = [0.0]
    for _ in range(cols - 1):
        xs.append(xs[-1] + rng.uniform(55, 150))
    ys = [0.0]
    for _ in range(rows - 1):
        ys.append(ys[-1] + rng.uniform(55, 150))
    rotation = rng.uniform(-25, 25)
    cx, cy = xs[-1] / 2, ys[-1] / 2
    index: dict[tuple[int, int], int] = {}
    nodes: list[tuple[float, float]] = []
    for i in range(cols):
        for j in range(rows):
            x = xs[i] - cx + rng.uniform(-5, 5)
            y = ys[j] - cy + rng.uniform(-5, 5)
            index[(i, j)] = len(nodes)
            nodes.append(_rotate(x, y, rotation))
    adjacency: dict[int, set[int]] = {n: set() for n in range(len(nodes))}

    def link(a: int, b: int) -> None:
        adjacency[a].add(b)
        adjacency[b].add(a)

    grid_edges = []
    for (i, j), n in index.items():
        for di, dj in ((1, 0), (0, 1)):
            if (i + di, j + dj) in index:
                grid_edges.append((n, index[(i + di, j + dj)]))
                link(*grid_edges[-1])
    # Diagonal avenues (same orientation, so they never cross between intersections).
    for _ in range(rng.randint(1, 2)):
        i, j = rng.randrange(0, cols - 2), 0
        while (i + 1, j + 1) in index:
            link(index[(i, j)], index[(i + 1, j + 1)])
            i, j = i + 1, j + 1
    # Remove some grid streets (T-junctions, dead ends), keeping the city connected.
    rng.shuffle(grid_edges)
    for a, b in grid_edges[: len(grid_edges) // 8]:
        if len(adjacency[a]) <= 2 or len(adjacency[b]) <= 2:
            continue
        adjacency[a].discard(b)
        adjacency[b].discard(a)
        if not _connected(adjacency):
            link(a, b)
    # Dead-end stubs off the edge of the grid.
    border = [n for (i, j), n in index.items() if i in (0, cols - 1) or j in (0, rows - 1)]
    for n in rng.sample(border, 4):
        ox, oy = nodes[n]
        norm = math.hypot(ox, oy) or 1.0
        length = rng.uniform(40, 80)
        nodes.append((ox + ox / norm * length, oy + oy / norm * length))
        adjacency[len(nodes) - 1] = set()
        link(n, len(nodes) - 1)
    # Named places at street corners.
    landmarks: list[Landmark] = []
    corners: dict[int, list[Landmark]] = {}
    for n in range(len(nodes)):
        if len(adjacency[n]) < 3 or rng.random() > 0.85:
            continue
        for k in rng.sample(range(4), rng.randint(1, 2)):
            angle = math.radians(rotation + 45 + 90 * k)
            x, y = nodes[n]
            mark = Landmark(rng.choice(PLACES), x + 14 * math.sin(angle),
                            y + 14 * math.cos(angle), n)
            landmarks.append(mark)
            corners.setdefault(n, []).append(mark)
    origin = (rng.uniform(-50, 60), rng.uniform(-120, 150))
    return City(f"{style}-{seed}", style, seed, nodes,
                {n: sorted(adj) for n, adj in adjacency.items()}, landmarks,
                (round(origin[0], 5), round(origin[1], 5)), rotation, corners)
