"""Sample weights under the torch convention, as PyTorch users weigh a loss: `(loss(reduction="none") * w).mean()`
(or `.sum()`), recorded by scripts/golden_weights_torch.py in tests/golden/weights_torch.json: the weighted losses,
the value and the gradient, bit for bit, in float32, float16 and bfloat16; in memory and from tensor files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import golden_script, live_rounds
from lossgrad import cli, lowp, lowp_focal, mkl, tensor_run

GOLDEN = Path(__file__).resolve().parent / "golden" / "weights_torch.json"
DATA = json.loads(GOLDEN.read_text())
SMALL = [r for r in DATA["records"] if "grad" in r]
LONG = [r for r in DATA["records"] if "grad_digest" in r]


def _case(rec: dict) -> tuple:
    return rec["loss"], rec["dtype"], rec["reduction"], *rec["shape"]


def _run(rec: dict) -> tuple[dict, tuple]:
    golden = golden_script("golden_weights_torch")
    args = golden.held_inputs(rec["seed"], _case(rec))
    assert golden.digest(*args) == rec["inputs"]
    return golden.lossgrads(_case(rec), *args), args


def _bits(a: object) -> np.ndarray:
    """The float32 bits (a zero's sign counts: PyTorch's −0 where a weight is 0)."""
    return np.asarray(a, dtype=np.float32).view(np.uint32)


def _same(ours: dict, theirs: dict) -> bool:
    return (np.array_equal(_bits(ours["losses"]), _bits(theirs["losses"]))
            and np.array_equal(_bits(ours["grad"]), _bits(theirs["grad"]))
            and _same_value(ours["value"], theirs["value"]))


def _same_value(ours: float | None, theirs: float | None) -> bool:
    return theirs is None or np.float32(ours) == np.float32(theirs)


@pytest.mark.parametrize("rec", SMALL, ids=[f"{r['loss']}-{r['dtype']}-{r['reduction']}" for r in SMALL])
def test_weighted_losses_value_and_gradient_are_pytorchs(rec: dict) -> None:
    out, _ = _run(rec)
    assert np.array_equal(_bits(out["losses"]).ravel(), _bits(rec["losses"]).ravel())
    assert np.array_equal(_bits(out["grad"]).ravel(), _bits(rec["grad"]).ravel())
    assert _same_value(out["value"], rec["value"]), (out["value"], rec["value"])


@pytest.mark.parametrize("rec", LONG, ids=[f"{r['loss']}-{r['dtype']}-{'x'.join(map(str, r['shape']))}"
                                           for r in LONG])
def test_a_long_batch_evaluated_in_slices_is_pytorchs(rec: dict) -> None:
    golden = golden_script("golden_weights_torch")
    out, _ = _run(rec)
    assert golden.digest(out["losses"]) == rec["losses_digest"]
    assert golden.digest(out["grad"]) == rec["grad_digest"]
    assert _same_value(out["value"], rec["value"])


def test_the_records_tell_the_kernels_from_the_formulas(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the weighted kernels (lossgrad's float32 formulas, with a warning) many records are apart."""
    golden = golden_script("golden_weights_torch")
    monkeypatch.setattr(lowp, "WEIGHABLE", ())
    monkeypatch.setattr(lowp_focal, "WEIGHABLE", ())
    apart = 0
    for rec in (r for r in SMALL if r["dtype"] == "float32"):
        args = golden.held_inputs(rec["seed"], _case(rec))
        from lossgrad import api

        target = golden.labels(args[0]) if rec["loss"] in ("ce", "nll", "ce-ignore", "nll-ignore") else args[0]
        r = api.evaluate(golden.NAMES.get(rec["loss"], rec["loss"]), target, args[1], sample_weight=args[2],
                         convention="torch", dtype="float32", reduction=rec["reduction"], **golden.OPTIONS[rec["loss"]])
        assert any("not bit for bit" in w for w in r.warnings)
        apart += not np.array_equal(_bits(r.grad).ravel(), _bits(rec["grad"]).ravel())
    assert apart >= 5, apart


def test_options_that_change_the_mean_are_still_refused_in_half_dtypes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        cli.main(["ce", "--from-logits", "-y", "0,1", "-p", "1,2;3,4", "--sample-weight", "1,2", "-c", "torch",
                  "--dtype", "bfloat16", "--label-smoothing", "0.1"])
    assert e.value.code == 2
    assert "sample" in capsys.readouterr().err


@pytest.mark.parametrize("loss", ["ce", "huber", "ce-ignore"])
def test_a_tensor_file_in_blocks_with_a_weights_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str], loss: str) -> None:
    rec = next(r for r in LONG if r["loss"] == loss)
    golden = golden_script("golden_weights_torch")
    y, p, w = golden.held_inputs(rec["seed"], _case(rec))
    target = golden.labels(y).astype(np.int64) if loss.startswith("ce") else y.astype(np.float32)
    files = {"y": target, "p": p.astype(np.float32), "w": w.astype(np.float32)}
    for name, a in files.items():
        np.save(tmp_path / f"{name}.npy", a)
    monkeypatch.setattr(tensor_run, "BLOCK_BYTES", 8 * rec["shape"][1] * 10000)  # (blocks of 10,000 rows)
    options = [f"--{k.replace('_', '-')}" if v is True else f"--{k.replace('_', '-')}={v}"
               for k, v in golden.OPTIONS[loss].items()]
    with pytest.raises(SystemExit) as e:
        cli.main([golden.NAMES.get(loss, loss), "--pred", str(tmp_path / "p.npy"), "--target", str(tmp_path / "y.npy"),
                  "--sample-weight", str(tmp_path / "w.npy"), *options, "-c", "torch", "--dtype", rec["dtype"], "-o",
                  str(tmp_path / "out.npz"), "-f", "json"])
    captured = capsys.readouterr()
    assert e.value.code == 0, captured.err
    out = np.load(tmp_path / "out.npz")
    assert golden.digest(out["grad"]) == rec["grad_digest"]
    assert golden.digest(out["losses"]) == rec["losses_digest"]
    assert np.float32(json.loads(captured.out)["value"]) == np.float32(rec["value"])


@pytest.mark.frameworks
def test_fresh_batches_against_live_pytorch() -> None:
    golden = golden_script("golden_weights_torch", "torch")
    rng = np.random.default_rng()
    apart = []
    for k in range(live_rounds(24, 400)):
        loss = list(golden.OPTIONS)[int(rng.integers(len(golden.OPTIONS)))]
        dtype = golden.DTYPES[int(rng.integers(3))]
        if loss == "poisson" and dtype == "float32" and not mkl.available():
            continue
        case = (loss, dtype, golden.REDUCTIONS[k % 3], int(rng.integers(1, 200)), int(rng.integers(2, 40)))
        seed = int(rng.integers(2**31))
        args = golden.held_inputs(seed, case)
        ours, theirs = golden.lossgrads(case, *args), golden.pytorchs(case, *args)
        if not _same(ours, theirs):
            apart.append((case, seed))
    assert not apart, apart


def test_compare_in_bfloat16_says_the_weighted_mean_divides_by_n(capsys: pytest.CaptureFixture[str]) -> None:
    """PyTorch's `.mean()` of weighted losses divides by N, exact's weighted mean by the weights' sum: compare names
    that divisor beside the ulps (weights 2 and 0.3: N = 2 against 2.3)."""
    with pytest.raises(SystemExit) as e:
        cli.main(["compare", "ce", "--from-logits", "-y", "0,2", "-p", "1,2,3;0.5,-1,2", "--sample-weight", "2,0.3",
                  "--dtype", "bfloat16", "-f", "json"])
    assert e.value.code == 0
    found = json.loads(capsys.readouterr().out)
    assert found["conventions"]["torch"]["n"] == 2 and found["conventions"]["float64"]["n"] == 2.3
    assert {"convention": "torch", "of": "value", "element": None,
            "why": "torch's mean divides by N = 2, exact's by N = 2.3"} in found["differences"]


def test_check_in_bfloat16_measures_rounding_against_the_truth_over_the_conventions_n(
        capsys: pytest.CaptureFixture[str]) -> None:
    """PyTorch's bfloat16 gradient of the weighted mean above (weights 2 and 0.3, `.mean()` over N = 2): 35 ulp
    from exact's weighted mean, which divides by 2.3, but within rounding of the float64 truth over N = 2."""
    mine = "-0.91015625,0.2451171875,0.66796875,0.0263671875,0.005828857421875,-0.0322265625"
    with pytest.raises(SystemExit) as e:
        cli.main(["check", "ce", "--from-logits", "-y", "0,2", "-p", "1,2,3;0.5,-1,2", "--sample-weight", "2,0.3",
                  "--dtype", "bfloat16", "--my-grad", mine])
    assert e.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "your gradient matches torch in bfloat16 exactly" in out
    assert "from the float64 truth over N = 2 as torch divides at most: the difference from float64 is rounding" in out


PAIRS = json.loads((Path(__file__).resolve().parent / "golden" / "weights_torch_pairs.json").read_text())["records"]


@pytest.mark.parametrize("rec", PAIRS, ids=[f"{r['loss']}-{r['dtype']}-{r['reduction']}-{r['shape'][0]}"
                                            f"{'-per-sample' if r['per_sample'] else ''}" for r in PAIRS])
def test_a_loss_with_a_further_input_weighed_is_pytorchs(rec: dict) -> None:
    """gaussian-nll (the variance's gradient too) and margin-ranking (the other score's)."""
    golden = golden_script("golden_weights_torch_pairs")
    case = (rec["loss"], rec["dtype"], rec["reduction"], *rec["shape"], rec["per_sample"])
    args = golden.inputs(rec["seed"], case)
    assert golden.digest(*args) == rec["inputs"]
    out = golden.lossgrads(case, *args)
    assert [golden.digest(np.asarray(out[k], dtype=np.float32)) for k in ("losses", "grad", "extra")] == \
        [rec["losses"], rec["grad"], rec["extra"]]
    assert rec["value"] is None or np.isnan(rec["value"]) or np.float32(out["value"]) == np.float32(rec["value"])
