"""The metric-line format: the encoder, the number codec and the one cross-rank rule."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from em_dist.store.lines import (
    LineEncoder,
    aggregate_across_ranks,
    decode_number,
    encode_number,
    json_number,
)

ODD_NAMES = ["100%", "a%sb", "%d", 'say "hi"', "back\\slash", "new\nline", "tab\there", "ünï©ødé/损失", "😀", "{}"]


@pytest.mark.parametrize("name", ODD_NAMES)
def test_encoder_lines_are_strict_json_that_round_trip(name):
    enc = LineEncoder()
    rec = ("custom % type", 7, None, 1.5, {name: 0.25, "n": 3})
    for _ in range(2):  # the second call uses the cached template
        line = enc(rec)
        assert line.endswith("\n") and line.count("\n") == 1
        doc = json.loads(line)
        assert doc == {"type": "custom % type", "step": 7, "epoch": None, "time": 1.5, "metrics": {name: 0.25, "n": 3}}


def test_encoder_keeps_key_order_and_epochs():
    enc = LineEncoder()
    assert json.loads(enc(("train", 1, 2, 3.0, {"b": 1, "a": 2})))["epoch"] == 2
    line = enc(("train", 1, 0.5, 3.0, {"b": 1, "a": 2}))
    assert list(json.loads(line)["metrics"]) == ["b", "a"] and json.loads(line)["epoch"] == 0.5


@pytest.mark.parametrize("value", [0.0, -0.0, 1e-310, 1.7976931348623157e308, 0.1, 1 / 3, -2.5e-8, 0, -7, 2**62])
def test_finite_numbers_round_trip_exactly(value):
    text = encode_number(value)
    back = decode_number(json.loads(text))
    assert back == value and type(back) is type(value)
    assert math.copysign(1, back) == math.copysign(1, value)


def test_non_finite_numbers_are_strings_both_ways():
    assert [encode_number(v) for v in (math.nan, math.inf, -math.inf)] == ['"NaN"', '"Infinity"', '"-Infinity"']
    assert math.isnan(decode_number("NaN")) and decode_number("Infinity") == math.inf
    assert decode_number("-Infinity") == -math.inf
    assert [json_number(v) for v in (math.nan, math.inf, -math.inf, 2.0)] == ["NaN", "Infinity", "-Infinity", 2.0]
    with pytest.raises(ValueError, match="not a metric value"):
        decode_number("inf")


def _point(rank, step, value, name="loss"):
    return {"type": "train", "name": name, "step": step, "rank": rank, "value": value}


def test_cross_rank_rule_counts_each_ranks_last_value_once():
    # rank 0 logged step 5 twice (1, then 3), rank 1 once (5): values 3 and 5
    points = [_point(0, 5, 1.0), _point(0, 5, 3.0), _point(1, 5, 5.0), _point(1, 6, 2.0)]
    assert aggregate_across_ranks(points) == [
        {"type": "train", "name": "loss", "step": 5, "mean": 4.0, "min": 3.0, "max": 5.0, "count": 2, "ranks": [0, 1]},
        {"type": "train", "name": "loss", "step": 6, "mean": 2.0, "min": 2.0, "max": 2.0, "count": 1, "ranks": [1]},
    ]


def test_server_aggregate_follows_the_same_rule():
    from em_dist.server.metric_store import SeriesData
    from em_dist.server.metric_store import aggregate_across_ranks as server_aggregate

    rng = np.random.default_rng(7)
    points, parts = [], []
    for rank in range(4):
        steps = rng.integers(0, 40, size=200)  # repeated steps, out of order
        values = rng.normal(size=200)
        parts.append(SeriesData(rank, "train", "loss", steps.astype(np.int64), values))
        points += [_point(rank, int(s), float(v)) for s, v in zip(steps, values)]
    ref = aggregate_across_ranks(points)
    got = server_aggregate(parts)
    assert got["steps"].tolist() == [r["step"] for r in ref]
    assert got["count"].tolist() == [r["count"] for r in ref]
    assert np.allclose(got["mean"], [r["mean"] for r in ref])
    assert got["min"].tolist() == [r["min"] for r in ref] and got["max"].tolist() == [r["max"] for r in ref]
