"""bench/photo_seeds.py: the statistics it prints, checked against values computed by hand."""

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.photo_seeds import mean_sd, parse_group, summary_table  # noqa: E402


def test_mean_and_sample_sd_by_hand():
    assert mean_sd([0.4, 0.3]) == pytest.approx((0.35, math.sqrt(0.005)))
    assert mean_sd([0.5]) == (0.5, 0.0)  # one seed: no spread to report


def test_summary_gives_each_groups_mean_sd_seeds_and_the_difference_with_its_standard_error():
    groups = {"CLIP": [{"flowers plain": 0.40}, {"flowers plain": 0.30}],
              "SemCLIP": [{"flowers plain": 0.32}, {"flowers plain": 0.32},
                          {"flowers plain": 0.35}]}
    lines = summary_table(groups).splitlines()
    assert lines[0] == "flowers plain"
    assert "0.350 +- 0.071 (n=2)" in lines[1] and "seeds: 0.400 0.300" in lines[1]
    assert "diff" not in lines[1]  # the first group is the reference
    # mean 0.33, sd sqrt(0.0003) over 3; diff -0.02; se sqrt(0.0003/3 + 0.005/2) = 0.051
    assert "0.330 +- 0.017 (n=3)" in lines[2] and "diff -0.020 (se 0.051)" in lines[2]


def test_a_figure_missing_or_nan_for_some_model_is_left_out_not_averaged():
    groups = {"A": [{"t2i R@5": 0.5, "flowers plain": float("nan")}],
              "B": [{"t2i R@5": 0.4, "flowers plain": 0.3}, {"t2i R@5": 0.6}]}
    table = summary_table(groups)
    assert "t2i R@5" in table and "flowers plain" not in table
    assert "diff +0.000" in table and "(se " not in table  # one seed of A: no spread to give


@pytest.mark.parametrize("text", ["CLIP", "=a.pt", "CLIP=", "CLIP=,"])
def test_a_malformed_group_is_refused(text):
    import argparse

    with pytest.raises(argparse.ArgumentTypeError, match="LABEL=SPEC"):
        parse_group(text)


def test_a_group_lists_its_seeds_models_in_order():
    assert parse_group("SemCLIP+claims=a.pt,b/c.pt") == ("SemCLIP+claims", ["a.pt", "b/c.pt"])
