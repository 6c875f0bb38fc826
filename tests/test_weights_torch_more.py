"""Sample weights under the torch convention on triplet, cosine-embedding, cosine, dice and tversky, as their users
weigh them: `(loss(reduction="none") * w).mean()` (or `.sum()`; MONAI's losses per sample and channel, one weight a
sample), recorded by scripts/golden_weights_torch_more.py in tests/golden/weights_torch_more.json: the weighted
losses, the value, the gradient and every further input's gradient, bit for bit (signs of zeros included; a NaN
as NaN), in float32, float16 and bfloat16; in memory, in slices and from tensor files in blocks; and, with torch
and MONAI installed, fresh random inputs live."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import golden_script, live_rounds
from lossgrad import cli, lowp, lowp_pairs, lowp_seg, mkl, tensor_run

GOLDEN = Path(__file__).resolve().parent / "golden" / "weights_torch_more.json"
DATA = json.loads(GOLDEN.read_text())
RECORDS = DATA["records"]


def _case(rec: dict) -> tuple:
    return rec["loss"], rec["dtype"], rec["reduction"], *rec["shape"], rec["option"]


def _needs_mkl(case: tuple) -> bool:
    """float32 cosine's square root and triplet's backward at norm 1.5 are MKL's (the mkl extra)."""
    loss, dtype, *_, k = case
    golden = golden_script("golden_weights_torch_more")
    q = golden.OPTIONS[loss][k].get("norm_degree")
    return dtype == "float32" and (loss.startswith("cosine") or (q in lowp_pairs.ROOT_NORMS))


def _digests(golden, out: dict, loss: str) -> dict:
    return {"losses": golden.result_digest(out["losses"]), "grad": golden.result_digest(out["grad"]),
            "further": {name: golden.result_digest(out[name]) for name in golden.FURTHER.get(loss, ())}}


def _same_value(ours: float | str | None, theirs: float | None) -> bool:
    """The same value (the JSON summary writes a NaN as "nan")."""
    if theirs is None:
        return True
    mine = float(ours)  # type: ignore[arg-type]
    return np.float32(mine) == np.float32(theirs) or bool(np.isnan(mine) and np.isnan(theirs))


def _ids(recs: list[dict]) -> list[str]:
    return [f"{r['loss']}-{r['option']}-{r['dtype']}-{r['reduction']}-{r['shape'][0]}" for r in recs]


@pytest.mark.parametrize("rec", RECORDS, ids=_ids(RECORDS))
def test_weighted_losses_value_and_gradients_are_pytorchs(rec: dict) -> None:
    case = _case(rec)
    if _needs_mkl(case) and not mkl.available():
        pytest.skip("float32 square roots are MKL's: the mkl extra")
    golden = golden_script("golden_weights_torch_more")
    args = golden.inputs(rec["seed"], case)
    assert golden.input_digest(*args) == rec["inputs"]
    out = golden.lossgrads(case, *args)
    assert _digests(golden, out, rec["loss"]) == {k: rec[k] for k in ("losses", "grad", "further")}
    assert _same_value(out["value"], rec["value"]), (out["value"], rec["value"])


def test_the_records_cover_each_loss_dtype_and_reduction_and_long_batches() -> None:
    meta = DATA["versions"]
    assert meta["torch"].startswith("2.13.0") and meta["monai"] == "1.6.1"
    assert meta["cpu_capability"] == "AVX512" and meta["threads"] == lowp.THREADS
    assert {(r["loss"], r["dtype"], r["reduction"]) for r in RECORDS} == {
        (loss, d, red) for loss in ("triplet", "cosine-embedding", "cosine", "dice", "tversky")
        for d in ("float32", "float16", "bfloat16") for red in ("mean", "sum", "none")}
    long = {r["loss"] for r in RECORDS if r["shape"][0] > 32768}
    assert long == {"triplet", "cosine-embedding", "dice", "tversky"}


def test_the_records_tell_the_kernels_from_the_formulas(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the weighted kernels (lossgrad's float32 formulas, with a warning) most float32 records are apart."""
    golden = golden_script("golden_weights_torch_more")
    monkeypatch.setattr(lowp_pairs, "WEIGHABLE", ())
    monkeypatch.setattr(lowp_seg, "WEIGHABLE", ())
    import lossgrad

    apart = 0
    small = [r for r in RECORDS if r["dtype"] == "float32" and r["shape"][0] < 100]
    for rec in small:
        case = _case(rec)
        y, p, extra, w = golden.inputs(rec["seed"], case)
        r = lossgrad.evaluate(rec["loss"], y, p, sample_weight=w, convention="torch", dtype="float32",
                              reduction=rec["reduction"], **extra, **golden.OPTIONS[rec["loss"]][rec["option"]])
        assert any("not bit for bit" in note for note in r.warnings)
        apart += golden.result_digest(r.grad) != rec["grad"]
    assert apart >= len(small) // 2, (apart, len(small))


def test_dice_weighs_a_sample_by_hand() -> None:
    # two samples of 2 pixels, y = (1, 0) and (0, 1), p = (0.5, 0.5) each, MONAI's smooth 1e-5 set aside by
    # --smooth 0: tp = 0.5, fp = fn = 0.5·0.5, dice = 1 − 1/2 = 0.5 each; weights 3 and 0.25: losses 1.5 and 0.125,
    # .mean() = 0.8125; ∂/∂p_k of 1 − 2Σpy/(Σp + Σy) is −(2y_k·D − 2tp)/D² with D = 2: −3/4 where y_k = 1 and 1/4
    # where y_k = 0, times the sample's weight over N = 2 (3/2 and 1/8); every number exact in float32
    import lossgrad

    r = lossgrad.evaluate("dice", [[1.0, 0.0], [0.0, 1.0]], [[0.5, 0.5], [0.5, 0.5]], sample_weight=[3.0, 0.25],
                          smooth=0.0, convention="torch", dtype="float32")
    assert not r.warnings
    assert r.losses.tolist() == [1.5, 0.125] and r.value == 0.8125
    assert r.grad.tolist() == [[-1.125, 0.375], [0.03125, -0.09375]]


def _tensor_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                rec: dict) -> tuple[dict, dict]:
    golden = golden_script("golden_weights_torch_more")
    case = _case(rec)
    y, p, extra, w = golden.inputs(rec["seed"], case)
    files = {"y": y, "p": p, "w": w, **{k: v.reshape(-1) if k == "label" else v for k, v in extra.items()}}
    for name, a in files.items():
        np.save(tmp_path / f"{name}.npy", a.astype(np.float32))
    monkeypatch.setattr(tensor_run, "BLOCK_BYTES", 8 * rec["shape"][1] * 10000)  # (blocks of 10,000 rows)
    options = [f"--{k.replace('_', '-')}" if v is True else f"--{k.replace('_', '-')}={v}"
               for k, v in golden.OPTIONS[rec["loss"]][rec["option"]].items()]
    further = [a for k in extra for a in (f"--{k}", str(tmp_path / f"{k}.npy"))]
    with pytest.raises(SystemExit) as e:
        cli.main([rec["loss"], "--pred", str(tmp_path / "p.npy"), "--target", str(tmp_path / "y.npy"),
                  "--sample-weight", str(tmp_path / "w.npy"), *further, *options, "-c", "torch", "--dtype",
                  rec["dtype"], "-r", rec["reduction"], "-o", str(tmp_path / "out.npz"), "-f", "json"])
    captured = capsys.readouterr()
    assert e.value.code == 0, captured.err
    out = np.load(tmp_path / "out.npz")
    got = {"losses": out["losses"], "grad": out["grad"], **{k: out[f"grad_{k}"] for k in golden.FURTHER.get(
        rec["loss"], ())}}
    return _digests(golden, got, rec["loss"]), json.loads(captured.out)


LONG = [r for r in RECORDS if r["shape"][0] > 32768]


@pytest.mark.parametrize("rec", LONG, ids=_ids(LONG))
def test_a_tensor_file_in_blocks_with_a_weights_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str], rec: dict) -> None:
    if _needs_mkl(_case(rec)) and not mkl.available():
        pytest.skip("float32 square roots are MKL's: the mkl extra")
    digests, summary = _tensor_run(tmp_path, monkeypatch, capsys, rec)
    assert digests == {k: rec[k] for k in ("losses", "grad", "further")}
    assert _same_value(summary["value"], rec["value"])


@pytest.mark.frameworks
def test_fresh_batches_against_live_pytorch_and_monai() -> None:
    golden = golden_script("golden_weights_torch_more", "torch", "monai")
    rng = np.random.default_rng()
    apart = []
    for k in range(live_rounds(30, 500)):
        loss = list(golden.OPTIONS)[int(rng.integers(len(golden.OPTIONS)))]
        option = int(rng.integers(len(golden.OPTIONS[loss])))
        rows, cols = int(rng.integers(1, 120)), int(rng.integers(1, 300 if loss in golden.SEGMENTS else 70))
        case = (loss, golden.DTYPES[int(rng.integers(3))], golden.REDUCTIONS[k % 3], rows, cols, option)
        if _needs_mkl(case) and not mkl.available():
            continue
        seed = int(rng.integers(2**31))
        args = golden.inputs(seed, case)
        ours, theirs = golden.lossgrads(case, *args), golden.pytorchs(case, *args)
        theirs["grad"] = theirs.pop("pred")
        if _digests(golden, ours, loss) != _digests(golden, theirs, loss) \
                or not _same_value(ours["value"], theirs["value"]):
            apart.append((case, seed))
    assert not apart, apart
