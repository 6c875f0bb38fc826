"""Sample weights under the keras and tf-keras conventions against TensorFlow's own CPU results, recorded by
scripts/golden_weights_tf.py in tests/golden/weights_tf.json: the weighted per-sample losses, the reduced values
and the gradients bit for bit, in float32, float16 and bfloat16, batches of more than 32,768 samples (evaluated in
slices) among them; and live against Keras 3 and tf-keras on fresh random batches where TensorFlow is installed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import lossgrad
from conftest import golden_script, live_rounds
from lossgrad import kernels, lowp_tf

GOLDEN = Path(__file__).resolve().parent / "golden" / "weights_tf.json"
DATA = json.loads(GOLDEN.read_text())
SMALL = [r for r in DATA["records"] if "seed" not in r]
LONG = [r for r in DATA["records"] if "seed" in r]


def _script():  # type: ignore[no-untyped-def]
    return golden_script("golden_weights_tf")


def _inputs(rec: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A record's targets, predictions (float64 of the dtype's values) and weights as given."""
    g = _script()
    rows, cols = rec["shape"]
    if "seed" in rec:
        y, p, w = g.long_inputs(rec["seed"], rows, cols, rec["options"]["labels"])
        if rec["options"]["labels"] != "index":
            y = g.in_dtype(y, rec["dtype"])
        p = g.in_dtype(p, rec["dtype"])
        assert g.digest(y, p, w) == rec["inputs"]
    else:
        y, p = g.unbits(rec["target"]).reshape(rows, rec["target_cols"]), g.unbits(rec["pred"]).reshape(rows, cols)
        w = np.array([float.fromhex(v) for v in rec["weights"]])
    return y.astype(np.float64), p.astype(np.float64), w


def _run(rec: dict, reduction: str, inputs: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
         ) -> lossgrad.Result:
    y, p, w = inputs or _inputs(rec)
    return lossgrad.evaluate(rec["loss"], y, p, sample_weight=w, convention=rec["convention"], dtype=rec["dtype"],
                             reduction=reduction, **rec["options"])


def _same(got: object, want: np.ndarray) -> bool:
    """The same float32 values, bit for bit (−0 is not +0), NaN where NaN (its payload aside)."""
    a = np.asarray(got, dtype=np.float32).reshape(-1)
    nan = np.isnan(want)
    return a.shape == want.shape and bool(np.array_equal(np.isnan(a), nan)
                                          and np.array_equal(a[~nan].view(np.uint32), want[~nan].view(np.uint32)))


def apart(rec: dict) -> list[str]:
    """What lossgrad gives otherwise than the record (nothing: bit for bit)."""
    g = _script()
    inputs = _inputs(rec)
    out = []
    r = _run(rec, "none", inputs)
    if not (g.digest(r.losses) == rec["losses"] if "seed" in rec else _same(r.losses, g.unbits(rec["losses"]))):
        out.append("losses")
    for reduction in ("sum", "mean"):
        r = _run(rec, reduction, inputs)
        want = rec[reduction]
        if not _same(r.value, g.unbits(want["value"])):
            out.append(f"{reduction} value {r.value} != {g.unbits(want['value'])[0]}")
        if not (g.digest(r.grad) == want["grad"] if "seed" in rec else _same(r.grad, g.unbits(want["grad"]))):
            out.append(f"{reduction} grad")
        if any("not bit for bit" in w for w in r.warnings):
            out.append(f"{reduction}: {r.warnings}")
    return out


def _id(i: int, rec: dict) -> str:
    return f"{i}-{rec['convention']}-{rec['dtype']}-{rec['loss']}-{rec['options']}-{rec['shape']}-{rec['note']}"


@pytest.mark.parametrize("rec", SMALL, ids=[_id(i, r) for i, r in enumerate(SMALL)])
def test_weighted_results_are_tensorflows_bit_for_bit(rec: dict) -> None:
    assert apart(rec) == []


@pytest.mark.parametrize("rec", LONG, ids=[_id(i, r) for i, r in enumerate(LONG)])
def test_weighted_batches_beyond_a_slice_are_tensorflows_bit_for_bit(rec: dict) -> None:
    assert rec["shape"][0] > 32768
    assert apart(rec) == []


def test_the_golden_file_covers_each_convention_dtype_and_loss() -> None:
    recs = DATA["records"]
    assert {(r["convention"], r["dtype"]) for r in recs} == {(c, d) for c in ("keras", "tf-keras")
                                                             for d in ("float32", "float16", "bfloat16")}
    ces = {(r["options"].get("labels"), r["options"].get("from_logits")) for r in recs if r["loss"] == "ce"}
    assert {("index", True), ("onehot", True)} <= ces
    assert {"mse", "mae", "huber", "bce", "kl"} <= {r["loss"] for r in recs}
    weights = [float.fromhex(v) for r in SMALL for v in r["weights"]]
    assert 0.0 in weights and min(w for w in weights if w) < 1e-30 and max(weights) >= 3e4
    assert {(r["convention"], r["dtype"]) for r in LONG} >= {("keras", "float16"), ("tf-keras", "bfloat16")}


def test_keras_3_rounds_the_weights_once_and_tf_keras_twice() -> None:
    # 1 + 2^−11 + 2^−40 lies just above a midpoint of float16: rounded once it goes up, through float32 (1 + 2^−11,
    # the midpoint itself) to even, 1 (by hand); the same record under both conventions weighs the loss by each
    kind = lowp_tf.kind_of(np.float16)
    w = np.array([1 + 2 ** -11 + 2 ** -40])
    assert lowp_tf.held_weights(w, kind, keras2=False).tolist() == [1 + 2 ** -10]
    assert lowp_tf.held_weights(w, kind, keras2=True).tolist() == [1.0]
    rec = next(r for r in SMALL if r["note"].startswith("weights rounded once") and r["dtype"] == "float16")
    twin = next(r for r in SMALL if r["note"] == rec["note"] and r["dtype"] == "float16" and r is not rec)
    assert rec["losses"][:8] != twin["losses"][:8]  # (the first sample's weighted loss differs between them)


def test_without_reproduced_weights_the_records_are_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    # weighing the unweighted kernels' results afterwards (lossgrad's own float32 formulas, as before) or rounding
    # the weights as the other convention does is not the frameworks' arithmetic: some records are apart
    monkeypatch.setattr(lowp_tf, "held_weights", lambda weights, kind, keras2: np.asarray(
        np.asarray(weights, dtype=np.float64).astype(np.float32).astype(kind.half or np.float32), dtype=np.float32))
    off = [r for r in SMALL if r["dtype"] == "float16" and r["convention"] == "keras" and apart(r)]
    assert off
    monkeypatch.setattr(lowp_tf, "upstreams", lambda n, kind, rows, w=None: np.full(
        rows, lowp_tf.upstream(n, kind), dtype=np.float32) if w is None else kind.rnd(w * (1 / np.float64(n))))
    off = [r for r in SMALL if r["dtype"] == "float32" and apart(r)]
    assert off


def test_kernels_not_reproduced_under_weights_still_refuse_them() -> None:
    # ignore_index is not reproduced under weights: refused in the half dtypes, lossgrad's float32 formulas with a
    # warning in float32 (ctc's sample weights are reproduced: tests/test_weights_ctc.py)
    for dtype in ("float32", "float16", "bfloat16"):
        assert kernels.unsupported("tf", dtype, "ctc", True, {}, {}, True) is None
        assert kernels.unsupported("tf-keras", dtype, "ctc", True, {}, {}, True) is None
    with pytest.raises(lossgrad.OptionError, match="not for ce with ignore_index"):
        lossgrad.evaluate("ce", [0, 1], [[0.5, 0.1], [0.3, 0.2]], convention="keras", dtype="bfloat16",
                          from_logits=True, ignore_index=1, sample_weight=[2.0, 1.0])
    r = lossgrad.evaluate("ce", [0, 1], [[0.5, 0.1], [0.3, 0.2]], convention="keras", dtype="float32",
                          from_logits=True, ignore_index=1, sample_weight=[2.0, 1.0])
    assert any("not bit for bit" in w for w in r.warnings)
    # and where they are reproduced, no warning (the CLI's example)
    r = lossgrad.evaluate("ce", [0, 2], [[1, 2, 3], [0.5, -1, 2]], convention="keras", dtype="float32",
                          from_logits=True, labels="index", sample_weight=[2, 0.5])
    assert r.warnings == [] and np.float32(r.value) == np.float32(2.4679337)


@pytest.mark.frameworks
def test_live_keras_matches_on_fresh_random_weighted_batches(live_rng: np.random.Generator) -> None:
    g = golden_script("golden_weights_tf", "tensorflow", "keras", "tf_keras")
    rng = live_rng
    seen, off = 0, []
    for _ in range(live_rounds(1, 6)):
        for dtype in ("float32", "float16", "bfloat16"):
            for conv in ("keras", "tf-keras"):
                for case in live_cases(g, rng):
                    if not g.fits(case, dtype) or (conv == "tf-keras" and case["loss"] in g.SEGMENTATION):
                        continue
                    rec = json.loads(json.dumps(g.record(conv, case, dtype)))
                    seen += 1
                    if apart(rec):
                        off.append((_id(seen, rec), apart(rec)))
    print(f"{seen} fresh weighted batches, {len(off)} apart")
    assert not off, off[:3]


def live_cases(g, rng: np.random.Generator) -> list[dict]:  # type: ignore[no-untyped-def]
    """Fresh random batches: ce on class indexes and on probability rows, mse, and one of each other loss."""
    out = []
    for labels in ("index", "onehot"):
        out.append(g.random_case(rng, "ce", int(rng.integers(1, 60)), int(rng.integers(2, 40)), labels))
    out.append(g.random_case(rng, "mse", int(rng.integers(1, 60)), int(rng.integers(1, 20))))
    for loss in g.ELEMENTWISE + g.LOG + ("ce",):
        logits = loss in ("bce", "focal", "categorical-focal") and rng.random() < 0.5
        cols = int(rng.integers(2 if loss in ("kl", "ce", "categorical-focal") else 1, 12))
        out.append(g.random_case(rng, loss, int(rng.integers(1, 30)), cols, from_logits=logits or loss == "cosine"))
    out.append(g.random_case(rng, "ce", int(rng.integers(1, 30)), int(rng.integers(2, 12)), "index", from_logits=False))
    out += [g.random_case(rng, loss, int(rng.integers(1, 30)), int(rng.integers(1, 12)), from_logits=False)
            for loss in g.SEGMENTATION]
    return out


@pytest.mark.parametrize("pick", [("keras", "float32", "index"), ("tf-keras", "bfloat16", "onehot")])
def test_a_csv_stream_in_blocks_gives_the_weighted_batchs_gradient(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str],
                                                                   pick: tuple[str, str, str]) -> None:
    """Batch mode over a CSV file read in blocks of 1,000 rows: the weighted mean's gradient rows are the golden
    ones (the probability rows' backprop blocks counted from the batch's first row)."""
    from lossgrad import cli, inputs

    rec = next(r for r in LONG if (r["convention"], r["dtype"], r["options"]["labels"]) == pick)
    y, p, w = _inputs(rec)
    classes = p.shape[1]
    targets = y[:, None] if y.ndim == 1 else y
    names = [f"y{i}" for i in range(targets.shape[1])] + [f"p{i}" for i in range(classes)] + ["w"]
    path = tmp_path / "batch.csv"
    np.savetxt(path, np.hstack([targets, p, w[:, None]]), delimiter=",", header=",".join(names), comments="",
               fmt="%.17g")
    monkeypatch.setattr(inputs, "BLOCK_BYTES", 1 << 16)
    monkeypatch.setattr(inputs, "BLOCK_ROWS", 1000)
    with pytest.raises(SystemExit) as e:
        cli.main(["ce", "--from-logits", "-c", rec["convention"], "--dtype", rec["dtype"], "-f", "csv", "--csv",
                  str(path), "--target-cols", ",".join(names[:targets.shape[1]]), "--pred-cols",
                  ",".join(names[targets.shape[1]:-1]), "--sample-weight", "w", "-o", str(tmp_path / "out.csv")])
    assert e.value.code == 0, capsys.readouterr().err
    header = (tmp_path / "out.csv").read_text().split("\n", 1)[0].split(",")
    rows = np.loadtxt(tmp_path / "out.csv", delimiter=",", skiprows=1)
    grad = rows[:, [header.index(f"grad_p{i}") for i in range(classes)]].astype(np.float32)
    assert _script().digest(grad) == rec["mean"]["grad"]
