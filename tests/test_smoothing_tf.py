"""Label smoothing under the keras and tf-keras conventions (`CategoricalCrossentropy` and `BinaryCrossentropy`
with `label_smoothing`), recorded by scripts/golden_smoothing_tf.py in tests/golden/smoothing_tf.json: the losses,
the values and the gradients bit for bit in float32, float16 and bfloat16; live against Keras where installed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import golden_script, live_rounds
from lossgrad import lowp_tf

GOLDEN = Path(__file__).resolve().parent / "golden" / "smoothing_tf.json"
DATA = json.loads(GOLDEN.read_text())


def _case(rec: dict) -> tuple:
    return (rec["convention"], rec["dtype"], rec["loss"], rec["from_logits"], rec["targets"],
            rec["label_smoothing"], *rec["shape"])


def _apart(rec: dict) -> list[str]:
    g = golden_script("golden_smoothing_tf")
    y, p = g.held_inputs(rec["seed"], _case(rec))
    assert g.digest(y, p) == rec["inputs"]
    got = g.lossgrads(_case(rec), y, p)
    out = [] if g.stored(got["losses"]) == rec["losses"] else ["losses"]
    for key in g.REDUCTIONS:
        value = np.float32(got[key][0])
        if g.bits(value) != rec[key]["value"] and not (np.isnan(value) and np.isnan(g.unbits(rec[key]["value"])[0])):
            out.append(f"{key} value")
        if g.stored(got[key][1]) != rec[key]["grad"]:
            out.append(f"{key} grad")
    return out


@pytest.mark.parametrize("rec", DATA["records"], ids=[
    f"{r['convention']}-{r['dtype']}-{r['loss']}-{'logits' if r['from_logits'] else 'probs'}-{r['targets']}-"
    f"{r['label_smoothing']}" for r in DATA["records"]])
def test_smoothed_losses_values_and_gradients_are_keras(rec: dict) -> None:
    assert _apart(rec) == []


def test_the_two_kerases_round_the_smoothing_constants_their_own_ways() -> None:
    """s = 0.3333 in float16 over 3 classes, worked by hand: Keras 3 holds 1 − s, the double 0.6667, as
    1365/2048; tf-keras holds s as 1365/4096 first, and 1 − 1365/4096 = 2731/4096 rounds (a tie) to 1366/2048. Both
    add s/C = 1365/4096/3 ≈ 0.1110840: 0.7775879 rounds to 1592/2048 under Keras 3, 0.7780762 to 1594/2048 under
    tf-keras."""
    kind = lowp_tf.kind_of(np.float16)
    y = np.array([[1.0, 0.0, 0.0]], dtype=np.float32)
    keras3 = lowp_tf.smoothed(y, 0.3333, 3, kind, keras2=False)
    keras2 = lowp_tf.smoothed(y, 0.3333, 3, kind, keras2=True)
    assert keras3[0, 0] == 1592 / 2048 and keras2[0, 0] == 1594 / 2048
    assert keras3[0, 1] == keras2[0, 1] == np.float16(1365 / 4096 / 3)


def test_records_are_apart_without_the_smoothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernels given the targets unsmoothed: every record is apart (the records can fail)."""
    monkeypatch.setattr(lowp_tf, "smoothed", lambda y, s, classes, kind, keras2: y)
    apart = [bool(_apart(rec)) for rec in DATA["records"][:12]]
    assert all(apart), apart


@pytest.mark.frameworks
def test_fresh_batches_against_live_keras(live_rng: np.random.Generator) -> None:
    g = golden_script("golden_smoothing_tf", "tensorflow", "keras", "tf_keras")
    bases = g.cases()
    for k in range(live_rounds(12, 300)):
        base = bases[int(live_rng.integers(len(bases)))]
        s = float(live_rng.choice([0.1, 0.2, 0.05, 0.3333, 1e-3, 0.9, live_rng.uniform(0, 1)]))
        case = (*base[:5], s, int(live_rng.integers(1, 60)), int(live_rng.integers(2, 300)))
        y, p = g.held_inputs(int(live_rng.integers(2**31)), case)
        ours, theirs = g.lossgrads(case, y, p), g.keras_results(case, y, p)
        assert g.stored(ours["losses"]) == g.stored(theirs["losses"]), (k, case)
        for key in g.REDUCTIONS:
            assert np.array_equal(ours[key][1], theirs[key][1], equal_nan=True), (k, case, key)
            assert np.array_equal(ours[key][0], theirs[key][0], equal_nan=True), (k, case, key)
