"""Batch mode under keras and tf-keras: TensorFlow's kernels take the whole batch in packets of 8 values (their
scalar remainder at its end; the reducer's offsets in rows of more than 8,192 outputs), so a CSV stream's blocks,
cut where its text falls, are regrouped into blocks of a multiple of 8 rows (inputs.whole_packets), each row keeping
its line and its kept text."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import lossgrad
from lossgrad import cli, inputs


def _stream(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str],
            block_bytes: int) -> np.ndarray:
    monkeypatch.setattr(inputs, "BLOCK_BYTES", block_bytes)
    monkeypatch.setattr(inputs, "BLOCK_ROWS", 1)
    with pytest.raises(SystemExit) as e:
        cli.main([*argv, "-f", "csv", "-o", str(tmp_path / "out.csv")])
    assert e.value.code == 0, capsys.readouterr().err
    return np.loadtxt(tmp_path / "out.csv", delimiter=",", skiprows=1, ndmin=2)


@pytest.mark.parametrize("case", ["logcosh", "ce-wide"])
def test_a_csv_stream_in_blocks_gives_the_batchs_own_numbers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str], case: str) -> None:
    # logcosh: its e^x in packets, the C library's at the batch's last values; ce over 9,001 classes: each row's sum
    # starts at its offset in the whole batch. Blocks of about 16 KB of text (a few rows each) start anywhere
    rng = np.random.default_rng(9)
    rows, width = (4001, 3) if case == "logcosh" else (40, 9001)
    y = rng.normal(size=(rows, width)) if case == "logcosh" else rng.dirichlet(np.ones(width), rows)
    p = rng.normal(size=(rows, width)) * 3
    y, p = y.astype(np.float32).astype(np.float64), p.astype(np.float32).astype(np.float64)
    path = tmp_path / "batch.csv"
    np.savetxt(path, np.hstack([y, p]), delimiter=",", fmt="%.9g",
               header=",".join([f"y{i}" for i in range(width)] + [f"p{i}" for i in range(width)]), comments="")
    loss, more = ("logcosh", []) if case == "logcosh" else ("ce", ["--from-logits"])
    argv = [loss, *more, "-c", "keras", "--dtype", "float32", "-r", "sum", "--csv", str(path)]
    got = _stream(tmp_path, monkeypatch, capsys, argv, 1 << 14 if case == "logcosh" else 1 << 20)
    want = lossgrad.evaluate(loss, y, p, convention="keras", dtype="float32", reduction="sum",
                             **({"from_logits": True, "labels": "onehot"} if case != "logcosh" else {}))
    assert np.array_equal(got[:, 1:].astype(np.float32), np.asarray(want.grad, dtype=np.float32))
    assert np.array_equal(got[:, 0].astype(np.float32), np.asarray(want.losses, dtype=np.float32).reshape(-1))


def test_regrouped_rows_keep_their_lines_and_kept_text() -> None:
    # 3 blocks of 5, 6 and 4 rows as blocks of 8 and 7: a row's line and kept text are its own
    lines = [f"r{i},{i % 2},{0.1 * i:.1f}" for i in range(15)]
    data = np.array([[0, i % 2, 0.1 * i] for i in range(15)])
    whole = inputs.Chunk(data, "\n".join(lines).encode(), 2, "rows.csv", ",", [[f"r{i}" for i in range(15)]])
    parts = [inputs.Rows([(whole, a, b)]) for a, b in ((0, 5), (5, 11), (11, 15))]
    blocks = list(inputs.whole_packets(parts, 8))
    assert [b.data.shape[0] for b in blocks] == [8, 7]
    assert blocks[1].line(0) == whole.line(8) and blocks[1].where(2, 2) == whole.where(10, 2)
    assert blocks[1].kept is not None and blocks[1].kept[0][:2] == ["r8", "r9"]
    assert np.array_equal(np.concatenate([b.data for b in blocks]), whole.data)
