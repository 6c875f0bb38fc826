"""PyTorch's class-weighted means over batches of more than 32,768 samples, recorded by
scripts/golden_weighted_batches.py in tests/golden/weighted_batches.json: cross_entropy and nll_loss divide the mean
by sums of the weights over the whole batch (nll_loss's total weight, label smoothing's torch.sum), which lossgrad
takes over the whole batch though it evaluates it in slices (evaluation.with_batch_totals), in memory and from
tensor files alike."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import lossgrad
from conftest import golden_script, live_rounds
from lossgrad import api, batch, cli, evaluation, inputs, lowp, reduction, tensor_run
from lossgrad.options import setup

GOLDEN = Path(__file__).resolve().parent / "golden" / "weighted_batches.json"
DATA = json.loads((GOLDEN).read_text())


def _same(value: object, recorded: str) -> bool:
    """A value as the record's (a float32 or half value, compared as float32; NaN as NaN)."""
    a, b = np.float32(value), np.float32(recorded)  # type: ignore[arg-type]
    return bool(a == b or (np.isnan(a) and np.isnan(b)))


def _inputs(rec: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The record's inputs rebuilt from its seed, the predictions and weights rounded to the dtype, checked by their
    digest."""
    golden = golden_script("golden_weighted_batches")
    kind = np.float32 if rec["dtype"] == "float32" else lowp.half_dtype(rec["dtype"])
    labels, z, weights = golden.inputs(rec["seed"], rec["loss"], *rec["shape"], rec["ignored"])
    z, held = z.astype(kind).astype(np.float64), weights.astype(kind).astype(np.float64)
    columns = [labels[:, None], z] + ([np.tile(held, (len(z), 1))] if rec["weighted"] else [])
    assert golden.digest(np.concatenate(columns, axis=1)) == rec["inputs"]
    return labels, z, weights if rec["weighted"] else None


def _options(rec: dict, weights: np.ndarray | None) -> dict:
    return {"convention": "torch", "dtype": rec["dtype"], "labels": "index",
            "class_weights": None if weights is None else weights.tolist(),
            "ignore_index": golden_script("golden_weighted_batches").IGNORE} | (
        {"from_logits": True, "label_smoothing": rec["label_smoothing"]} if rec["loss"] == "ce" else {})


def _run(rec: dict, reduction: str = "mean") -> lossgrad.Result:
    labels, z, weights = _inputs(rec)
    return lossgrad.evaluate(rec["loss"], labels[:, None].astype(np.float64), z, reduction=reduction,
                             **_options(rec, weights))


@pytest.mark.parametrize("rec", DATA["records"], ids=[f"{r['loss']}-{r['dtype']}-{r['label_smoothing']}-"
                                                      f"{'x'.join(map(str, r['shape']))}" for r in DATA["records"]])
def test_the_mean_over_slices_divides_by_the_whole_batchs_weights(rec: dict) -> None:
    golden = golden_script("golden_weighted_batches")
    r = _run(rec)
    assert golden.digest(r.grad) == rec["grad"]
    assert golden.digest(_run(rec, "none").losses) == rec["losses"]
    # the value: the kernel's sums over the whole batch, from the slices' per-sample pieces joined
    assert r.warnings == []
    assert _same(r.value, rec["value"])


def test_the_threads_recorded_are_lossgrads_and_each_slice_alone_differs(monkeypatch: pytest.MonkeyPatch) -> None:
    assert DATA["versions"]["threads"] == lowp.THREADS
    golden = golden_script("golden_weighted_batches")
    # with each slice's own sums (the batch's undone), the gradients of the records placed there are apart
    monkeypatch.setattr(evaluation, "with_batch_totals", lambda setup, *_: setup)
    apart = [golden.digest(_run(rec).grad) != rec["grad"] for rec in DATA["records"]]
    assert apart == [rec["placed"] for rec in DATA["records"]] and sum(apart) >= 6, apart


def test_the_value_over_slices_joins_their_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    # without the slices' pieces joined (lossgrad's own sum of the losses, with a warning) some values are apart
    monkeypatch.setattr(reduction.Slices, "folded", lambda self: None)
    runs = [_run(rec) for rec in DATA["records"]]
    assert all(any(w.startswith("the reduced value is lossgrad's own sum") for w in r.warnings) for r in runs)
    assert sum(not _same(r.value, rec["value"]) for r, rec in zip(runs, DATA["records"], strict=True)) >= 3


def test_a_tensor_file_in_blocks_divides_by_the_whole_batchs_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    golden = golden_script("golden_weighted_batches")
    rec = DATA["records"][3]  # (bfloat16 with label smoothing)
    labels, z, weights = _inputs(rec)
    np.save(tmp_path / "labels.npy", labels)
    np.save(tmp_path / "logits.npy", z.astype(np.float32))
    # (blocks of 40,000 rows: the first in two slices, the second in one)
    monkeypatch.setattr(tensor_run, "BLOCK_BYTES", 8 * rec["shape"][1] * 40000)
    with pytest.raises(SystemExit) as e:
        cli.main(["ce", "--from-logits", "-c", "torch", "--dtype", rec["dtype"], "--class-weights",
                  ",".join(map(repr, weights.tolist())), "--label-smoothing", str(rec["label_smoothing"]),
                  "-p", str(tmp_path / "logits.npy"), "-y", str(tmp_path / "labels.npy"),
                  "-o", str(tmp_path / "out.npz"), "-f", "json"])
    assert e.value.code == 0
    assert golden.digest(np.load(tmp_path / "out.npz")["grad"]) == rec["grad"]
    # the value: PyTorch's, from the pieces of every block's slices joined, as a batch held in memory gives it
    said = json.loads(capsys.readouterr().out)
    assert "warnings" not in said and _same(said["value"], rec["value"])


def _streamed(text: bytes, block: int) -> list[str]:
    """The warnings of ce over class indexes with class weights (torch, float32), the CSV read in blocks of `block`
    bytes."""
    s = setup("ce", from_logits=True, convention="torch", dtype="float32", labels="index",
              class_weights=[0.3, 1.7, 0.9]).with_labels("index")
    reader = inputs.CsvReader(io.BytesIO(text), "ce.csv", block_bytes=block)
    chunks = reader.chunks()
    first = next(chunks)
    layout = inputs.choose_layout(reader, first, "rows", "index", "0", "1:4")

    def chain() -> Iterator[inputs.Chunk]:
        yield first
        yield from chunks
    acc = batch.stream(s, inputs.CsvSource(reader, chain(), layout), io.BytesIO(), b"loss\n", None)
    assert acc.rows == 300
    return api.summary(s, acc, True).warnings


def test_a_stream_of_several_blocks_says_whose_sum_divides() -> None:
    # a CSV stream is evaluated block by block, each with its own sums of the weights: said in a warning
    rng = np.random.default_rng(3)
    rows = np.hstack([rng.integers(0, 3, (300, 1)), rng.standard_normal((300, 3))])
    text = "".join(",".join(map(repr, row)) + "\n" for row in rows.tolist()).encode()
    assert any("sum of the class weights" in w for w in _streamed(text, len(text) // 3))
    assert not any("sum of the class weights" in w for w in _streamed(text, 2 * len(text)))


@pytest.mark.frameworks
def test_fresh_token_batches_against_live_torch(live_rng: np.random.Generator) -> None:
    # a language model's tokens beyond 32,768: ce over class indexes with ignored tokens, class weights and label
    # smoothing drawn at random, each dtype; value and gradient as PyTorch's (live)
    torch = pytest.importorskip("torch")
    torch.set_num_threads(lowp.THREADS)
    rng = live_rng
    for i in range(live_rounds(3, 24)):
        dtype = ("bfloat16", "float16", "float32")[i % 3]
        kind = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[dtype]
        rows, classes = int(rng.integers(33000, 90000)), int(rng.integers(2, 40))
        z = torch.tensor(rng.standard_normal((rows, classes)) * 3).to(kind)
        labels = np.where(rng.random(rows) < 0.2, -100, rng.integers(0, classes, rows))
        weights = rng.uniform(0.05, 0.5, classes) if rng.random() < 0.5 else None
        smoothing = float(rng.choice([0.0, 0.1]))
        leaf = z.clone().requires_grad_()
        w = None if weights is None else torch.tensor(weights).to(kind)
        value = torch.nn.functional.cross_entropy(leaf, torch.tensor(labels), weight=w, ignore_index=-100,
                                                  label_smoothing=smoothing)
        value.backward()
        r = lossgrad.evaluate("ce", labels[:, None].astype(np.float64), z.float().numpy().astype(np.float64),
                              from_logits=True, convention="torch", dtype=dtype, labels="index", ignore_index=-100,
                              class_weights=None if w is None else w.float().numpy().tolist(),
                              label_smoothing=smoothing)
        assert r.warnings == [] and _same(r.value, str(value.float().item())), (i, dtype, r.value, value)
        assert np.array_equal(r.grad.astype(np.float32), leaf.grad.float().numpy()), (i, dtype)
