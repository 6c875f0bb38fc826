"""optax's ctc_loss on logits under the optax convention in float32, float16 and bfloat16 against JAX's own CPU
results (under jax.jit and op by op), recorded by scripts/golden_lowp_xla_ctc.py in tests/golden/lowp_xla_ctc.json:
the losses and the reduced value bit for bit (under jit XLA fuses the mean's sum with the pick of each sequence's
last state: lowp_xla_ctc.final_states), the gradient bit for bit in float16 and bfloat16 and in float32 but for the
elements README's "Bit for bit" names (YNNPACK's kernel for the labels' dot, in order or in four lanes, is not pinned
down for every shape). The records include batches whose backward loop LLVM vectorises across the sequences
(lowp_xla_ctc.vectorised_block), bit for bit but one element, and bfloat16 batches from 4096 rows of frames, where
YNNPACK takes log_softmax's work (lowp_xla_ctc.ynn_frames)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

import lossgrad
from conftest import lossgrad as cli
from lossgrad import lowp_xla_ctc

GOLDEN = Path(__file__).resolve().parent / "golden" / "lowp_xla_ctc.json"
RECORDS = json.loads(GOLDEN.read_text())["records"]
# float32: the most ulp a gradient element may stand from JAX's at the gradient's largest element, over the records
# (one element of the 224 records, in a batch of 108 sequences) and on fresh random batches (live)
ULP, LIVE_ULP = 1, 4
SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def _f32(values: object) -> np.ndarray:
    return np.array(values, dtype=np.float32)


def _run(rec: dict) -> lossgrad.Result:
    return lossgrad.ctc(np.array(rec["labels"]), _f32(rec["pred"]).astype(np.float64),
                        input_lengths=rec["input_lengths"], target_lengths=rec["target_lengths"], from_logits=True,
                        convention="optax", dtype=rec["dtype"], reduction=rec["reduction"], jit=rec["jit"],
                        blank=rec["blank"])


def _id(i: int, rec: dict) -> str:
    return f"{i}-{rec['name']}-{rec['dtype']}-{'jit' if rec['jit'] else 'ops'}-{rec['reduction']}"


def _differing(got: object, want: object) -> np.ndarray:
    a, b = np.asarray(got, dtype=np.float32).reshape(-1), _f32(want).reshape(-1)
    return ~((a.view(np.int32) == b.view(np.int32)) | (np.isnan(a) & np.isnan(b)) | ((a == 0) & (b == 0)))


def ulps(got: object, want: object, dtype: str) -> float:
    """The largest distance in units of the dtype's last place at the largest element of the gradient (a difference
    in an element near 0 counts against the gradient's size, as the cancellation that made it small leaves it)."""
    a, b = np.asarray(got, dtype=np.float64).reshape(-1), np.asarray(_f32(want), dtype=np.float64).reshape(-1)
    bits = {"float32": 23, "float16": 10, "bfloat16": 7}[dtype]
    top = max(float(np.max(np.abs(b), initial=0.0)), 2.0 ** -126)
    return float(np.max(np.abs(a - b), initial=0.0) / np.exp2(np.floor(np.log2(top)) - bits))


def check(rec: dict, r: lossgrad.Result, live: bool = False) -> None:
    """The losses and the value bit for bit (within an ulp where lossgrad says so: lowp_xla_ctc.FUSED_VALUE); the
    gradient bit for bit in float16 and bfloat16, and in float32 but where lossgrad warns of the labels' dot (with
    AVX-512) within ULP (LIVE_ULP) at its largest element."""
    assert not _differing(r.losses, rec["losses"]).any()
    if rec["value"] is not None and lowp_xla_ctc.FUSED_VALUE in r.warnings:  # (an ulp of float32 at most)
        assert ulps([r.value], [rec["value"]], "float32") <= 1
    elif rec["value"] is not None:
        assert not _differing(np.float32(r.value), [rec["value"]]).any()
    grad = np.asarray(r.grad).reshape(np.shape(rec["grad"]))
    if rec["dtype"] != "float32" or lowp_xla_ctc.F32_GRADIENT not in r.warnings:
        assert not _differing(grad, rec["grad"]).any()
        return
    assert ulps(grad, rec["grad"], "float32") <= (LIVE_ULP if live else ULP)


def _apart_with(name: str, value: object, recs: list[dict], what: str) -> list[int]:
    """How many elements of `what` (losses, grad, value) each record has apart from JAX's with lowp_xla_ctc's
    `name` set to `value`."""
    with pytest.MonkeyPatch.context() as m:
        m.setattr(lowp_xla_ctc, name, value)
        got = [_run(r) for r in recs]
    return [int(_differing(np.float32(g.value) if what == "value" else getattr(g, what), r[what]).sum())
            for r, g in zip(recs, got, strict=True)]


def test_values_under_jit_sum_each_sequences_last_state() -> None:
    # the records "final states" (JAX's bit for bit): under jit the mean is XLA's sum over the [B, L + 1] matrix
    # that holds each loss at its target length; the losses summed in order instead, each value differs
    recs = [r for r in RECORDS if r["name"] == "final states"]
    assert {r["dtype"] for r in recs} == {"float32", "float16", "bfloat16"} and all(r["jit"] for r in recs)
    assert all(_apart_with("final_states", lambda losses, lengths, columns: losses, [r], "value")[0] for r in recs)


def test_bfloat16_frames_from_4096_rows_as_ynnpack_takes_them() -> None:
    # the records "ynn frames": from 4096 rows of frames YNNPACK keeps log_softmax's z − max in float32 (under jit
    # Σe^s too); stored as smaller batches store them, the records of 4096 rows or more differ, those of 4,095 not
    recs = [r for r in RECORDS if r["name"] == "ynn frames"]
    rows = [np.shape(r["pred"])[0] * np.shape(r["pred"])[1] for r in recs]
    assert min(rows) == 4095 and {r["jit"] for r in recs} == {True, False}
    apart = _apart_with("ynn_frames", lambda shape, half, jit: None, recs, "losses")
    assert all(bool(a) == (n >= 4096) for a, n in zip(apart, rows, strict=True)), (apart, rows)


# every float32 record's gradient bit for bit with the labels' dot as YNNPACK's kernel choice gives it
# (lowp_xla_ctc._label_lanes, lossgrad.ynn_dot); the rule measured before (4 lanes for 2 to 16 classes from 8
# frames, and up to 24 classes from 64) put an element apart in a batch of 108 sequences, 7 frames and 8 classes (4
# lanes: YNNPACK's, as 8 classes bring it over 8 each way); before the backward loop's vectorised block was
# reproduced, 1,828 elements differed, in 62 records
@pytest.mark.parametrize("rec", RECORDS, ids=[_id(i, r) for i, r in enumerate(RECORDS)])
def test_jax_cpu(rec: dict) -> None:
    r = _run(rec)
    check(rec, r)
    if rec["dtype"] == "float32":
        assert not _differing(np.asarray(r.grad).reshape(np.shape(rec["grad"])), rec["grad"]).any()


def test_the_rule_measured_before_misses_a_record() -> None:
    def measured(t: int, c: int, k: int) -> int:
        return 4 if k >= 4 and (2 <= c <= 16 and t >= 8 or 2 <= c <= 24 and t >= 64) else 1
    recs = [r for r in RECORDS if r["dtype"] == "float32" and np.shape(r["pred"]) == (108, 7, 8)]
    assert sum(a > 0 for a in _apart_with("_label_lanes", measured, recs, "grad")) == 2 and len(recs) == 4


@pytest.mark.parametrize("jit", ["--jit", "--no-jit"])
def test_cli_gives_the_records_loss(jit: str) -> None:
    # blank-last's first sequence takes all its frames and labels: the CLI's one sequence is that sequence
    rec = next(r for r in RECORDS if r["name"] == "blank-last" and r["dtype"] == "bfloat16"
               and r["jit"] == (jit == "--jit") and r["reduction"] == "none")
    pred = _f32(rec["pred"])[0]
    out = cli("ctc", "--from-logits", "-c", "optax", "--dtype", "bfloat16", jit, "--blank", rec["blank"], "--target",
              ",".join(map(str, rec["labels"][0])), "--pred", "; ".join(",".join(map(repr, map(float, row)))
                                                                         for row in pred))
    assert out.code == 0, out.err
    value = (out.out + out.err).split("value=")[1].split()[0]
    assert np.float32(value) == _f32(rec["losses"])[0]


@pytest.mark.frameworks
def test_random_batches_against_live_jax(live_rng: np.random.Generator, jax_x32: None) -> None:
    pytest.importorskip("jax")
    pytest.importorskip("optax")
    sys.path.insert(0, str(SCRIPTS))
    import golden_lowp_xla_ctc as golden

    rng = live_rng
    # the records' shapes, one batch of 1 to 64 sequences of 3 to 8 label columns (vectorised or not), and one of
    # 4,000 to 5,000 rows of frames (YNNPACK's from 4096, in float32 or bfloat16)
    wide = golden.wide_cases(rng, [(int(rng.integers(1, 65)), int(rng.integers(3, 9)))])
    b, t = int(rng.integers(400, 500)), 10
    c, n = int(rng.integers(3, 12)), int(rng.integers(1, 5))
    long = ("long frames", rng.standard_normal((b, t, c)) * 2, rng.integers(1, c, (b, n)),
            rng.integers(t // 2, t + 1, b), rng.integers(0, n + 1, b), 0)
    for name, x, labels, il, tl, blank in [*golden.cases(rng), *wide, long]:
        dtypes = ("float32", "bfloat16") if name == "long frames" else ("float32", "float16", "bfloat16")
        dtype = dtypes[rng.integers(len(dtypes))]
        rec = golden.record(name, golden._rounded(x, dtype), labels, il, tl, blank, dtype, bool(rng.integers(2)),
                            "mean")
        r = _run(rec)
        check(rec, r, live=True)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_tensor_files_give_the_records_numbers(tmp_path: Path, dtype: str) -> None:
    # [B, T, C] logits, padded labels and both lengths as .npy files: the mean's value, the losses and the gradient
    # written to -o are those of the record, as in memory
    rec = next(r for r in RECORDS if r["name"] == "padded" and r["dtype"] == dtype and not r["jit"]
               and r["reduction"] == "mean")
    np.save(tmp_path / "z.npy", _f32(rec["pred"]))
    np.save(tmp_path / "tgt.npy", np.array(rec["labels"]))
    np.save(tmp_path / "il.npy", np.array(rec["input_lengths"]))
    np.save(tmp_path / "tl.npy", np.array(rec["target_lengths"]))
    r = cli("ctc", "--from-logits", "--pred", "z.npy", "--target", "tgt.npy", "--input-lengths", "il.npy",
            "--target-lengths", "tl.npy", "-c", "optax", "--dtype", dtype, "--no-jit", "--blank", rec["blank"],
            "-o", "out.npz", "-f", "json", cwd=tmp_path)
    assert r.code == 0, r.err
    out = np.load(tmp_path / "out.npz")
    assert not _differing(out["losses"], rec["losses"]).any()
    assert not _differing(np.float32(json.loads(r.out)["value"]), [rec["value"]]).any()
    assert not _differing(out["grad"], rec["grad"]).any()


def test_a_single_frame_is_computed_with_a_warning() -> None:
    # XLA compiles a scan of one step without its loop: lossgrad's numbers stand, said to be possibly off
    r = lossgrad.ctc([[1]], np.array([[[0.0, 0.69, 0.0]]]), from_logits=True, convention="optax", dtype="float32")
    assert np.isfinite(r.losses).all()
    assert any("single frame" in w for w in r.warnings)


def test_float32_says_its_gradient_may_differ_in_the_last_bits() -> None:
    # float32's gradient is within a few ulp of JAX's, not bit for bit for every shape: said on every run; the half
    # dtypes are bit for bit, and say nothing
    x = np.array([[[0.1, 0.2, 0.3], [0.3, 0.1, 0.2], [0.5, 0.1, 0.0]]])
    r = lossgrad.ctc([[1, 2]], x, from_logits=True, convention="optax", dtype="float32")
    assert any("may differ from JAX's in the last bits" in w for w in r.warnings)
    assert not lossgrad.ctc([[1, 2]], x, from_logits=True, convention="optax", dtype="bfloat16").warnings


HALF = json.loads((GOLDEN.parent / "ctc_half.json").read_text())["records"]


def _half_golden():
    """scripts/golden_ctc_half.py as a module (its inputs and digests are pure numpy)."""
    if str(SCRIPTS) not in sys.path:
        sys.path.insert(0, str(SCRIPTS))
    import golden_ctc_half

    return golden_ctc_half


def _half_run(rec: dict) -> tuple[lossgrad.Result, str]:
    """A record of tests/golden/ctc_half.json by lossgrad, and its inputs' digest."""
    golden = _half_golden()
    d = golden.inputs(rec["seed"], tuple(rec["case"]))
    res = lossgrad.ctc(d["labels"], d["pred"], input_lengths=d["il"], target_lengths=d["tl"], from_logits=True,
                       convention="optax", dtype=rec["case"][0], jit=rec["case"][1])
    return res, golden.digest(*d.values())


@pytest.mark.parametrize("rec", HALF, ids=["-".join(map(str, r["case"])) for r in HALF])
def test_half_dtypes_from_4096_sequences_and_beyond_32_classes(rec: dict) -> None:
    digest = _half_golden().digest
    res, inputs = _half_run(rec)
    assert inputs == rec["inputs"]
    assert digest(np.asarray(res.losses, np.float64)) == rec["losses"]
    assert digest(np.asarray(res.grad, np.float64)) == rec["grad"]
    assert float(res.value).hex() == rec["value"]


def test_the_half_records_are_apart_without_either(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: every gradient of bfloat16 from 4,096 sequences was apart, the blank's two sums stored before their
    sum; and every one beyond 32 classes, Σ−ct added in order."""
    digest = _half_golden().digest
    real = lowp_xla_ctc.scan
    monkeypatch.setattr(lowp_xla_ctc, "scan", lambda *a, **k: real(*a[:6]))
    apart = [digest(np.asarray(_half_run(r)[0].grad, np.float64)) != r["grad"] for r in HALF]
    assert apart == [r["case"][0] == "bfloat16" and r["case"][2] >= 4096 for r in HALF]
    monkeypatch.undo()

    def in_order(x: np.ndarray, r: object) -> np.ndarray:
        acc = x[:, 0]
        for i in range(1, x.shape[1]):
            acc = r(acc + x[:, i])  # type: ignore[operator]
        return acc
    monkeypatch.setattr(lowp_xla_ctc, "_rows_in_dtype", in_order)
    apart = [digest(np.asarray(_half_run(r)[0].grad, np.float64)) != r["grad"] for r in HALF]
    assert apart == [r["case"][4] > 32 for r in HALF]
