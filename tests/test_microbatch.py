"""--micro-batches (the mean of micro-batch means that gradient accumulation computes, beside the true mean) and
the partial results that merge exactly (lossgrad.api.partial / merge / finish), against a real PyTorch
accumulation loop (tests/golden/microbatch.json, written by scripts/golden_microbatch.py), hand-worked cases and
exact rational arithmetic."""

import json
import math
import pickle
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

import lossgrad
from conftest import assert_usage_error, lossgrad as run_cli
from lossgrad.api import finish, merge, micro_batches, partial, run
from lossgrad.diagnose import check, tolerance
from lossgrad.errors import OptionError
from lossgrad.inputs import read_arrays
from lossgrad.options import setup
from lossgrad.reduction import ExactSum, split_rows

GOLDEN = json.loads((Path(__file__).parent / "golden" / "microbatch.json").read_text())


def _close(a, b, rtol=1e-12):
    np.testing.assert_allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), rtol=rtol, atol=1e-16)


@pytest.mark.parametrize("case", GOLDEN["cases"], ids=lambda c: c["name"])
@pytest.mark.parametrize("convention", ["torch", "exact"])
def test_golden_accumulation_loop(case, convention):
    """PyTorch's loop: per-micro-batch means, the accumulated loss/K, and the logits' accumulated .grad; the
    [B, T, V] cases split the first axis of the leading shape, B/K sequences = (B/K)·T rows each."""
    opts = {"class_weights": case["class_weights"]} if case["class_weights"] else {}
    s = setup("ce", from_logits=True, convention=convention, ignore_index=-100, **opts)
    batch = read_arrays(s.loss, case["targets"], case["logits"], None)
    m = micro_batches(s, batch, case["k"], leading=tuple(case["leading"]))
    assert m.size == math.prod(case["leading"]) // case["k"]
    _close(m.means, case["means"])
    _close(m.value, case["accumulated"])
    _close(m.true_value, case["true_mean"])
    _close(m.grad, case["grad_micro"])
    _close(run(s, batch).grad, case["grad_true"])
    if not math.isnan(case["accumulated"]):
        _close(m.ratio, case["accumulated"] / case["true_mean"])


def test_leading_shape_from_a_tensor_batch():
    """A batch whose predictions came as a [B, T, V] tensor (its shape says so) splits the B sequences: K = 4 of
    B = 8 is 2 sequences of T = 5 tokens, 10 rows each (PyTorch's loop over z.chunk(4, dim=0))."""
    case = GOLDEN["cases"][1]
    s = setup("ce", from_logits=True, convention="torch", ignore_index=-100)
    batch = replace(read_arrays(s.loss, case["targets"], case["logits"], None), shape=(8, 5, 7))
    m = micro_batches(s, batch, 4)
    assert (m.size, m.unit, m.groups) == (10, "tokens", "2 sequences (10 rows)")
    _close(m.means, case["means"])
    counted = sum(t != -100 for t in case["targets"])
    per = [sum(t != -100 for t in case["targets"][i * 10:(i + 1) * 10]) for i in range(4)]
    loss = f"{case['accumulated']:.6g}"
    diag = check("ce", batch, None, None, from_logits=True, labels=batch.labels or "auto", against="torch", micro=4,
                 my_loss=(float(loss), float(tolerance([loss], np.array([float(loss)]))[0])),
                 params={"ignore_index": -100})
    assert diag.match is not None and diag.match.reduction == "micro"
    assert diag.findings[0].startswith(f"your loss is the mean of 4 per-micro-batch means (n = "
                                       f"{', '.join(map(str, per))}); over all {counted} counted tokens it is "
                                       f"{case['true_mean']:.4g}")
    with pytest.raises(OptionError, match=r"3 does not split the 8 sequences \(the first axis of the leading shape "
                                          r"\[8, 5\]\) into equal micro-batches \(8 = 3·2 \+ 2\)"):
        micro_batches(s, batch, 3)


def test_golden_records_torch():
    assert GOLDEN["versions"]["torch"].startswith("2.13.0")


def _hand_worked():
    # worked by hand: mse (p − y)² with y = 0, p = 1, 1, 1, 3 gives losses 1, 1, 1, 9 and derivatives 2(p − y) =
    # 2, 2, 2, 6; sample weights 1, 0, 1, 1 under the exact (weighted) mean. K = 2: micro-batch 0 has weighted sum
    # 1 over n = 1 (mean 1), micro-batch 1 has 1 + 9 = 10 over n = 2 (mean 5); their mean is (1 + 5)/2 = 3. The
    # true mean is (1 + 0 + 1 + 9)/3 = 11/3, so the ratio is 3/(11/3) = 9/11. The loop's gradient is each weighted
    # derivative over K·n: 2/2, 0/2, 2/4, 6/4 = 1, 0, 0.5, 1.5; the true mean's is over N = 3: 2/3, 0, 2/3, 2.
    return [0, 0, 0, 0], [1, 1, 1, 3], [1, 0, 1, 1]


def test_hand_worked_weighted_mse():
    y, p, w = _hand_worked()
    s = setup("mse", sample_weight=True)
    m = micro_batches(s, read_arrays(s.loss, y, p, w), 2)
    assert m.counts == [1.0, 2.0] and m.means == [1.0, 5.0]
    assert m.value == 3.0 and m.true_value == 11 / 3 and m.n == 3.0
    assert m.ratio == pytest.approx(9 / 11, rel=1e-15)
    assert m.grad.reshape(-1).tolist() == [1.0, 0.0, 0.5, 1.5]


def test_cli_json_csv_and_table():
    y, p, w = (",".join(map(str, v)) for v in _hand_worked())
    base = ("mse", "-y", y, "-p", p, "--sample-weight", w)
    plain = run_cli(*base, "--format", "json").json()
    r = run_cli(*base, "--micro-batches", "2", "--format", "json")
    d = r.json()
    assert r.code == 0 and "micro_batches" not in plain and "grad_micro" not in plain
    assert {k: d[k] for k in plain} == plain  # the usual keys, unchanged
    assert d["grad_micro"] == [1.0, 0.0, 0.5, 1.5]
    assert d["grad_logits_micro"] is None  # (mse has no logits)
    assert d["micro_batches"] == {"k": 2, "size": 2, "n": [1.0, 2.0], "means": [1.0, 5.0], "value": 3.0,
                                  "true_value": 11 / 3, "true_n": 3.0, "ratio": 3.0 / (11 / 3)}
    c = run_cli(*base, "--micro-batches", "2", "--format", "csv")
    assert c.out.splitlines()[0] == "loss,grad,grad_micro"
    assert [line.split(",")[2] for line in c.out.splitlines()[1:]] == ["1.0", "0.0", "0.5", "1.5"]
    assert "micro-batches: 2 of 2 samples each; the mean of their means is 3.0, 0.8181818182× the mean over " \
           "N=3.0 (the sum of the sample weights)" in c.err
    t = run_cli(*base, "--micro-batches", "2", "--format", "table")
    assert "grad_micro" in t.out and "micro-batch   rows   n   mean" in t.out and "2:4   2      5" in t.out
    e = run_cli(*base, "--micro-batches", "2", "--format", "json", "--explain").json()
    assert e["formulas"][-1].startswith("J_micro = (1/K) Σₖ (Σ_{i∈k} ℓᵢ / nₖ),  ∂J_micro/∂xᵢ = (∂ℓᵢ/∂xᵢ) / "
                                        "(K·nₖ),  K = 2")


def test_rows_of_several_columns_and_ce_columns():
    c = run_cli("ce", "--from-logits", "-y", "1,0,2,1", "-p", "0,1,2;1,0,0;2,2,1;0,0,0", "--micro-batches", "2",
                "--format", "csv")
    assert c.code == 0, c.err
    assert c.out.splitlines()[0] == "loss,grad_0,grad_1,grad_2,grad_micro_0,grad_micro_1,grad_micro_2"
    rows = np.array([[float(x) for x in line.split(",")] for line in c.out.splitlines()[1:]])
    # every micro-batch counts 2 samples, so the loop's gradient, over K·n = 2·2, is the true one, over N = 4
    np.testing.assert_array_equal(rows[:, 1:4], rows[:, 4:7])


def test_bce_on_probabilities_gives_the_logits_gradient_too():
    # worked by hand: bce on p = 0.5, 0.5, 0.5, 0.5 with y = 1, 0, 1, 1 has ∂ℓ/∂z = p − y = −0.5, 0.5, −0.5, −0.5
    # behind the probabilities; sample weights 1, 0, 1, 1 and K = 2: micro-batch 0 counts n = 1, micro-batch 1
    # n = 2, so grad_logits_micro is (p − y)·w/(2·n) = −0.25, 0, −0.125, −0.125
    d = run_cli("bce", "-y", "1,0,1,1", "-p", "0.5,0.5,0.5,0.5", "--sample-weight", "1,0,1,1", "--micro-batches", "2",
                "--format", "json").json()
    assert d["grad_logits_micro"] == [-0.25, 0.0, -0.125, -0.125]
    t = run_cli("bce", "-y", "1,0,1,1", "-p", "0.5,0.5,0.5,0.5", "--sample-weight", "1,0,1,1", "--micro-batches", "2",
                "--format", "table")
    assert "grad_logits   grad_micro   grad_logits_micro" in t.out


def test_errors_say_the_sizes_and_why():
    assert_usage_error(run_cli("mse", "-y", "0,0,0,0,0", "-p", "1,2,3,4,5", "--micro-batches", "2"),
                       "--micro-batches: 2 does not split the 5 samples into equal micro-batches (5 = 2·2 + 1); "
                       "choose a number that divides 5: 1 or 5")
    assert_usage_error(run_cli("mse", "-y", "0,0,0,0", "-p", "1,2,3,4", "--micro-batches", "2", "-r", "sum"),
                       "--micro-batches: compares means, and --reduction is sum")
    assert_usage_error(run_cli("mse", "-y", "0,0", "-p", "1,2", "--micro-batches", "0"), "at least 1")
    assert_usage_error(run_cli("mse", "-y", "0,0", "-p", "1,2", "--micro-batches", "3"),
                       "--micro-batches: 3 is more micro-batches than the 2 samples; choose a number that divides 2: "
                       "1 or 2")
    assert_usage_error(run_cli("mse", "-y", "0,0,0,0,0,0", "-p", "1,2,3,4,5,6", "--micro-batches", "4"),
                       "choose a number that divides 6: 1, 2, 3 or 6")
    assert_usage_error(run_cli("mse", "-y", "0", "-p", "1", "--micro-batches", "2"),
                       "--micro-batches: 2 is more micro-batches than the 1 sample; one sample cannot be split")
    assert_usage_error(run_cli("check", "mse", "-y", "0,0,0", "-p", "1,2,3", "--my-loss", "1",
                               "--micro-batches", "2"), "does not split the 3 samples")
    with pytest.raises(OptionError, match="first axis of the leading shape"):
        split_rows(24, 4, (6, 4))
    assert split_rows(24, 3, (6, 4)) == 8  # B = 6 sequences of T = 4 tokens: 2 sequences = 8 rows each


def test_empty_micro_batch_warns():
    r = run_cli("ce", "--from-logits", "-y", "-1,-1,0,1", "-p", "0,1;1,0;2,0;0,3", "--ignore-index", "-1",
                "--micro-batches", "2", "--format", "json")
    d = r.json()
    assert d["micro_batches"]["means"][0] == "nan" and d["micro_batches"]["value"] == "nan"
    assert d["grad_micro"][:2] == [[0.0, 0.0], [0.0, 0.0]]
    assert "warning: micro-batch 0 counts no samples" in r.err


GOLD = GOLDEN["cases"][1]  # tokens [B=8, T=5, V=7], K=4: PyTorch's per-micro-batch means


def _check_args():
    y = ",".join(map(str, GOLD["targets"]))
    p = ";".join(",".join(repr(v) for v in row) for row in GOLD["logits"])
    return ("check", "ce", "--from-logits", "-y", y, "-p", p, "--ignore-index", "-100")


def test_check_recognises_the_mean_of_micro_batch_means():
    counted = sum(t != -100 for t in GOLD["targets"])
    my_loss = f"{GOLD['accumulated']:.6g}"
    r = run_cli(*_check_args(), "--my-loss", my_loss, "--micro-batches", "4", "-c", "torch", "--format", "table")
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert lines[0] == "your loss matches: exact mathematics, the mean of 4 per-micro-batch means (gradient " \
                       f"accumulation; not the mean over N={counted})"
    ratio = GOLD["accumulated"] / GOLD["true_mean"]
    per = [sum(t != -100 for t in GOLD["targets"][i * 10:(i + 1) * 10]) for i in range(4)]  # 8·5/4 rows each
    assert (f"your loss is the mean of 4 per-micro-batch means (n = {', '.join(map(str, per))}); over all "
            f"{counted} counted samples it is {GOLD['true_mean']:.4g} (yours is {ratio:.4g}× it)") in lines
    assert "against torch (the mean of 4 micro-batch means): your loss matches torch's" in r.out
    d = run_cli(*_check_args(), "--my-loss", my_loss, "--micro-batches", "4", "--format", "json").json()
    assert d["match"]["reduction"] == "micro"
    _close(d["match"]["micro_batches"]["means"], GOLD["means"])


def test_check_gradient_of_the_loop_and_the_true_mean():
    grad = ";".join(",".join(f"{v:.8g}" for v in row) for row in GOLD["grad_micro"])
    r = run_cli(*_check_args(), "--my-grad", grad, "--micro-batches", "4", "-c", "torch", "--format", "table")
    assert r.code == 0, r.err
    assert "your gradient is that of the mean of 4 per-micro-batch means" in r.out
    assert "each element's derivative is divided by 4·n of its micro-batch" in r.out
    true = ";".join(",".join(f"{v:.8g}" for v in row) for row in GOLD["grad_true"])
    r = run_cli(*_check_args(), "--my-grad", true, "--micro-batches", "4", "-c", "torch", "--format", "table")
    assert r.code == 0 and r.out.startswith("your numbers match: exact mathematics, mean over N=")
    assert "your numbers are the mean over all" in r.out and "not the mean of the 4 per-micro-batch means" in r.out
    # without --micro-batches the loop's gradient is no convention's
    r = run_cli(*_check_args(), "--my-grad", grad, "-c", "torch", "--format", "table")
    assert r.code == 1


def test_compare_shows_each_conventions_micro_value():
    y, p, w = (",".join(map(str, v)) for v in _hand_worked())
    d = run_cli("compare", "mse", "-y", y, "-p", p, "--sample-weight", w, "--micro-batches", "2",
                "--format", "json").json()
    assert d["conventions"]["exact"]["micro_batches"]["value"] == 3.0
    # the frameworks divide a weighted mean by N, the same 2 in every micro-batch: (1 + 0)/2 and (1 + 9)/2, mean
    # (0.5 + 5)/2 = 2.75, the true (1 + 0 + 1 + 9)/4 as well (worked by hand)
    assert d["conventions"]["torch"]["micro_batches"]["value"] == 2.75 == d["conventions"]["torch"]["value"]


# ---------------------------------------------------------------- partial results


def _ce_data(seed=0, n=300, c=6):
    rng = np.random.default_rng(seed)
    z = rng.normal(scale=3.0, size=(n, c))
    y = rng.integers(0, c, n)
    y[rng.random(n) < 0.2] = -100
    return y, z


def _exact_mean(losses, counted):
    """The mean as exact rational arithmetic over the per-sample losses, rounded once."""
    total = sum(Fraction(float(v)) for v in losses)
    return float(total / counted)


def test_partials_merge_exactly_in_any_split_and_order():
    y, z = _ce_data()
    opts = {"from_logits": True, "ignore_index": -100}
    whole = partial("ce", y, z, **opts)
    none = lossgrad.ce(y, z, reduction="none", **opts)
    assert finish(whole) == _exact_mean(none.losses, int((y != -100).sum()))
    assert finish(whole) == pytest.approx(lossgrad.ce(y, z, **opts).value, rel=4e-16)
    rng = np.random.default_rng(1)
    for _ in range(5):
        cuts = sorted(rng.choice(np.arange(1, len(y)), 4, replace=False))
        parts = [partial("ce", a, b, **opts) for a, b in zip(np.split(y, cuts), np.split(z, cuts), strict=True)]
        left = parts[0]
        for q in parts[1:]:
            left = merge(left, q)
        right = parts[-1]
        for q in reversed(parts[:-1]):
            right = merge(q, right)
        shuffled = [parts[i] for i in rng.permutation(len(parts))]
        mixed = merge(merge(shuffled[0], shuffled[1]), merge(shuffled[2], merge(shuffled[3], shuffled[4])))
        for total in (left, right, mixed, pickle.loads(pickle.dumps(mixed))):
            assert finish(total) == finish(whole) and total.n == whole.n and total.rows == len(y)


def test_partials_with_weights_sum_nonfinite_and_errors():
    rng = np.random.default_rng(2)
    y, z, w = (rng.random(50) < 0.5) * 1.0, rng.normal(size=50), rng.uniform(0, 3, 50)
    parts = [partial("bce", y[i:i + 7], z[i:i + 7], w[i:i + 7], from_logits=True) for i in range(0, 50, 7)]
    total = parts[0]
    for q in parts[1:]:
        total = merge(total, q)
    none = lossgrad.bce(y, z, sample_weight=w, from_logits=True, reduction="none")
    assert finish(total) == float(sum(map(Fraction, none.losses.tolist())) / sum(map(Fraction, w.tolist())))
    summed = partial("bce", y, z, from_logits=True, reduction="sum")
    assert finish(summed) == math.fsum(lossgrad.bce(y, z, from_logits=True, reduction="none").losses.tolist())
    inf = partial("bce", [1, 1], [1.0, 0.0])  # −log 0 = inf in the second
    assert (inf.posinf, inf.nans, finish(inf)) == (1, 0, math.inf)
    with pytest.raises(OptionError, match="do not merge"):
        merge(inf, summed)
    with pytest.raises(OptionError, match="a partial result reduces"):
        partial("bce", [1], [0.5], reduction="none")


def test_exact_sum_is_exact():
    # 1e16 + 1 − 1e16 loses the 1 in floating point; an exact sum keeps it, and so does any split of it
    a = ExactSum.of(np.array([1e16, 1.0, -1e16, 5e-324, 2.0**-1074]))
    assert Fraction(*a.fraction()) == 1 + Fraction(2, 2 ** 1074) and a.value == 1.0
    assert ExactSum.of(np.array([1e16])) + ExactSum.of(np.array([1.0, -1e16])) == ExactSum.of(np.array([1.0]))


@pytest.mark.dask
def test_dask_shards_match_one_process_bit_for_bit(tmp_path):
    """.npy shards in a directory, each read with np.load and reduced to a Partial by dask.delayed on the local
    scheduler, merged pairwise: the same bits as one partial over the whole input."""
    dask = pytest.importorskip("dask")
    y, z = _ce_data(3, n=1000, c=5)
    rng = np.random.default_rng(4)
    yb, zb = (rng.random(1000) < 0.3) * 1.0, rng.normal(size=1000)
    cuts = [130, 377, 378, 700, 901]
    for i, parts in enumerate(zip(*(np.split(a, cuts) for a in (y, z, yb, zb)), strict=True)):
        for name, a in zip(("y", "z", "yb", "zb"), parts, strict=True):
            np.save(tmp_path / f"{name}-{i:03d}.npy", a)
    shards = sorted(p.name[2:] for p in tmp_path.glob("y-*.npy"))

    def load(name: str, shard: str) -> np.ndarray:
        return np.load(tmp_path / f"{name}-{shard}")

    def tree(items):
        while len(items) > 1:
            items = [dask.delayed(merge)(*items[i:i + 2]) if i + 1 < len(items) else items[i]
                     for i in range(0, len(items), 2)]
        return items[0]

    ce = tree([dask.delayed(partial)("ce", dask.delayed(load)("y", s), dask.delayed(load)("z", s),
                                     from_logits=True, ignore_index=-100) for s in shards])
    bce = tree([dask.delayed(partial)("bce", dask.delayed(load)("yb", s), dask.delayed(load)("zb", s),
                                      from_logits=True) for s in shards])
    for scheduler in ("threads", "sync"):
        got_ce, got_bce = dask.compute(ce, bce, scheduler=scheduler)
        assert finish(got_ce) == finish(partial("ce", y, z, from_logits=True, ignore_index=-100))
        assert finish(got_bce) == finish(partial("bce", yb, zb, from_logits=True))
        assert got_ce.rows == 1000 and got_ce.n.value == float((y != -100).sum())


def test_each_micro_batch_takes_its_own_further_inputs():
    """By hand, margin-ranking with margin 0.5: y = (1, −1, 1, 1), x1 = (0.75, 0.25, 0.5, 0), x2 = (0.5, 0.25, 1, 2):
    losses max(0, −y(x1 − x2) + 0.5) = (0.25, 0.5, 1, 2.5), micro-batch means 0.375 and 1.75; cosine-embedding's
    second pair (cos 0.6, label −1) costs 0.6 in its own micro-batch. Before, every micro-batch took the first one's
    --other (or --var, --label, --negative): means 0.375 and 0.625."""
    m = lossgrad.api.evaluate_micro("margin-ranking", [1, -1, 1, 1], [0.75, 0.25, 0.5, 0], 2,
                                    other=[0.5, 0.25, 1, 2], margin=0.5)
    assert m.means == [0.375, 1.75] and m.value == 1.0625
    m = lossgrad.api.evaluate_micro("cosine-embedding", [[1, 0], [0, 1]], [[3, 4], [4, 3]], 2, label=[1, -1])
    assert m.means == pytest.approx([0.4, 0.6], rel=1e-12)
    r = run_cli("margin-ranking", "-y", "1,-1,1,1", "-p", "0.75,0.25,0.5,0", "--other", "0.5,0.25,1,2", "--margin",
                "0.5", "--micro-batches", "2", "-f", "json")
    assert r.code == 0 and r.json()["micro_batches"]["means"] == [0.375, 1.75]
    r = run_cli("check", "margin-ranking", "-y", "1,-1,1,1", "-p", "0.75,0.25,0.5,0", "--other", "0.5,0.25,1,2",
                "--margin", "0.5", "--micro-batches", "2", "--my-loss", "1.0625", "-f", "json")
    assert r.code == 0 and r.json()["match"] is not None
