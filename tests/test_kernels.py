"""Every loss a framework convention has is computed in float16 and bfloat16 as that framework's kernels compute
it, or refused with the reason: never with a bare name."""

import pytest

from lossgrad import kernels
from lossgrad.errors import LossgradError
from lossgrad.losses import LOSSES
from lossgrad.options import setup

BACKEND = {"torch": "torch", "keras": "tf", "tf-keras": "tf-keras", "optax": "xla"}
OPTIONS = {"contrastive": {"ntxent": True}}  # (optax's contrastive loss is NT-Xent)


def _modes(convention: str):
    for loss in LOSSES:
        for from_logits in (True, False):
            try:
                setup(loss, convention=convention, from_logits=from_logits, **OPTIONS.get(loss, {}))
            except LossgradError:
                continue  # (the convention lacks the loss or the mode: its own error says so)
            yield loss, from_logits


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("convention", sorted(BACKEND))
def test_a_refused_half_dtype_says_why(convention: str, dtype: str) -> None:
    for loss, from_logits in _modes(convention):
        kind = BACKEND[convention]
        why = kernels.refused(kind, dtype, loss) or kernels.unsupported(kind, dtype, loss, from_logits, {}, {},
                                                                        False)
        assert why is None or why != loss and ("(" in why or "refuses" in why), (convention, loss, why)


@pytest.mark.parametrize("convention", sorted(BACKEND))
def test_every_backend_says_in_each_dtype_whether_a_row_needs_its_place(convention: str) -> None:
    # (a CSV stream asks each backend, with the dtype the kernels run in, before it reads the batch: a module that
    # took no dtype failed smooth-l1's stream under torch)
    for loss, from_logits in _modes(convention):
        for dtype in ("float32", "float16", "bfloat16", "float64"):
            for rows in (True, False):
                assert kernels.placed(BACKEND[convention], loss, from_logits, rows, dtype) in (True, False)
