"""options.setup: every choice checked once; messages name the parameters as the caller wrote them."""

import dataclasses

import numpy as np
import pytest

import lossgrad
from lossgrad.errors import OptionError, cli_name
from lossgrad.options import Dtype, Labels, Reduction, setup


def test_setup_holds_the_checked_choices():
    s = setup("ce", from_logits=True, reduction="sum", convention="torch", dtype="float32", labels="index",
              label_smoothing=0.1)
    assert (s.loss.name, s.conv.name, s.reduction, s.dtype, s.labels) == ("ce", "torch", Reduction.SUM,
                                                                          Dtype.FLOAT32, Labels.INDEX)
    assert s.params["label_smoothing"] == 0.1 and s.params["ignore_index"] is None  # defaults filled in
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.reduction = Reduction.MEAN  # type: ignore[misc]


@pytest.mark.parametrize("kw,message", [
    ({"reduction": "avg"}, "reduction: unknown reduction 'avg'; choose one of mean, sum, none"),
    ({"dtype": "float16x"}, "dtype: unknown dtype 'float16x'; choose one of float64, float32, float16, bfloat16"),
    ({"from_logits": "no"}, "from_logits: takes True or False, got 'no'"),
    ({"pos_weight": [2.0]}, "pos_weight: applies to bce from logits (from_logits=True), as PyTorch's pos_weight"),
    ({"delta": 1.0}, "delta: applies to huber, not to bce"),
    ({"eps": 0.1}, "eps: the exact convention does not clip; eps applies to keras, tf-keras"),
])
def test_api_messages_name_parameters(kw, message):
    with pytest.raises(OptionError) as e:
        lossgrad.bce([1.0], [0.5], **kw)
    assert str(e.value) == message


def test_the_command_line_names_its_options_in_the_same_message():
    with pytest.raises(OptionError) as e:
        setup("bce", pos_weight=[2.0])
    assert e.value.message(cli_name) == ("--pos-weight: applies to bce from logits (--from-logits), as PyTorch's "
                                         "pos_weight")


def test_per_class_weights_are_checked():
    s = setup("ce", class_weights=[1, 2.5])
    assert np.array_equal(s.params["class_weights"], [1.0, 2.5])
    with pytest.raises(OptionError, match="one non-negative number per class"):
        setup("ce", class_weights=[1, -2])
