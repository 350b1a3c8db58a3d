"""Where to put the text labels of a scatter plot so they overlap neither each other nor the
points (a greedy placement in pixels; Qt-free, so tests check it directly)."""

from __future__ import annotations

from typing import Sequence

Box = tuple[float, float, float, float]  # left, top, right, bottom in pixels (y grows down)
MARKER_RADIUS = 6.0  # half the scatter symbol's size, plus a pixel


def _overlap(a: Box, b: Box) -> float:
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    return width * height if width > 0 and height > 0 else 0.0


def _outside(box: Box, width: float, height: float) -> float:
    """The area of ``box`` outside the plot's ``width`` x ``height`` pixels."""
    inside = _overlap(box, (0.0, 0.0, width, height))
    return (box[2] - box[0]) * (box[3] - box[1]) - inside


def _candidates(size: tuple[float, float], rings: int = 3) -> list[tuple[float, float]]:
    """Top-left offsets from the point, nearest first: beside the point (right, then left), above
    and below it, then the same one and two label heights further out."""
    w, h = size
    offsets = []
    for ring in range(rings):
        gap = MARKER_RADIUS + ring * h
        offsets += [(gap, -h), (gap, 0.0), (-w - gap, -h), (-w - gap, 0.0),
                    (-w / 2, -h - gap), (-w / 2, gap)]
    return offsets


def place_labels(points: Sequence[tuple[float, float]], sizes: Sequence[tuple[float, float]],
                 width: float, height: float) -> list[tuple[float, float]]:
    """The top-left offset (dx, dy), in pixels from its point, of each point's label.

    Labels are placed in order (put the most important first): each takes the nearest spot that
    overlaps no label placed before it, no point and no plot edge; where none is free (a tight
    cluster), the spot with the least overlap.
    """
    r = MARKER_RADIUS
    markers = [(x - r, y - r, x + r, y + r) for x, y in points]
    placed: list[Box] = []
    offsets = []
    for (x, y), size in zip(points, sizes):
        best, best_cost = (r, -size[1]), float("inf")
        for dx, dy in _candidates(size):
            box = (x + dx, y + dy, x + dx + size[0], y + dy + size[1])
            cost = (sum(_overlap(box, other) for other in placed)
                    + sum(_overlap(box, marker) for marker in markers)
                    + _outside(box, width, height))
            if cost < best_cost:
                best, best_cost = (dx, dy), cost
            if cost == 0:
                break
        offsets.append(best)
        placed.append((x + best[0], y + best[1], x + best[0] + size[0], y + best[1] + size[1]))
    return offsets
