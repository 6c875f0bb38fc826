"""A long batch is computed in blocks and slices, and its rows as the framework computes them in the whole batch:
XLA sums a row of a short batch (32 rows or fewer, or fewer than 4096 elements) in another order, so a short last
block or slice goes with the one before it."""

import io
import json

import numpy as np
import pytest

import lossgrad
from lossgrad import cli, evaluation, inputs, tensor_run
from lossgrad.lowp_xla_kl import kl_jit32

ROWS, CLASSES = 82, 6


def _batch() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(4)
    y = rng.dirichlet(np.ones(CLASSES), ROWS).astype(np.float32)
    p = rng.dirichlet(np.ones(CLASSES), ROWS).astype(np.float32)
    return y, p


def test_spans_join_a_short_last_span_to_the_one_before():
    assert evaluation.spans(13, 5, 3) == [(0, 5), (5, 10), (10, 13)]
    assert evaluation.spans(12, 5, 3) == [(0, 5), (5, 12)]  # (2 rows left: joined)
    assert evaluation.spans(2, 5, 3) == [(0, 2)]  # (the batch itself may be short)
    assert evaluation.spans(0, 5, 3) == [(0, 1)]
    # 4096 rows whatever their width (XLA hands that many probability rows to YNNPACK), which also covers 4096
    # elements (683 rows of 6) and more than 32 rows (by hand)
    assert evaluation.least_rows(6) == 4096 and evaluation.least_rows(1000) == 4096


def test_the_rows_of_a_short_batch_are_summed_otherwise():
    # what the joining is for: the last 2 rows alone (a chain of multiply-adds) against the same rows in the batch
    # of 82 (their products stored and added in XLA's order), optax's kl under jit in float32
    y, p = _batch()
    whole, _, _, _ = kl_jit32(y, p, False, False)
    alone, _, _, _ = kl_jit32(y[-2:], p[-2:], False, False)
    assert not np.array_equal(whole[-2:], alone)


def test_a_tensor_runs_short_last_block_is_computed_with_the_batch(tmp_path, monkeypatch, capsys):
    y, p = _batch()
    np.save(tmp_path / "y.npy", y)
    np.save(tmp_path / "p.npy", p)
    held = lossgrad.evaluate("kl", y.astype(float), p.astype(float), convention="optax", dtype="float32")
    monkeypatch.setattr(tensor_run, "BLOCK_BYTES", 8 * CLASSES * 40)  # (blocks of 40 rows: 40, then 42)
    with pytest.raises(SystemExit) as e:
        cli.main(["kl", "-c", "optax", "--dtype", "float32", "-p", str(tmp_path / "p.npy"), "-y",
                  str(tmp_path / "y.npy"), "-o", str(tmp_path / "out.npz"), "-f", "json"])
    assert e.value.code == 0
    json.loads(capsys.readouterr().out)
    out = np.load(tmp_path / "out.npz")
    np.testing.assert_array_equal(out["losses"], held.losses)
    np.testing.assert_array_equal(out["grad"], held.grad)


def _csv(tmp_path):
    y, p = _batch()
    path = tmp_path / "kl.csv"
    path.write_text("".join(",".join(map(repr, [*a, *b])) + "\n" for a, b in zip(y.tolist(), p.tolist(),
                                                                             strict=True)))
    return path


def test_a_files_short_last_block_is_read_with_the_block_before(tmp_path):
    text = _csv(tmp_path).read_bytes()
    block = len(text) * 45 // 100  # (a block, another, and a tenth of the file left: read with the second)
    sized = inputs.CsvReader(io.BytesIO(text), "kl.csv", block_bytes=block, size=len(text))
    blocks = [len(c.data) for c in sized.chunks()]
    assert len(blocks) == 2 and sum(blocks) == ROWS
    piped = inputs.CsvReader(io.BytesIO(text), "kl.csv", block_bytes=block)  # (a pipe's end is not known)
    assert len(list(piped.chunks())) == 3


def test_a_csv_batchs_short_last_block_is_computed_with_the_batch(tmp_path, monkeypatch, capsys):
    y, p = _batch()
    held = lossgrad.evaluate("kl", y.astype(float), p.astype(float), convention="optax", dtype="float32")
    path = _csv(tmp_path)
    monkeypatch.setattr(inputs, "BLOCK_ROWS", 40)  # (blocks of about 40 rows: 40, then the other 42)
    monkeypatch.setattr(inputs, "BLOCK_BYTES", path.stat().st_size * 40 // ROWS)
    with pytest.raises(SystemExit) as e:
        cli.main(["kl", "-c", "optax", "--dtype", "float32", "--csv", str(path), "--target-cols",
                  f"0:{CLASSES}", "--pred-cols", f"{CLASSES}:{2 * CLASSES}", "-f", "csv"])
    assert e.value.code == 0
    rows = np.loadtxt(io.StringIO(capsys.readouterr().out), delimiter=",", skiprows=1)
    np.testing.assert_array_equal(rows[:, 0], held.losses)
    np.testing.assert_array_equal(rows[:, 1:], held.grad)
