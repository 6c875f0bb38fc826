"""evaluation.evaluate: one block in, its losses and gradients out, with no state kept between blocks."""

import math

import numpy as np

from lossgrad.evaluation import evaluate, evaluate_slice
from lossgrad.options import setup


def test_ce_from_logits_by_hand_and_ignored_samples():
    # z = (0, 0): softmax (1/2, 1/2), loss log 2, gradient softmax - onehot = (-1/2, 1/2), worked by hand
    s = setup("ce", from_logits=True, ignore_index=-100)
    block = evaluate_slice(s, np.array([[0.0], [-100.0]]), np.zeros((2, 2)))
    assert block.parts.losses.tolist() == [math.log(2), 0.0]
    assert block.parts.grad.tolist() == [[-0.5, 0.5], [0.0, 0.0]]
    assert block.count == 1 and block.labels.tolist() == [0, 0] and block.per_sample


def test_blocks_are_independent_of_order_and_repetition():
    s = setup("bce", from_logits=True)
    rng = np.random.default_rng(3)
    y, z = rng.integers(0, 2, (50, 1)).astype(float), rng.normal(size=(50, 1))
    once = evaluate(s, y, z)[0].parts
    evaluate(s, y[::-1], z[::-1])
    again = evaluate(s, y, z)[0].parts
    assert once.losses.tolist() == again.losses.tolist() and once.grad.tolist() == again.grad.tolist()


def test_keras_last_axis_mean_makes_one_loss_per_sample():
    # mse under Keras averages a sample's outputs: ((1 - 0)² + (3 - 0)²) / 2 = 5, each gradient 2e/2 = e
    s = setup("mse", convention="keras")
    block = evaluate_slice(s, np.zeros((1, 2)), np.array([[1.0, 3.0]]))
    assert block.parts.losses.tolist() == [5.0] and block.parts.grad.tolist() == [[1.0, 3.0]] and block.per_sample
