"""ctc's reduced value over batches of more than 32,768 sequences, recorded by scripts/golden_long_ctc.py in
tests/golden/long_ctc.json: PyTorch's torch.mean (or sum) of the per-sequence losses over target lengths, Keras 3's
reduce_sum and optax's jnp.mean or jnp.sum, each over the whole batch, which lossgrad evaluates in slices and sums
over all of them (lowp.Summed, losses.base.Joined)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import golden_script, live_rounds
from lossgrad import lowp, reduction

GOLDEN = Path(__file__).resolve().parent / "golden" / "long_ctc.json"
DATA = json.loads(GOLDEN.read_text())


def _case(rec: dict) -> tuple:
    return rec["convention"], rec["dtype"], rec["reduction"], rec["shape"][0], rec["shape"][2], rec["jit"]


def _value(rec: dict) -> float:
    """lossgrad's value of the record's batch, rebuilt from its seed and checked by its digest."""
    golden = golden_script("golden_long_ctc")
    x, labels, lengths = golden.held_inputs(rec["seed"], _case(rec))
    assert golden.digest(x, labels, lengths) == rec["inputs"]
    return golden.lossgrads_value(_case(rec), x, labels, lengths)


def _ids(records: list[dict]) -> list[str]:
    return [f"{r['convention']}-{r['dtype']}-{r['reduction']}-{r['shape'][0]}-{r['jit']}" for r in records]


@pytest.mark.parametrize("rec", DATA["records"], ids=_ids(DATA["records"]))
def test_the_value_over_slices_is_the_frameworks_over_the_whole_batch(rec: dict) -> None:
    assert _value(rec) == float(rec["value"])


def test_lossgrads_own_sum_is_apart_where_the_records_were_placed(monkeypatch: pytest.MonkeyPatch) -> None:
    assert DATA["versions"]["threads"] == lowp.THREADS
    # with lossgrad's own sum of the losses standing in, the placed records are apart
    monkeypatch.setattr(reduction.Slices, "folded", lambda self: None)
    apart = [_value(rec) != float(rec["value"]) for rec in DATA["records"]]
    assert apart == [rec["placed"] for rec in DATA["records"]] and sum(apart) >= 8, apart


FRAMEWORKS = {"torch": "torch", "tensorflow": "keras", "jax": "optax"}


@pytest.mark.parametrize("framework", sorted(FRAMEWORKS))
def test_fresh_long_batches_against_live_frameworks(framework: str, live_rng: np.random.Generator) -> None:
    # the cases' conventions, dtypes and reductions on fresh inputs and lengths: lossgrad's value is the framework's
    golden = golden_script("golden_long_ctc", framework)
    if framework == "torch":
        import torch

        torch.set_num_threads(lowp.THREADS)
    cases = [c for c in golden.CASES if c[0] == FRAMEWORKS[framework]]
    rng = live_rng
    for i in range(live_rounds(2, 20)):
        conv, dtype, reduction_, _, _, jit = cases[int(rng.integers(len(cases)))]
        case = (conv, dtype, reduction_, int(rng.integers(33000, 80000)), int(rng.integers(3, 7)), jit)
        x, labels, lengths = golden.held_inputs(int(rng.integers(2 ** 31)), case)
        got = golden.lossgrads_value(case, x, labels, lengths)
        want = {"torch": golden.torch_value, "keras": golden.keras_value, "optax": golden.optax_value}[conv](
            case, x, labels, lengths)
        assert got == want, (i, case, got, want)


@pytest.mark.parametrize("convention", ["torch", "optax", "keras"])
def test_a_tensor_file_in_blocks_gives_the_whole_batchs_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str],
                                                              convention: str) -> None:
    from lossgrad import cli, tensor_run

    rec = next(r for r in DATA["records"] if r["convention"] == convention and r["dtype"] == "float32")
    golden = golden_script("golden_long_ctc")
    x, labels, lengths = golden.held_inputs(rec["seed"], _case(rec))
    np.save(tmp_path / "x.npy", x.astype(np.float32))  # ([B, T, C])
    np.save(tmp_path / "y.npy", labels)
    np.save(tmp_path / "tl.npy", lengths)
    monkeypatch.setattr(tensor_run, "BLOCK_BYTES", 8 * x[0].size * 20000)  # (blocks of 20,000 sequences)
    argv = ["ctc", "--pred", str(tmp_path / "x.npy"), "--target", str(tmp_path / "y.npy"), "--target-lengths",
            str(tmp_path / "tl.npy"), "--batch-first", "-c", convention, "--dtype", "float32", "--reduction",
            rec["reduction"], "-o", str(tmp_path / "out.npz"), "-f", "json"]
    with pytest.raises(SystemExit) as e:
        cli.main(argv + ([] if convention == "torch" else ["--from-logits"]))
    out = capsys.readouterr()
    assert e.value.code == 0, out.err
    assert json.loads(out.out)["value"] == float(rec["value"]) and "own sum" not in out.err
    monkeypatch.setattr(reduction.Slices, "folded", lambda self: None)  # (in blocks indeed: without the fold, apart)
    with pytest.raises(SystemExit):
        cli.main(argv + ([] if convention == "torch" else ["--from-logits"]))
    out = capsys.readouterr()
    assert json.loads(out.out)["value"] != float(rec["value"]) and "lossgrad's own sum" in out.err
