"""What the TensorFlow kernel tests share: float32 views of a golden record's numbers, bit-for-bit equality (NaN
equal to NaN), the check of one record's losses, values and gradients, and the same through a CSV batch and
tensor files on the command line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

import lossgrad
from conftest import lossgrad as run


def f32(values: object) -> np.ndarray:
    return np.array(values, dtype=np.float32)


def same(got: object, want: object) -> bool:
    return bool(np.array_equal(np.asarray(got, np.float32), np.asarray(want, np.float32), equal_nan=True))


def check_record(rec: dict, evaluate: Callable[[dict, str], lossgrad.Result], unsaid: str | None = None) -> None:
    """The record's losses (reduction none), and its sum's and mean's values and gradients, bit for bit (and no
    warning of the sum or the mean says `unsaid`)."""
    r = evaluate(rec, "none")
    assert same(r.losses.reshape(-1), f32(rec["losses"]).reshape(-1)), "losses"
    for reduction in ("sum", "mean"):
        r = evaluate(rec, reduction)
        assert same(r.value, rec[reduction]["value"]), (reduction, r.value, rec[reduction]["value"])
        assert same(r.grad, f32(rec[reduction]["grad"])), reduction
        assert unsaid is None or not any(unsaid in w for w in r.warnings), r.warnings


def csv_mean_grad(tmp_path: Path, rec: dict, convention: str) -> None:
    """The record's targets and predictions as a CSV batch: the mean's gradient rows are the record's."""
    y, p = f32(rec["target"]), f32(rec["pred"])
    k = y.shape[1]
    head = ",".join([f"t{i}" for i in range(k)] + [f"p{i}" for i in range(k)])
    (tmp_path / "b.csv").write_text(head + "\n" + "".join(",".join(repr(float(a)) for a in row) + "\n"
                                                          for row in np.hstack([y, p])))
    r = run(rec["loss"], "--csv", "b.csv", "--target-cols", f"0:{k}", "--pred-cols", f"{k}:{2 * k}", "-c",
            convention, "--dtype", rec["dtype"], "-r", "mean", "-f", "csv", cwd=tmp_path)
    assert r.code == 0, r.err
    rows = np.loadtxt(r.out.splitlines()[1:], delimiter=",")
    assert same(rows[:, -k:].astype(np.float32), f32(rec["mean"]["grad"]))


def tensor_mean_grad(tmp_path: Path, rec: dict, convention: str, stored: type) -> None:
    """The record's targets and predictions as .npy files in `stored`: the mean's gradient written to -o and its
    value are the record's."""
    for k in ("target", "pred"):
        np.save(tmp_path / f"{k}.npy", f32(rec[k]).astype(stored))
    r = run(rec["loss"], "--target", "target.npy", "--pred", "pred.npy", "-c", convention, "--dtype", rec["dtype"],
            "-r", "mean", "-o", "out.npz", "-f", "json", cwd=tmp_path)
    assert r.code == 0, r.err
    out = np.load(tmp_path / "out.npz")
    assert np.array_equal(out["grad"].astype(np.float32), f32(rec["mean"]["grad"]))
    assert np.float32(r.json()["value"]) == np.float32(rec["mean"]["value"])


def written_mean_matches(r: object, out: Path, rec: dict) -> None:
    """A command run with `-r mean -o out -f json` on a float64 record (float.hex numbers, long arrays as SHA-256):
    it succeeded, and the file's gradient and the value it printed are the record's mean."""
    from golden_pairs64 import matches  # (scripts/, which the float64 tests put on the path)

    assert r.code == 0, r.err  # type: ignore[attr-defined]
    assert matches(np.load(out)["grad"], rec["mean"]["grad"])
    assert r.json()["value"] == float.fromhex(rec["mean"]["value"])  # type: ignore[attr-defined]
