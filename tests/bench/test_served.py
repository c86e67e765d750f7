"""The stream's own latency histogram as `make bench` reads it: quantiles estimated as PromQL's histogram_quantile
does, over a scenario's observations alone."""

from __future__ import annotations

import math

from bench.served import Histogram

INF = math.inf


def test_a_quantile_is_interpolated_within_the_bucket_that_holds_its_rank() -> None:
    histogram = Histogram(((0.001, 0.0), (0.005, 50.0), (0.01, 90.0), (0.05, 100.0), (INF, 100.0)))
    assert math.isclose(histogram.quantile(0.5), 5.0)  # the 50th observation is the top of the 1-5 ms bucket
    assert math.isclose(histogram.quantile(0.25), 3.0)  # halfway through it
    assert math.isclose(histogram.quantile(0.99), 46.0)  # 9 of the 10 in 10-50 ms


def test_the_first_bucket_runs_from_zero_and_beyond_the_last_bound_is_that_bound() -> None:
    assert math.isclose(Histogram(((0.002, 10.0), (INF, 10.0))).quantile(0.5), 1.0)
    assert Histogram(((0.002, 0.0), (30.0, 1.0), (INF, 4.0))).quantile(0.99) == 30_000.0


def test_no_observations_is_not_a_number() -> None:
    assert math.isnan(Histogram(((0.001, 0.0), (INF, 0.0))).quantile(0.5))


def test_since_leaves_what_was_observed_before() -> None:
    before = Histogram(((0.001, 3.0), (0.01, 5.0), (INF, 5.0)))
    after = Histogram(((0.001, 3.0), (0.01, 9.0), (INF, 10.0)))
    assert after.since(before) == Histogram(((0.001, 0.0), (0.01, 4.0), (INF, 5.0)))


def test_two_processes_histograms_add_up_bucket_by_bucket() -> None:
    one = Histogram(((0.001, 1.0), (0.01, 3.0), (INF, 3.0)))
    other = Histogram(((0.001, 0.0), (0.01, 2.0), (INF, 4.0)))
    assert one.plus(other) == Histogram(((0.001, 1.0), (0.01, 5.0), (INF, 7.0)))
