"""Scatter-plot labels: placed apart from each other and from the points, inside the plot."""

from __future__ import annotations

import itertools

from semclip_gui.label_layout import MARKER_RADIUS, place_labels


def boxes(points, sizes, offsets):
    return [(x + dx, y + dy, x + dx + w, y + dy + h)
            for (x, y), (w, h), (dx, dy) in zip(points, sizes, offsets)]


def overlap(a, b) -> bool:
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


def test_a_lone_label_sits_just_right_of_and_above_its_point():
    assert place_labels([(100, 100)], [(30, 14)], 300, 200) == [(MARKER_RADIUS, -14)]


def test_near_the_right_edge_the_label_goes_left():
    [(dx, dy)] = place_labels([(290, 100)], [(30, 14)], 300, 200)
    assert dx == -30 - MARKER_RADIUS and dy == -14


def test_a_tight_cluster_gets_labels_that_overlap_nothing():
    points = [(150 + 3 * (i % 3), 100 + 3 * (i // 3)) for i in range(9)]  # 9 points in 7 px
    sizes = [(120, 14)] + [(22, 14)] * 8  # the caption's long label first, then "+1"... "-4"
    placed = boxes(points, sizes, place_labels(points, sizes, 400, 300))
    for a, b in itertools.combinations(placed, 2):
        assert not overlap(a, b), (a, b)
    r = MARKER_RADIUS
    for box in placed:
        assert 0 <= box[0] and box[2] <= 400 and 0 <= box[1] and box[3] <= 300
        assert not any(overlap(box, (x - r, y - r, x + r, y + r)) for x, y in points)


def test_with_no_free_spot_each_label_takes_the_least_crowded_one():
    points = [(10, 10), (11, 10)]
    offsets = place_labels(points, [(18, 18), (18, 18)], 20, 20)  # a plot too small for both
    assert len(offsets) == 2 and all(isinstance(v, float) for o in offsets for v in o)
