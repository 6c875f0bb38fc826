"""PyTorch's reduced values over batches of more than 32,768 samples, recorded by scripts/golden_long_batches.py in
tests/golden/long_batches.json: torch.mean and torch.sum over all of a batch's losses, which lossgrad evaluates in
slices and sums as they come (lowp.TotalSum, Parts.value_fold), in memory and from tensor files in blocks; Keras'
and optax's values, and some of their losses and gradients, over such batches."""

from __future__ import annotations

import io
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

import lossgrad
from conftest import golden_script, live_rounds, lossgrad as run
from lossgrad import api, batch, cli, evaluation, inputs, lowp, reduction, tensor_run
from lossgrad.options import setup
from lossgrad.reduction import Accumulator

GOLDEN = Path(__file__).resolve().parent / "golden" / "long_batches.json"
DATA = json.loads(GOLDEN.read_text())


def _case(rec: dict) -> tuple:
    return rec["convention"], rec["loss"], rec["dtype"], rec["reduction"], *rec["shape"]


def _inputs(rec: dict) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """The record's inputs rebuilt from its seed, in the dtype, checked by their digest."""
    golden = golden_script("golden_long_batches")
    y, p, extra = golden.held_inputs(rec["seed"], _case(rec))
    assert golden.digest(y, p, *extra.values()) == rec["inputs"]
    return y, p, extra


def _run(rec: dict) -> lossgrad.Result:
    y, p, extra = _inputs(rec)
    name, options = golden_script("golden_long_batches").lossgrad_call(_case(rec), y, p, extra)
    return lossgrad.evaluate(name, y, p, **options)


def _same(value: object, recorded: str) -> bool:
    a, b = np.float32(value), np.float32(recorded)  # type: ignore[arg-type]
    return bool(a == b or (np.isnan(a) and np.isnan(b)))


@pytest.mark.parametrize("rec", DATA["records"], ids=[f"{r['convention']}-{r['loss']}-{r['dtype']}-{r['reduction']}-"
                                                      f"{'x'.join(map(str, r['shape']))}" for r in DATA["records"]])
def test_the_value_over_slices_is_pytorchs_over_the_whole_batch(rec: dict) -> None:
    r = _run(rec)
    assert r.warnings == []
    assert _same(r.value, rec["value"]), (r.value, rec["value"])


STEPS = [r for r in DATA["records"] if "grad" in r]


@pytest.mark.parametrize("rec", STEPS, ids=[f"{r['convention']}-{r['loss']}-{r['dtype']}-"
                                            f"{'x'.join(map(str, r['shape']))}" for r in STEPS])
def test_the_losses_and_gradient_over_a_long_batch(rec: dict) -> None:
    # optax's, and Keras' ce from logits of probability rows (TensorFlow's backprop in Eigen's blocks of the batch)
    golden = golden_script("golden_long_batches")
    y, p, extra = _inputs(rec)
    name, options = golden.lossgrad_call(_case(rec), y, p, extra)
    assert golden.digest(lossgrad.evaluate(name, y, p, **options).grad) == rec["grad"]
    assert golden.digest(lossgrad.evaluate(name, y, p, **(options | {"reduction": "none"})).losses) == rec["losses"]


def test_a_long_batchs_last_slice_has_the_rows_xla_hands_to_ynnpack(monkeypatch: pytest.MonkeyPatch) -> None:
    # a batch of 32,768 rows and fewer than 4,096 more: XLA computes probability rows under jit in bfloat16 in
    # YNNPACK's fusions from 4,096 rows, so a last slice of fewer would be its own loops' (the old rule, by elements)
    golden = golden_script("golden_long_batches")
    monkeypatch.setattr(evaluation, "least_rows", lambda width: max(33, -(-4096 // width)))
    short = [rec for rec in STEPS if 0 < rec["shape"][0] - 32768 < 4096 and rec["loss"] == "ce-probs"]
    assert len(short) == 1
    for rec in short:
        y, p, extra = _inputs(rec)
        name, options = golden.lossgrad_call(_case(rec), y, p, extra)
        assert golden.digest(lossgrad.evaluate(name, y, p, **options).grad) != rec["grad"]


def test_lossgrads_own_sum_is_apart_where_the_records_were_placed(monkeypatch: pytest.MonkeyPatch) -> None:
    assert DATA["versions"]["threads"] == lowp.THREADS
    # with lossgrad's own sum of the losses standing in (and a warning saying so), the placed records are apart
    monkeypatch.setattr(reduction.Slices, "folded", lambda self: None)
    sliced = [rec for rec in DATA["records"] if rec["shape"][0] >= 32768 + 4096]  # (evaluated in two slices or more)
    runs = [_run(rec) for rec in sliced]
    assert all(any(w.startswith("the reduced value is lossgrad's own sum") for w in r.warnings) for r in runs)
    apart = [not _same(r.value, rec["value"]) for r, rec in zip(runs, sliced, strict=True)]
    assert apart == [rec["placed"] for rec in sliced] and sum(apart) >= 28, apart


def test_a_tensor_file_in_blocks_gives_the_whole_batchs_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    rec = next(r for r in DATA["records"] if r["loss"] == "huber" and r["placed"])
    y, p, _ = _inputs(rec)
    np.save(tmp_path / "y.npy", y.astype(np.float32))
    np.save(tmp_path / "p.npy", p.astype(np.float32))
    # (blocks of 30,000 rows: the batch's 70,001 in three blocks, the last in one slice with the rows before it)
    monkeypatch.setattr(tensor_run, "BLOCK_BYTES", 8 * rec["shape"][1] * 30000)
    with pytest.raises(SystemExit) as e:
        cli.main(["huber", "--delta", "0.7", "-c", "torch", "--dtype", rec["dtype"], "-p", str(tmp_path / "p.npy"),
                  "-y", str(tmp_path / "y.npy"), "-o", str(tmp_path / "out.npz"), "-f", "json"])
    assert e.value.code == 0
    said = json.loads(capsys.readouterr().out)
    assert "warnings" not in said and _same(said["value"], rec["value"])


@pytest.mark.parametrize("half", [None, np.float16])
@pytest.mark.parametrize("size", [1, 100, 32768, 32769, 70001, 250003])
def test_torch_sum_taken_in_pieces_is_the_sum_of_the_whole(size: int, half: object) -> None:
    # TotalSum fed in pieces of any length (a tensor file's blocks) sums as over the array at once: the cascade's
    # levels and the threads' halves carried across the cuts
    rng = np.random.default_rng(size)
    x = (rng.standard_normal(size) * 100).astype(np.float32)
    x = x if half is None else x.astype(half).astype(np.float32)
    whole = np.float32(lowp.total_sum(x, half))
    for cuts in ([], [size // 2], sorted(rng.integers(0, size, 7)), list(range(1000, size, 4097))):
        s = lowp.TotalSum(size, half)
        for piece in np.split(x, cuts):
            s.add(piece)
        assert np.float32(s.total()).tobytes() == whole.tobytes(), cuts


def test_torch_sum_of_a_float32_row_worked_by_hand() -> None:
    # 2**24 and 34 ones: 4 vectors of 8 lanes in 4 interleaved cascades (one each), then, from 0, the 3 leftover
    # elements and the 8 lanes. Float32's step at 2**24 is 2, ties to even. Lane 0: 2**24 + 1 + 1 + 1 one at a
    # time stays 2**24; lanes 1 to 7 hold 4 each. The final sum: 3, + 2**24 = 2**24 + 4 (the even neighbour),
    # + 7 · 4 = 2**24 + 32 (a sum one by one from the left would be 2**24; the exact sum is 2**24 + 34).
    x = np.ones((1, 35), dtype=np.float32)
    x[0, 0] = 2.0 ** 24
    assert lowp.torch_sum(x)[0] == np.float32(2 ** 24 + 32)


FRAMEWORKS = {"torch": ("torch",), "tensorflow": ("keras", "tf-keras"), "optax": ("optax", "optax-nojit")}
ROWS_OF_ONE = ("mse", "mae", "huber", "smooth-l1", "bce-logits", "bce-probs", "poisson", "gaussian-nll",
               "margin-ranking", "focal", "triplet", "cosine-embedding")


@pytest.mark.parametrize("framework", sorted(FRAMEWORKS))
def test_fresh_long_batches_against_live_frameworks(framework: str, live_rng: np.random.Generator) -> None:
    # every case's loss on fresh inputs and lengths: lossgrad's value is the framework's, without a warning (live)
    golden = golden_script("golden_long_batches", framework)
    if framework == "torch":
        import torch

        torch.set_num_threads(lowp.THREADS)
    cases = [c for c in golden.CASES if c[0] in FRAMEWORKS[framework]]
    rng = live_rng
    for i in range(live_rounds(4, 40)):
        conv, loss, dtype, reduction, _, _ = cases[int(rng.integers(len(cases)))]
        # (probability rows of one class hold one target throughout, which XLA folds into its kernels: warned)
        width = int(rng.integers(1 if loss in ROWS_OF_ONE else 2, 5 if loss != "ce-index" else 12))
        case = (conv, loss, dtype, reduction, int(rng.integers(33000, 80000)), width)
        y, p, extra = golden.held_inputs(int(rng.integers(2 ** 31)), case)
        name, options = golden.lossgrad_call(case, y, p, extra)
        r = lossgrad.evaluate(name, y, p, **options)
        want = golden.framework_value(case, y, p, extra)
        assert r.warnings == [] and _same(r.value, str(want)), (i, case, r.value, want)


def _csv_file(tmp_path: Path, rec: dict) -> Path:
    y, p, _ = _inputs(rec)
    path = tmp_path / "batch.csv"
    width = rec["shape"][1]
    header = ",".join([f"y{i}" for i in range(width)] + [f"p{i}" for i in range(width)])
    np.savetxt(path, np.hstack([y, p]), delimiter=",", header=header, comments="", fmt="%.9g")
    return path


def _value(err: str) -> str:
    found = re.search(r"value=(\S+)", err)
    assert found is not None, err
    return found.group(1)


HUBER = ["huber", "--delta", "0.7", "-c", "torch", "--dtype", "float32", "-f", "csv"]


@pytest.mark.parametrize("source", ["file", "pipe"])
def test_a_csv_stream_gives_the_whole_batchs_value(tmp_path: Path, source: str) -> None:
    # batch mode: a file's rows are counted beforehand, a pipe's slices are held until it ends (up to HELD_VALUES)
    rec = next(r for r in DATA["records"] if r["loss"] == "huber" and r["placed"])
    path = _csv_file(tmp_path, rec)
    r = run(*HUBER, "-o", tmp_path / "out.csv", *(["--csv", path] if source == "file" else []),
            input=path.read_text() if source == "pipe" else None)
    assert r.code == 0 and "warning" not in r.err, r.err
    assert _same(_value(r.err), rec["value"])


@pytest.mark.parametrize("patched", ["blocks", "held"])
def test_a_csv_file_gives_the_whole_batchs_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str], patched: str) -> None:
    # in blocks of about 1,000 rows (70 of them); and with at most 1,000 values held, as PyTorch's sum over a file's
    # rows (counted beforehand) is taken as they come, holding nothing
    rec = next(r for r in DATA["records"] if r["loss"] == "huber" and r["placed"])
    path = _csv_file(tmp_path, rec)
    if patched == "blocks":
        monkeypatch.setattr(inputs, "BLOCK_BYTES", 1 << 16)
        monkeypatch.setattr(inputs, "BLOCK_ROWS", 1000)
    else:
        monkeypatch.setattr(batch, "HELD_VALUES", 1000)
    with pytest.raises(SystemExit) as e:
        cli.main([*HUBER, "--csv", str(path), "-o", str(tmp_path / "out.csv")])
    assert e.value.code == 0
    err = capsys.readouterr().err
    assert "warning" not in err and _same(_value(err), rec["value"])


@pytest.mark.parametrize("spare", [0, -1])
def test_a_stream_holds_its_slices_up_to_a_limit(spare: int) -> None:
    # a stream of unknown length holds its slices' losses until it ends (up to HELD_VALUES): the value is PyTorch's;
    # beyond what it may hold, lossgrad's sum, with a warning that says why
    rec = next(r for r in DATA["records"] if r["loss"] == "huber" and r["placed"])
    y, p, _ = _inputs(rec)
    s = setup("huber", convention="torch", dtype="float32", delta=0.7)
    acc = Accumulator()
    acc.slices = reduction.Slices(None, y.size + spare)
    api.accumulate(s, acc, evaluation.evaluate(s, y, p))
    r = api.summary(s, acc, False)
    r.value = api.batch_value(s, acc.slices, acc.finish("mean", np.float32)[1], r)
    if spare == 0:
        assert r.warnings == [] and _same(r.value, rec["value"])
    else:
        assert any("not known beforehand" in w for w in r.warnings) and not _same(r.value, rec["value"])


def test_exact_in_a_half_dtype_rounds_the_whole_batchs_mean_once() -> None:
    # `exact` in bfloat16: the mean of the unrounded losses over every slice, rounded once (no warning); the
    # formula here is mse's, (p − y)², summed exactly (math.fsum) in float64 and rounded to bfloat16
    import math

    import ml_dtypes

    rng = np.random.default_rng(12)
    y = rng.standard_normal((70001, 1)).astype(ml_dtypes.bfloat16).astype(np.float64)
    p = rng.standard_normal((70001, 1)).astype(ml_dtypes.bfloat16).astype(np.float64)
    r = lossgrad.evaluate("mse", y, p, convention="exact", dtype="bfloat16")
    want = np.float64(math.fsum(((p - y) ** 2).ravel()) / y.size).astype(ml_dtypes.bfloat16)
    assert r.warnings == [] and r.value == float(want)


@pytest.mark.parametrize("held", [None, 1000])
def test_a_tensor_file_holds_what_a_keras_value_needs_up_to_a_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str],
                                                                    held: int | None) -> None:
    # Keras' value over a long batch joins the slices' per-sample losses, in blocks of a tensor file too; beyond
    # TENSOR_HELD values, lossgrad's own sum, with a warning
    rec = next(r for r in DATA["records"] if r["convention"] == "keras" and r["loss"] == "mse")
    y, p, _ = _inputs(rec)
    np.save(tmp_path / "y.npy", y.astype(np.float32))
    np.save(tmp_path / "p.npy", p.astype(np.float32))
    monkeypatch.setattr(tensor_run, "BLOCK_BYTES", 8 * rec["shape"][1] * 30000)
    if held is not None:
        monkeypatch.setattr(tensor_run, "TENSOR_HELD", held)
    with pytest.raises(SystemExit) as e:
        cli.main(["mse", "-c", "keras", "--dtype", rec["dtype"], "-p", str(tmp_path / "p.npy"),
                  "-y", str(tmp_path / "y.npy"), "-o", str(tmp_path / "out.npz"), "-f", "json"])
    assert e.value.code == 0
    said = json.loads(capsys.readouterr().out)
    if held is None:
        assert "warnings" not in said and _same(said["value"], rec["value"])
    else:
        assert any("lossgrad's own sum" in w for w in said["warnings"]) and not _same(said["value"], rec["value"])


@pytest.mark.parametrize("whole", [True, False])
def test_a_tensor_file_of_wide_probability_rows_is_read_in_blocks_xla_computes_alike(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], whole: bool) -> None:
    # optax's ce of probability rows in bfloat16: XLA computes 4,096 rows or more in YNNPACK's fusions, so a tensor
    # file's blocks of 300 classes (3,488 rows by BLOCK_BYTES) are taken 4,096 rows at least; blocks of fewer rows
    # (undone: whole False) have every gradient row of the first block apart
    golden = golden_script("golden_long_batches")
    rec = next(r for r in STEPS if r["shape"] == [10000, 300])
    y, p, _ = _inputs(rec)
    np.save(tmp_path / "y.npy", y.astype(np.float32))
    np.save(tmp_path / "p.npy", p.astype(np.float32))
    if not whole:
        monkeypatch.setattr(tensor_run, "_rows_to_ynnpack", lambda s, g: False)
    with pytest.raises(SystemExit) as e:
        cli.main(["ce", "--from-logits", "--labels", "onehot", "-c", "optax", "--dtype", "bfloat16", "-p",
                  str(tmp_path / "p.npy"), "-y", str(tmp_path / "y.npy"), "-o", str(tmp_path / "out.npz"), "-f",
                  "json"])
    assert e.value.code == 0
    said = json.loads(capsys.readouterr().out)
    same = golden.digest(np.load(tmp_path / "out.npz")["grad"]) == rec["grad"]
    if whole:
        assert same and "warnings" not in said and _same(said["value"], rec["value"])
    else:  # (the blocks computed otherwise cannot be summed as one: lossgrad's sum, said)
        assert not same and any("lossgrad's own sum" in w for w in said["warnings"])


def _tensor_run(tmp_path: Path, args: list[str], y: np.ndarray, p: np.ndarray) -> dict[str, np.ndarray]:
    """lossgrad on tensor files of y and p (float32), its written arrays."""
    np.save(tmp_path / "y.npy", y.astype(np.float32))
    np.save(tmp_path / "p.npy", p.astype(np.float32))
    with pytest.raises(SystemExit) as e:
        cli.main([*args, "-p", str(tmp_path / "p.npy"), "-y", str(tmp_path / "y.npy"), "-o", str(tmp_path / "out.npz"),
                  "-f", "json"])
    assert e.value.code == 0
    with np.load(tmp_path / "out.npz") as out:
        return {k: out[k] for k in out.files}


@pytest.mark.parametrize("align", [8, 1])
def test_a_tensor_files_blocks_hold_whole_packets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str], align: int) -> None:
    # TensorFlow's element-wise kernels take the whole tensor in packets of 8, the scalar remainder at its end: blocks
    # of about 997 rows of 3 values are cut to 992, whole packets, and the file's losses and gradient are the batch's
    # in memory; blocks of 997 rows (undone: align 1) end in remainders of their own, and elements are apart
    rng = np.random.default_rng(3)
    y = rng.standard_normal((40000, 3)).astype(np.float32).astype(np.float64)
    p = (rng.standard_normal((40000, 3)) / 4).astype(np.float32).astype(np.float64)
    monkeypatch.setattr(tensor_run, "BLOCK_BYTES", 8 * 3 * 997)
    monkeypatch.setattr(tensor_run, "ALIGN_ROWS", align)
    out = _tensor_run(tmp_path, ["logcosh", "-c", "keras", "--dtype", "float32"], y, p)
    capsys.readouterr()
    r = lossgrad.evaluate("logcosh", y, p, convention="keras", dtype="float32")
    same = [np.array_equal(out[k], np.asarray(getattr(r, k), np.float32).reshape(out[k].shape))
            for k in ("losses", "grad")]
    assert same == ([True, True] if align == 8 else [False, False]), same


KERAS_STEPS = [r for r in STEPS if r["convention"] in ("keras", "tf-keras")]


@pytest.mark.parametrize("how", ["slices", "end"])
def test_kerass_backprop_blocks_are_the_whole_batchs(how: str) -> None:
    # TensorFlow's backprop of ce over probability rows takes e^s in Eigen's blocks of about 4,507 coefficients,
    # counted from the batch's first row, the last ending at its last row, each block's last (size mod 8) elements
    # through glibc's expf: counted from each slice of 32,768 rows instead, or with the last block not ended at the
    # batch's end (a stream's length unknown), the records whose seed was chosen so are apart (float32; a half
    # dtype's rounding hides them)
    golden = golden_script("golden_long_batches")
    apart = []
    for rec in KERAS_STEPS:
        y, p, extra = _inputs(rec)
        name, options = golden.lossgrad_call(_case(rec), y, p, extra)
        with golden.blocks_undone(how):
            apart.append(golden.digest(lossgrad.evaluate(name, y, p, **options).grad) != rec["grad"])
    assert apart == [rec["blocks"] for rec in KERAS_STEPS] and sum(apart) >= 4, apart


def test_fresh_kerass_gradients_of_probability_rows_against_tensorflow(live_rng: np.random.Generator) -> None:
    # ce from logits of probability rows over fresh batches of 33,000 to 80,000 rows: lossgrad's losses and gradient
    # are TensorFlow's (live)
    golden = golden_script("golden_long_batches", "tensorflow")
    rng = live_rng
    for i in range(live_rounds(2, 20)):
        conv, reduction = ("keras", "tf-keras")[int(rng.integers(2))], ("sum", "mean")[int(rng.integers(2))]
        case = (conv, "ce-probs", "float32", reduction, int(rng.integers(33000, 80000)), int(rng.integers(2, 80)))
        y, p, extra = golden.held_inputs(int(rng.integers(2 ** 31)), case)
        name, options = golden.lossgrad_call(case, y, p, extra)
        r = lossgrad.evaluate(name, y, p, **options)
        losses = lossgrad.evaluate(name, y, p, **(options | {"reduction": "none"})).losses
        mine = {"losses": golden.digest(losses), "grad": golden.digest(r.grad)}
        assert mine == golden.keras_step(case, y, p), (i, case)

def _ce_rec(shape: list[int]) -> dict:
    return next(r for r in KERAS_STEPS if r["shape"] == shape)


CE = ["ce", "--from-logits", "--labels", "onehot"]


@pytest.mark.parametrize("shape", [[40001, 10], [70001, 7]])
@pytest.mark.parametrize("placed", [True, False])
def test_a_tensor_file_in_blocks_has_kerass_gradient(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str], shape: list[int],
                                                     placed: bool) -> None:
    # a tensor file read in blocks of 1,000 rows: each block's kernels are told where it lies in the batch, and the
    # written losses and gradient are TensorFlow's (the in-memory batch's: the records'); each block computed as a
    # batch of its own (placed False), the gradient is apart
    golden = golden_script("golden_long_batches")
    rec = _ce_rec(shape)
    y, p, _ = _inputs(rec)
    monkeypatch.setattr(tensor_run, "BLOCK_BYTES", 8 * shape[1] * 1003)  # (blocks of 1,000 rows: whole packets)
    if not placed:
        whole = tensor_run.evaluate
        monkeypatch.setattr(tensor_run, "evaluate", lambda s, y, p, w, extra, place: whole(s, y, p, w, extra))
    out = _tensor_run(tmp_path, [*CE, "-c", rec["convention"], "--dtype", rec["dtype"], "-r", rec["reduction"]], y, p)
    said = json.loads(capsys.readouterr().out)
    assert "warnings" not in said and _same(said["value"], rec["value"])
    assert golden.digest(out["losses"]) == rec["losses"]
    assert (golden.digest(out["grad"]) == rec["grad"]) == placed


@pytest.mark.parametrize("shape", [[40001, 10], [70001, 7]])
@pytest.mark.parametrize("source", ["file", "pipe"])
@pytest.mark.parametrize("placed", [True, False])
def test_a_csv_stream_of_probability_rows_has_kerass_gradient(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str], shape: list[int],
                                                              source: str, placed: bool) -> None:
    # batch mode in blocks of about 1,000 rows: each block's kernels are told where it lies in the batch and the
    # batch's rows, a file's counted beforehand, a pipe's known once it has ended (its rows spooled until then);
    # told only where each block starts (placed False), the batch's last block is not ended at its last row and
    # the gradient is apart, but for a pipe's mean (spooled for its N, and evaluated again with the rows known)
    golden = golden_script("golden_long_batches")
    rec = _ce_rec(shape)
    path = _csv_file(tmp_path, rec)
    monkeypatch.setattr(inputs, "BLOCK_BYTES", 1 << 16)
    monkeypatch.setattr(inputs, "BLOCK_ROWS", 1000)
    if not placed:
        monkeypatch.setattr(batch, "placed", lambda s: False)
    if source == "pipe":
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(path.read_bytes())))
    with pytest.raises(SystemExit) as e:
        cli.main([*CE, "-c", rec["convention"], "--dtype", rec["dtype"], "-r", rec["reduction"], "-f", "csv",
                  "--csv", str(path) if source == "file" else "-", "-o", str(tmp_path / "out.csv")])
    assert e.value.code == 0
    err = capsys.readouterr().err
    assert "warning" not in err and _same(_value(err), rec["value"])
    rows = np.loadtxt(tmp_path / "out.csv", delimiter=",", skiprows=1)
    assert (golden.digest(rows[:, 1:]) == rec["grad"]) == (placed or (source, rec["reduction"]) == ("pipe", "mean"))
