"""What the scripts recording TensorFlow's double kernels share (golden_tf_seg64.py, golden_tf_focal64.py,
golden_tf_ctc64.py): their command line (the golden file, or `--measure N` random rounds against lossgrad), the
file's metadata, and whether lossgrad's results have a record's bits."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from golden_pairs64 import _kept, matches  # noqa: E402

REDUCTIONS = {"sum": "sum", "mean": "sum_over_batch_size"}  # (lossgrad's names: Keras')


def keras_results(make: Callable[[str | None], Any], y: np.ndarray, p: np.ndarray, w: np.ndarray | None,
                  losses: bool = True) -> dict:
    """A Keras loss's results in double, `make(reduction)` the loss object (None: one loss per sample): the
    per-sample losses (unless not `losses`) and, under "sum" and "mean", the value and the GradientTape gradient
    with respect to the predictions, every number as float.hex (arrays of more than 4,096 as SHA-256)."""
    import tensorflow as tf

    yt, wt = tf.constant(y, tf.float64), None if w is None else tf.constant(w, tf.float64)
    out = {}
    if losses:
        out["losses"] = _kept(make(None)(yt, tf.constant(p, tf.float64), sample_weight=wt).numpy())
    for name, reduction in REDUCTIONS.items():
        pv = tf.Variable(tf.constant(p, tf.float64))
        with tf.GradientTape() as tape:
            value = make(reduction)(yt, pv, sample_weight=wt)
        out[name] = {"value": float(value.numpy()).hex(), "grad": _kept(tape.gradient(value, pv).numpy())}
    return out


def agrees(rec: dict, none: Any, reduced: dict[str, Any], shape: tuple[int, ...] | None = None,
           quiet: Callable[[Any], bool] = lambda r: not r.warnings) -> bool:
    """Whether lossgrad's results have the record's bits: the losses of reduction none (None: not recorded) and
    the value and gradient of each reduction in `reduced` ("sum", "mean"), each `quiet` (no warning)."""
    ok = none is None or (matches(np.ravel(none.losses), rec["losses"]) and quiet(none))
    for name, r in reduced.items():
        grad = r.grad if shape is None else np.reshape(r.grad, shape)
        ok = ok and r.value == float.fromhex(rec[name]["value"]) and matches(grad, rec[name]["grad"]) and quiet(r)
    return ok


def tally(rounds: int, grads: int, losses: int, apart: int) -> str:
    return f"{rounds} rounds: {grads} gradient elements, {losses} losses, {2 * rounds} values; {apart} rounds apart"


def main(out: Path, made_by: str, cases: Callable[[], list[dict]], measure: Callable[[int], str]) -> None:
    """`python3 SCRIPT` writes the golden file; `python3 SCRIPT --measure N` prints N random rounds' tally."""
    if sys.argv[1:2] == ["--measure"]:
        print(measure(int(sys.argv[2]) if len(sys.argv) > 2 else 200))
        return
    from make_golden import cpu_model, versions

    avx512 = "avx512f" in Path("/proc/cpuinfo").read_text()  # (TensorFlow's wheel is built for AVX: either gives these)
    recs = cases()
    meta = versions() | {"cpu": cpu_model(), "avx512": avx512}
    out.write_text(json.dumps({"versions": meta, "made_by": made_by, "records": recs}) + "\n")
    print(f"{len(recs)} records -> {out}")
