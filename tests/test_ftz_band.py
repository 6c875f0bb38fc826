"""The frameworks' float32 gradients and values at the edge of their flush to zero (tests/golden/ftz_band.json,
written by scripts/golden_ftz_band.py with AVX2): optax op by op and under jit, Keras 3 and tf-keras, bit for bit;
and without lossgrad.flush's rule (numpy's rounding, then a flush) the records whose product is in the band are
apart."""

import json
from pathlib import Path

import numpy as np
import pytest

import lossgrad
from lossgrad import flush, lowp_tf, lowp_xla

DATA = json.loads((Path(__file__).parent / "golden" / "ftz_band.json").read_text())
RECORDS = DATA["records"]
F32 = np.float32


def _bits(values: list[str]) -> list[int]:
    return np.array([float.fromhex(v) for v in values], dtype=F32).view(np.uint32).tolist()


def _evaluate(rec: dict) -> lossgrad.Result:
    y, p = (np.array([float.fromhex(v) for v in rec[k]])[:, None] for k in ("target", "pred"))
    more = {"jit": rec["jit"]} if rec["convention"] == "optax" else {}
    more |= {"from_logits": True} if rec["loss"] == "focal" else {}
    return lossgrad.evaluate(rec["loss"], y, p, convention=rec["convention"], dtype="float32",
                             reduction=rec["reduction"], cpu="avx2", **more, **rec["options"])


def _summed_alone(r: lossgrad.Result) -> bool:
    """Whether lossgrad says the value is its own float32 sum (XLA's order for a sum over a column not pinned down)."""
    return any("lossgrad's float32 sum" in w for w in r.warnings)


def _same(rec: dict, r: lossgrad.Result) -> bool:
    return (_bits(rec["grad"]) == np.asarray(r.grad, dtype=F32).reshape(-1).view(np.uint32).tolist()
            and _bits(rec["losses"]) == np.asarray(r.losses, dtype=F32).reshape(-1).view(np.uint32).tolist()
            and (_summed_alone(r) or F32(float.fromhex(rec["value"])) == F32(r.value)))


def _id(rec: dict) -> str:
    return (f"{rec['convention']}-{'jit' if rec['jit'] else 'ops'}-{rec['loss']}-{rec['of']}-{len(rec['pred'])}-"
            f"{rec['pred'][0]}-{rec['options'].get('gamma', '')}")


def _mode(rec: dict) -> tuple:
    return rec["convention"], rec["jit"], rec["loss"], rec["of"]


EDGES = [r for r in RECORDS if r["loss"] != "focal"]  # (in groups of 5 around each edge)


@pytest.mark.parametrize("rec", RECORDS, ids=[_id(r) for r in RECORDS])
def test_bit_for_bit(rec: dict) -> None:
    r = _evaluate(rec)
    assert not [w for w in r.warnings if "lossgrad's float32 sum" not in w], r.warnings
    assert _same(rec, r)


def test_each_mode_has_an_edge_in_the_band_that_needs_the_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    def numpys(out, op, *operands):  # (numpy's rounding, the flush after it)
        return np.asarray(out)

    monkeypatch.setattr(flush, "at_tiny", numpys)
    monkeypatch.setattr(lowp_tf, "at_tiny", numpys)
    monkeypatch.setattr(lowp_xla, "at_tiny", numpys)
    apart = {_mode(r) for r in EDGES if not _same(r, _evaluate(r))}
    assert apart == {_mode(r) for r in EDGES}


def test_the_records_cover_each_mode_and_size() -> None:
    assert len({(_mode(r), len(r["pred"])) for r in EDGES}) == len(EDGES) // 5 == 6 * 5 + 4 * 5
    assert sum(r["edge"] for r in EDGES) == 50 and len(RECORDS) == len(EDGES) + 5
    # the edge is flushed by the framework, the next float32 up is not
    for i in range(0, len(EDGES), 5):
        got = [float.fromhex(r["grad"][0] if r["of"] == "grad" else r["value"]) for r in EDGES[i:i + 5]]
        assert got[:3] == [0.0] * 3 and all(g != 0 for g in got[3:])
