"""Arrays pasted as numpy and PyTorch print them read as the numbers they show."""

import pytest

from conftest import assert_usage_error, lossgrad
from lossgrad.inputs import parse_inline
from lossgrad.pasted import unpaste

MATRIX = [[0.1, 0.9], [0.8, 0.2]]


@pytest.mark.parametrize("text", [
    "[[0.1, 0.9], [0.8, 0.2]]",                                  # a Python list, numpy's repr of a list
    "[[0.1 0.9]\n [0.8 0.2]]",                                    # print(np.array(...))
    "array([[0.1, 0.9],\n       [0.8, 0.2]])",                    # repr(np.array(...))
    "array([[0.1, 0.9], [0.8, 0.2]], dtype=float32)",
    "np.array([[0.1, 0.9], [0.8, 0.2]])",
    "tensor([[0.1000, 0.9000],\n        [0.8000, 0.2000]], dtype=torch.float64)",   # print(torch.tensor(...))
    "tensor([[0.1000, 0.9000],\n        [0.8000, 0.2000]], requires_grad=True)",
    "tensor([[0.1000, 0.9000], [0.8000, 0.2000]], device='cuda:0', grad_fn=<SoftmaxBackward0>)",
    "0.1,0.9;0.8,0.2",                                            # lossgrad's own syntax, untouched
])
def test_pasted_matrices(text):
    assert parse_inline(text, "{pred}").tolist() == MATRIX


@pytest.mark.parametrize("text,want", [
    ("[1, 2, 3]", [1.0, 2.0, 3.0]),
    ("[1. 2. 3.]", [1.0, 2.0, 3.0]),
    ("array([1.e-05, 2.e+00])", [1e-05, 2.0]),
    ("tensor([2, 0, 1])", [2.0, 0.0, 1.0]),
    ("[[1, 2]]", [[1.0, 2.0]]),                                   # one row is still a matrix
])
def test_pasted_vectors_and_one_row(text, want):
    assert parse_inline(text, "{pred}").tolist() == want


def test_unpaste_leaves_plain_text_alone():
    assert unpaste("1 2 3", "{pred}") == "1 2 3"


@pytest.mark.parametrize("text,fragment", [
    ("[0.1, ..., 0.9]", "printed in summary"),
    ("[[[0.1, 0.9]]]", "3 dimensions"),
    ("[[0.1, 0.9], [0.8, 0.2]", "brackets that do not match"),
])
def test_pasted_arrays_that_cannot_be_read(text, fragment):
    assert_usage_error(lossgrad("bce", "-y", "0,1", "-p", text), "--pred: ", fragment)


def test_a_pasted_ce_example_end_to_end():
    r = lossgrad("ce", "--from-logits", "-y", "tensor([2, 0])", "-p",
                 "tensor([[ 0.3000, -1.2000,  2.0000],\n        [ 1.5000,  0.2000, -0.4000]])", "-f", "json")
    plain = lossgrad("ce", "--from-logits", "-y", "2,0", "-p", "0.3,-1.2,2.0;1.5,0.2,-0.4", "-f", "json")
    assert r.code == 0 and r.json() == plain.json()
