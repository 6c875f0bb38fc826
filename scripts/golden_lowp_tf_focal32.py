"""Record TensorFlow's float32 CPU results for Keras' focal losses under Keras 3 and tf-keras (binary focal on
probabilities and from logits, categorical focal on probability rows and from logits), and categorical focal from
logits in bfloat16 (and, in float16 and bfloat16, binary focal of soft targets and single classes), for
tests/golden/lowp_tf_focal32.json (read by tests/test_lowp_tf_focal32.py).

Each record is golden_lowp_tf_log's: the per-sample losses, and the value and GradientTape gradient under "sum" and
"sum_over_batch_size". Inputs are random and adversarial: probabilities at 0 and 1, at and beyond Keras' clip [ε, 1
− ε] and near it; logits large in magnitude both ways, at the float logistic's cap 16.6355324 and its floor −104, at
0; γ = 0, ½, 1, 2, 2.5 (and a drawn one), α unset and set (categorical: one, or one per class); rows of 1 to 1000
outputs around the packets of 8 (Eigen) and the registers of 16 (oneDNN's softmax), rows of 8200 (the reducer's
tree), and a batch of more than 32768 elements (the thread pool's blocks). The TensorFlow build, oneDNN's version
and the processor's flags are recorded: float32 pow and sigmoid are Eigen's float kernels (AVX without FMA), the
softmax oneDNN's, whose code is generated for the processor at run time (AVX-512 here), and the reciprocal of log's
gradient the processor's rcpps.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from golden_lowp_tf_log import _probs, record  # noqa: E402
from make_golden import versions  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "lowp_tf_focal32.json"
GAMMAS = (0.0, 0.5, 1.0, 2.0, 2.5)
EDGES = np.array([0, 1, 1e-7, 1 - 1e-7, 5e-8, 1 - 6e-8, 1.2e-7, 1e-3, 0.999, 0.5, 1e-30, 1 - 2e-7], np.float32)
LOGIT_EDGES = np.array([0, 16.6355324, 16.64, -104, -103.9, 88.7, -88.7, 100, -100, 20, -20, 1e-30, 30, -30,
                        9.5, -9.5, 17, -17], np.float32)


def _logits(rng, shape: tuple[int, int]) -> np.ndarray:
    z = rng.standard_normal(shape) * rng.choice([0.3, 3.0, 12.0, 40.0], (shape[0], 1))
    edge = rng.random(shape) < 0.1
    z[edge] = rng.choice(LOGIT_EDGES, edge.sum())
    return z.astype(np.float32)


def _edged(rng, shape: tuple[int, int]) -> np.ndarray:
    p = _probs(rng, shape)
    edge = rng.random(shape) < 0.1
    p[edge] = rng.choice(EDGES, edge.sum())
    return p


def focal_cases(rng) -> list[tuple]:
    """(loss, target, prediction, from_logits, note, labels, params) for binary focal."""
    out = []
    shapes = [(1, 1), (7, 5), (13, 1), (9, 17), (3, 40), (2, 7), (4, 16), (1, 33), (6, 31), (2, 300)]
    for i, shape in enumerate(shapes):
        gamma = GAMMAS[i % len(GAMMAS)] if i < 8 else float(np.float32(rng.uniform(0.1, 3)))
        for alpha in (None, 0.25) if i % 2 else (None, float(np.float32(rng.uniform(0, 1)))):
            hard = (rng.random(shape) < 0.5).astype(np.float32)
            y = hard if alpha is None else rng.choice([0.0, 1.0, 0.3], shape).astype(np.float32)
            params = {"gamma": gamma, "alpha": alpha}
            note = f"gamma {gamma}, alpha {alpha}"
            out.append(("focal", y, _edged(rng, shape), False, note, None, params))
            out.append(("focal", y, _logits(rng, shape), True, f"logits, {note}", None, params))
    for gamma in GAMMAS:  # (every edge at every γ: p and 1 − p at and beyond the clip, against both targets)
        p = np.concatenate([EDGES, EDGES])[None, :]
        y = np.repeat([[1.0, 0.0]], EDGES.size, axis=0).T.reshape(1, -1).astype(np.float32)
        out.append(("focal", y, p, False, f"edges, gamma {gamma}", None, {"gamma": gamma, "alpha": None}))
        z = np.concatenate([LOGIT_EDGES, -LOGIT_EDGES])[None, :]
        y = (np.arange(z.size) % 3 == 0).astype(np.float32)[None, :]
        out.append(("focal", y, z, True, f"logit edges, gamma {gamma}", None, {"gamma": gamma, "alpha": 0.25}))
    return out


def categorical_cases(rng) -> list[tuple]:
    """(loss, target, prediction, from_logits, note, labels, params) for categorical focal."""
    out = []
    shapes = [(1, 1), (7, 5), (9, 17), (13, 3), (4, 16), (3, 15), (5, 32), (2, 33), (6, 64), (2, 65), (4, 100),
              (3, 300), (2, 1000)]
    for i, shape in enumerate(shapes):
        gamma = GAMMAS[i % len(GAMMAS)]
        alpha = (None, [0.25], [2.0], None)[i % 4] if i < 9 else np.float32(rng.uniform(0.05, 2, shape[1])).tolist()
        params = {"gamma": gamma, "class_alpha": alpha}
        rows = rng.dirichlet(np.full(shape[1], 0.5), shape[0]).astype(np.float32)
        onehot = np.eye(shape[1], dtype=np.float32)[rng.integers(0, shape[1], shape[0])]
        note = f"gamma {gamma}, alpha {alpha}"
        out.append(("categorical-focal", rows, _edged(rng, shape), False, f"soft rows, {note}", None, params))
        out.append(("categorical-focal", onehot, rng.dirichlet(np.full(shape[1], 0.3), shape[0]).astype(np.float32),
                    False, f"one-hot rows, {note}", None, params))
        out.append(("categorical-focal", rows, _logits(rng, shape), True, f"logits, {note}", None, params))
    z = np.repeat(LOGIT_EDGES[None, :], 3, axis=0)
    z[1], z[2] = -z[1], z[2] * 0.01
    y = np.eye(z.shape[1], dtype=np.float32)[[1, 3, 0]]
    out.append(("categorical-focal", y, z, True, "logit edges", None, {"gamma": 2.0, "class_alpha": None}))
    p = np.repeat(EDGES[None, :], 2, axis=0)
    out.append(("categorical-focal", np.eye(EDGES.size, dtype=np.float32)[[0, 4]], p, False, "probability edges",
                None, {"gamma": 0.5, "class_alpha": [0.25]}))
    out.append(("categorical-focal", np.ones((4, 1), np.float32), np.array([[0], [1e-30], [0.5], [1]], np.float32),
                False, "a single class, at 0 (0/0)", None, {"gamma": 0.0, "class_alpha": None}))
    return out


def wide_cases(rng) -> list[tuple]:
    """Rows of 8200 (the reducer's tree) in a batch of 32,800 elements (the thread pool's blocks)."""
    big = (rng.random((4, 8200)) < 0.5).astype(np.float32)
    rows = rng.dirichlet(np.full(8200, 0.5), 1).astype(np.float32)
    return [("focal", big, _logits(rng, (4, 8200)), True, "rows for the reducer's tree, beyond the thread pool's "
             "blocks", None, {"gamma": 1.5, "alpha": 0.25}),
            ("categorical-focal", rows, _logits(rng, (1, 8200)), True, "a row for the reducer's tree", None,
             {"gamma": 2.5, "class_alpha": None})]


def main() -> None:
    rng = np.random.default_rng(20261204)
    records = []
    narrow = focal_cases(rng) + categorical_cases(rng)
    for conv in ("keras", "tf-keras"):
        for loss, y, p, logits, note, labels, params in narrow:
            records.append(record(conv, loss, y, p, note, "float32", logits, labels, params))
    for loss, y, p, logits, note, labels, params in narrow:
        if loss == "categorical-focal" and logits and len(params["class_alpha"] or ()) <= 1:  # (oneDNN's softmax)
            for conv in ("keras", "tf-keras"):
                records.append(record(conv, loss, y, p, note, "bfloat16", logits, labels, params))
        # (the half dtypes where soft targets reach p by two paths, and a single class at 0: 0/0)
        if (loss == "focal" and not logits and params["alpha"] is not None or "single" in note) and p.size <= 200:
            for dtype in ("float16", "bfloat16"):
                records.append(record("keras", loss, y, p, note, dtype, logits, labels, params))
    for loss, y, p, logits, note, labels, params in wide_cases(rng):
        records.append(record("keras", loss, y, p, note, "float32", logits, labels, params))
    cpu = Path("/proc/cpuinfo").read_text().splitlines()
    flags = sorted({f for line in cpu if line.startswith("flags") for f in line.split(":")[1].split()
                    if f.startswith(("avx", "fma", "sse4", "f16c"))})
    meta = {"versions": versions(), "build": {k: str(v) for k, v in tf.sysconfig.get_build_info().items()},
            "onednn": _onednn(), "cpu_flags": flags,
            "cpu": next((line.split(":")[1].strip() for line in cpu if line.startswith("model name")), "")}
    OUT.write_text(json.dumps({"meta": meta, "cases": records}, indent=None) + "\n")
    print(f"{len(records)} records -> {OUT} ({OUT.stat().st_size} bytes)")


def _onednn() -> str:
    """oneDNN's version and the instruction set its kernels were generated for, from its verbose lines (a child
    process: the verbose switch is read once, at start-up)."""
    import subprocess
    code = "import tensorflow as tf; tf.nn.softmax(tf.ones((2, 3)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"ONEDNN_VERBOSE": "1", "PATH": "/usr/bin:/bin"}).stdout.splitlines()
    return "; ".join(line.split(",", 3)[3] for line in out
                     if line.startswith("onednn_verbose") and ("oneDNN v" in line or ",softmax," in line))


if __name__ == "__main__":
    main()
