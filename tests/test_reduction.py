"""reduction.Accumulator: sums, N and the NaN/infinite losses of blocks, merged across blocks in order."""

import math

import numpy as np

from lossgrad.reduction import Accumulator, describe


def test_merging_two_accumulators_equals_one_over_both():
    a, b, both = Accumulator(), Accumulator(), Accumulator()
    first, second = np.array([1.0, 2.0, np.nan]), np.array([4.0, 0.5])
    a.add(first, rows=3)
    b.add(second, rows=2, count=1.5)  # (a sum of weights counts towards N)
    both.add(first, rows=3)
    both.add(second, rows=2, count=1.5)
    a.merge(b)
    assert (a.n, a.rows, a.nans.count, a.nans.first) == (both.n, both.rows, 1, (2, 0)) == (4.5, 5, 1, (2, 0))
    assert math.isnan(a.total.value) and math.isnan(both.total.value)


def test_the_mean_and_its_divisor():
    acc = Accumulator()
    acc.add(np.array([1.0, 2.0, 3.0, 10.0]), rows=4)  # worked by hand: 16 / 4
    assert acc.finish("mean", np.float64) == (4.0, 4)
    assert acc.finish("sum", np.float64) == (16.0, 1)
    assert acc.finish("none", np.float64) == (None, 1)


def test_infinite_losses_are_found_after_the_rows_before_them():
    acc = Accumulator()
    acc.add(np.array([1.0, 2.0]), rows=2)
    acc.add(np.array([[0.0, np.inf]]), rows=1)
    assert (acc.infinite.count, acc.infinite.first) == (1, (2, 1))


def test_which_n_in_words():
    assert describe("mean", 4, False, None) == "mean over N=4 elements"
    assert describe("sum", 3, True, None) == "sum over 3 samples"
    assert describe("mean", 2.5, False, "the sum of the sample weights") == \
        "mean over N=2.5 (the sum of the sample weights)"


def test_a_reduced_value_beyond_the_dtype_is_infinite_without_a_numpy_warning() -> None:
    # (300² + 300² = 180,000 > float16's largest, 65,504: the sum is +∞ in float16, said as a result, nothing else)
    from conftest import lossgrad as run

    r = run("mse", "--dtype", "float16", "-r", "sum", "-y", "0,0", "-p", "300,300", "-f", "json")
    assert r.code == 0 and "RuntimeWarning" not in r.err, r.err
    assert r.json()["value"] in ("Infinity", float("inf"), "inf")
