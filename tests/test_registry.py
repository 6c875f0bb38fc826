"""Every loss carries what the rest of lossgrad and its users need: formulas, a reference, help, a README line,
and a golden file from the frameworks that have it."""

from pathlib import Path

import pytest

import lossgrad
from conftest import lossgrad as run
from lossgrad.conventions import CONVENTIONS
from lossgrad.errors import PARAMETERS
from lossgrad.losses import LOSSES

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", list(LOSSES))
def test_loss_is_complete(name):
    loss = LOSSES[name]
    conv = CONVENTIONS["exact"]
    assert loss.formulas(False, conv) and loss.reference and loss.summary
    if loss.has_logits:
        assert loss.formulas(True, conv) and loss.link in ("sigmoid", "softmax", "exp")
    assert f"`{name}" in (ROOT / "README.md").read_text(), f"{name} is not described in the README"
    r = run(name, "--help")
    assert r.code == 0 and loss.summary.split(",")[0][:20].lower() in r.out.replace("\n", " ").lower()
    frameworks = [c for c in CONVENTIONS if c != "exact" and (name, "probs") not in CONVENTIONS[c].lacks]
    if frameworks:
        assert (ROOT / "tests" / "golden" / f"{name}.json").exists(), f"no golden file for {name}"
    assert callable(getattr(lossgrad, name.replace("-", "_")))
    # messages name parameters as {templates}; only known parameters are filled in
    assert all(p.name in PARAMETERS for p in loss.params)
