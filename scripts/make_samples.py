"""Writes samples/*.csv: small, real model outputs for the README and the tests.

Each sample is a model actually fitted here (plain numpy gradient descent on a fixed synthetic data set,
seed 7), and its held-out targets with the model's outputs: logits for the classifiers, values for the
regression. Run from the project root: python scripts/make_samples.py
"""

from pathlib import Path

import numpy as np

rng = np.random.default_rng(7)
out = Path(__file__).resolve().parent.parent / "samples"
out.mkdir(exist_ok=True)


def fit_logistic(x, y, steps=300, lr=0.5):
    w = np.zeros(x.shape[1])
    b = 0.0
    for _ in range(steps):
        z = x @ w + b
        g = 1 / (1 + np.exp(-z)) - y
        w -= lr * x.T @ g / len(y)
        b -= lr * g.mean()
    return w, b


def fit_softmax(x, y, classes, steps=300, lr=0.5):
    w = np.zeros((x.shape[1], classes))
    onehot = np.eye(classes)[y]
    for _ in range(steps):
        z = x @ w
        s = np.exp(z - z.max(axis=1, keepdims=True))
        s /= s.sum(axis=1, keepdims=True)
        w -= lr * x.T @ (s - onehot) / len(y)
    return w


def write(name, header, rows):
    with open(out / name, "w") as f:
        f.write(",".join(header) + "\n")
        for r in rows:
            f.write(",".join(repr(float(v)) if not float(v).is_integer() or i >= 1 else str(int(v))
                             for i, v in enumerate(r)) + "\n")


# binary: two Gaussian blobs, logistic regression, 24 held-out rows of target,logit
x = rng.normal(size=(224, 3)) + np.repeat([[0.8, -0.5, 0.3], [-0.8, 0.5, -0.3]], 112, axis=0)
y = np.repeat([1.0, 0.0], 112)
perm = rng.permutation(224)
x, y = x[perm], y[perm]
w, b = fit_logistic(x[:200], y[:200])
z = np.round(x[200:] @ w + b, 4)
write("binary_logits.csv", ["target", "logit"], np.column_stack([y[200:], z]))

# multiclass: three blobs, softmax regression, 12 held-out rows of label,z0,z1,z2
centres = np.array([[2.0, 0.0], [-1.0, 1.7], [-1.0, -1.7]])
labels = rng.integers(0, 3, size=112)
x = centres[labels] + rng.normal(size=(112, 2))
xb = np.column_stack([x, np.ones(len(x))])
w = fit_softmax(xb[:100], labels[:100], 3)
z = np.round(xb[100:] @ w, 4)
write("multiclass_logits.csv", ["label", "z0", "z1", "z2"], np.column_stack([labels[100:], z]))

# regression with two outputs: least squares on noisy linear data, 10 held-out rows
x = rng.normal(size=(110, 3))
t = x @ np.array([[1.0, -0.5], [0.3, 0.8], [-0.7, 0.2]]) + 0.2 * rng.normal(size=(110, 2))
coef, *_ = np.linalg.lstsq(x[:100], t[:100], rcond=None)
pred = x[100:] @ coef
rows = np.column_stack([np.round(t[100:], 4), np.round(pred, 4)])
with open(out / "regression.csv", "w") as f:
    f.write("price,demand,price_hat,demand_hat\n")
    for r in rows:
        f.write(",".join(repr(float(v)) for v in r) + "\n")

# tokens: a bigram language model over 5 tokens (softmax regression on the previous token, one-hot), fitted on a
# Markov chain; 2 held-out sequences of 6 next-token predictions: float32 logits [2, 6, 5] and int64 labels [2, 6],
# the second sequence padded with -100 (PyTorch's ignore_index) after its 4th token
chain = np.array([[0.1, 0.6, 0.1, 0.1, 0.1], [0.1, 0.1, 0.6, 0.1, 0.1], [0.3, 0.1, 0.1, 0.4, 0.1],
                  [0.1, 0.1, 0.1, 0.1, 0.6], [0.7, 0.1, 0.1, 0.05, 0.05]])
seq = [0]
for _ in range(413):
    seq.append(int(rng.choice(5, p=chain[seq[-1]])))
seq = np.array(seq)
w = fit_softmax(np.eye(5)[seq[:400]], seq[1:401], 5)
held = seq[400:414].reshape(2, 7)
logits = np.round(np.eye(5)[held[:, :6]] @ w, 4).astype(np.float32)
labels = held[:, 1:].copy()
labels[1, 4:] = -100
np.savez(out / "tokens.npz", logits=logits, labels=labels)
