"""PyTorch's gradients over batches of more than 32,768 samples whose elementwise kernels end each thread's part of
the whole batch in a scalar loop, recorded by scripts/golden_torch_tails.py in tests/golden/torch_tails.json: in
memory (evaluated in slices), from tensor files in blocks and from CSV files, each slice told where it lies."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import golden_script, live_rounds
from lossgrad import cli, lowp, tensor_run

GOLDEN = Path(__file__).resolve().parent / "golden" / "torch_tails.json"
DATA = json.loads(GOLDEN.read_text())


def _case(rec: dict) -> tuple:
    return rec["loss"], rec["dtype"], *rec["shape"]


def _inputs(rec: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    golden = golden_script("golden_torch_tails")
    y, z, pw = golden.held_inputs(rec["seed"], _case(rec))
    assert golden.digest(y, z, pw) == rec["inputs"]
    return y, z, pw


def _grad(rec: dict) -> str:
    golden = golden_script("golden_torch_tails")
    return str(golden.digest(golden.lossgrads_grad(_case(rec), *_inputs(rec))))


@pytest.mark.parametrize("rec", DATA["records"], ids=[f"{r['loss']}-{r['dtype']}-{'x'.join(map(str, r['shape']))}"
                                                      for r in DATA["records"]])
def test_the_gradient_over_slices_is_pytorchs_over_the_whole_batch(rec: dict) -> None:
    assert _grad(rec) == rec["grad"]


def test_each_slice_as_a_batch_of_its_own_is_apart_where_the_records_were_placed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert DATA["versions"]["threads"] == lowp.THREADS
    tails = lowp.tails
    monkeypatch.setattr(lowp, "tails", lambda shape, width, place=None: tails(shape, width))
    apart = [_grad(rec) != rec["grad"] for rec in DATA["records"]]
    assert apart == [rec["placed"] for rec in DATA["records"]] and sum(apart) >= 6, apart


def _files(tmp_path: Path, rec: dict) -> list[str]:
    y, z, _ = _inputs(rec)
    np.save(tmp_path / "y.npy", y.astype(np.float32))
    np.save(tmp_path / "z.npy", z.astype(np.float32))
    return ["--pred", str(tmp_path / "z.npy"), "--target", str(tmp_path / "y.npy")]


@pytest.mark.parametrize("loss", ["bce", "huber", "smooth-l1", "focal"])
def test_a_tensor_file_in_blocks_gives_the_whole_batchs_gradient(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str],
                                                                 loss: str) -> None:
    rec = next(r for r in DATA["records"] if r["loss"] == loss and r["dtype"] == "float32" and r["placed"])
    golden = golden_script("golden_torch_tails")
    options = [f"--{k.replace('_', '-')}" if v is True else f"--{k.replace('_', '-')}={v}"
               for k, v in golden.OPTIONS[loss].items()]
    monkeypatch.setattr(tensor_run, "BLOCK_BYTES", 8 * rec["shape"][1] * 20000)  # (blocks of 20,000 rows)
    with pytest.raises(SystemExit) as e:
        cli.main([loss, *_files(tmp_path, rec), *options, "-c", "torch", "--dtype", "float32", "-o",
                  str(tmp_path / "out.npz"), "-f", "json"])
    assert e.value.code == 0, capsys.readouterr().err
    assert golden.digest(np.load(tmp_path / "out.npz")["grad"]) == rec["grad"]


def test_a_csv_file_in_blocks_gives_the_whole_batchs_gradient(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    from lossgrad import inputs

    rec = next(r for r in DATA["records"] if r["loss"] == "bce" and r["shape"] == [70001, 3])
    y, z, _ = _inputs(rec)
    path = tmp_path / "batch.csv"
    header = ",".join([f"y{i}" for i in range(3)] + [f"p{i}" for i in range(3)])
    np.savetxt(path, np.hstack([y, z]), delimiter=",", header=header, comments="", fmt="%.9g")
    monkeypatch.setattr(inputs, "BLOCK_BYTES", 1 << 16)
    monkeypatch.setattr(inputs, "BLOCK_ROWS", 1000)  # (70 blocks)
    with pytest.raises(SystemExit) as e:
        cli.main(["bce", "--from-logits", "-c", "torch", "--dtype", "float32", "-f", "csv", "--csv", str(path), "-o",
                  str(tmp_path / "out.csv")])
    assert e.value.code == 0, capsys.readouterr().err
    names = (tmp_path / "out.csv").read_text().split("\n", 1)[0].split(",")
    rows = np.loadtxt(tmp_path / "out.csv", delimiter=",", skiprows=1)
    grad = rows[:, [names.index(f"grad_p{i}") for i in range(3)]].astype(np.float32)
    assert golden_script("golden_torch_tails").digest(grad) == rec["grad"]


def test_fresh_batches_against_live_pytorch(live_rng: np.random.Generator) -> None:
    golden = golden_script("golden_torch_tails", "torch")
    import torch

    torch.set_num_threads(lowp.THREADS)
    for i in range(live_rounds(3, 30)):
        loss, dtype, _, _ = golden.CASES[int(live_rng.integers(len(golden.CASES)))]
        case = (loss, dtype, int(live_rng.integers(33000, 90000)), int(live_rng.integers(1, 8)))
        y, z, pw = golden.held_inputs(int(live_rng.integers(2 ** 31)), case)
        got, want = golden.lossgrads_grad(case, y, z, pw), golden.torch_grad(case, y, z, pw)
        assert np.array_equal(got.reshape(want.shape), want), (i, case, int((got.reshape(want.shape) != want).sum()))
