"""Tensor files for the losses of more than a target and a prediction: --var, --negative, --other and --label as
files (or numbers), contrastive's two embedding matrices, and every gradient written with -o (grad_var,
grad_negative, grad_other, grad_target) as the in-memory API gives it, bit for bit."""

import json

import numpy as np
import pytest

import lossgrad
from conftest import assert_usage_error, lossgrad as run_cli


def _main(args, capsys):
    from lossgrad import cli

    with pytest.raises(SystemExit) as e:
        cli.main([str(a) for a in args])
    assert e.value.code == 0
    return capsys.readouterr()


def _cases(rng):
    """(loss, API function, target, pred, the extra input's name and array, params) with leading shapes."""
    y, p = rng.normal(size=(3, 4, 5)), rng.normal(size=(3, 4, 5))
    v = rng.uniform(0.2, 2.0, size=(3, 4, 5))
    return [
        ("gaussian-nll", lossgrad.gaussian_nll, y, p, "var", v, {}),
        ("gaussian-nll", lossgrad.gaussian_nll, y, p, "var", v[..., 0], {"full": True}),  # one per sample
        ("triplet", lossgrad.triplet, y, p, "negative", rng.normal(size=(3, 4, 5)), {"margin": 0.5}),
        ("margin-ranking", lossgrad.margin_ranking, np.sign(y[0]), p[0], "other", y[1], {"margin": 0.1}),
        ("cosine-embedding", lossgrad.cosine_embedding, y, p, "label", np.sign(v[..., 0] - 1), {"margin": 0.2}),
        ("contrastive", lossgrad.contrastive, y[0], p[0], None, None, {"temperature": 0.5}),
        ("contrastive", lossgrad.contrastive, y[0], p[0], None, None, {"symmetric": True}),
        ("contrastive", lossgrad.contrastive, y[0], p[0], None, None, {"ntxent": True}),
    ]


CASES = _cases(np.random.default_rng(11))


def _flags(params):
    out = []
    for k, v in params.items():
        out += [f"--{k.replace('_', '-')}"] if v is True else [f"--{k.replace('_', '-')}", str(v)]
    return out


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_written_arrays_are_the_in_memory_ones(case, reduction, tmp_path, capsys):
    loss, fn, y, p, name, extra, params = case
    np.save(tmp_path / "y.npy", y)
    np.save(tmp_path / "p.npy", p)
    args = [loss, "-p", tmp_path / "p.npy", "-y", tmp_path / "y.npy", "-o", tmp_path / "out.npz", "-f", "json",
            "--reduction", reduction, *_flags(params)]
    kw = dict(params)
    if name:
        np.save(tmp_path / "x.npy", extra)
        args += [f"--{name}", tmp_path / "x.npy"]
        kw[name] = extra
    summary = json.loads(_main(args, capsys).out)
    want = fn(y, p, reduction=reduction, **kw)
    got = np.load(tmp_path / "out.npz")
    assert summary["value"] == want.value
    assert np.array_equal(got["losses"].reshape(-1), want.losses.reshape(-1))
    assert np.array_equal(got["grad"], want.grad.reshape(p.shape))
    for k, g in want.grads.items():  # (the target's, and the extra input's where it is differentiated)
        shape = y.shape if k == "target" else extra.shape
        assert np.array_equal(got[f"grad_{k}"], g.reshape(shape)), k
    assert set(got) == {"losses", "grad", *(f"grad_{k}" for k in want.grads)}
    if name:
        assert summary[name]["shape"] == list(extra.shape)


def test_small_blocks_read_the_extra_input_in_step(tmp_path, monkeypatch, capsys):
    from lossgrad import tensor_run

    loss, fn, y, p, name, extra, params = CASES[1]  # a variance per sample, read a row at a time beside the rest
    for a, f in ((y, "y"), (p, "p"), (extra, "x")):
        np.save(tmp_path / f"{f}.npy", a)
    monkeypatch.setattr(tensor_run, "BLOCK_BYTES", 8 * 5 * 3)
    _main([loss, "-p", tmp_path / "p.npy", "-y", tmp_path / "y.npy", "--var", tmp_path / "x.npy", "--full",
           "-o", tmp_path / "out.npz"], capsys)
    got, want = np.load(tmp_path / "out.npz"), fn(y, p, var=extra, full=True)
    assert np.array_equal(got["grad"], want.grad.reshape(p.shape))
    assert np.array_equal(got["grad_var"], want.grads["var"].reshape(extra.shape))


def test_numbers_beside_tensor_files(tmp_path, capsys):
    # --label typed as numbers, the embeddings as files: the same result as all in memory
    y, p = np.eye(3), np.array([[1.0, 0.2, 0.0], [0.1, 1.0, 0.3], [0.0, -1.0, 0.5]])
    np.save(tmp_path / "y.npy", y)
    np.save(tmp_path / "p.npy", p)
    out = json.loads(_main(["cosine-embedding", "-p", tmp_path / "p.npy", "-y", tmp_path / "y.npy", "--label",
                            "1,-1,-1", "-f", "json"], capsys).out)
    assert out["value"] == lossgrad.cosine_embedding(y, p, label=[1, -1, -1]).value


def test_a_file_for_the_extra_input_alone(tmp_path):
    # --pred and --target typed, --var a file: a tensor run all the same
    np.save(tmp_path / "v.npy", np.array([0.5, 2.0]))
    r = run_cli("gaussian-nll", "-p", "1,2", "-y", "0,0", "--var", tmp_path / "v.npy", "-f", "json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["value"] == lossgrad.gaussian_nll([0, 0], [1, 2], var=[0.5, 2.0]).value


def test_compare_and_check_read_the_extra_input(tmp_path):
    rng = np.random.default_rng(2)
    y, p, neg = rng.normal(size=(4, 3)), rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    for a, f in ((y, "y"), (p, "p"), (neg, "n")):
        np.save(tmp_path / f"{f}.npy", a)
    files = ["-p", tmp_path / "p.npy", "-y", tmp_path / "y.npy", "--negative", tmp_path / "n.npy"]
    r = run_cli("compare", "triplet", *files, "-f", "json")
    assert r.code == 0, r.err
    want = lossgrad.triplet(y, p, negative=neg, convention="torch")
    torch = json.loads(r.out)["conventions"]["torch"]
    assert torch["value"] == want.value and np.array_equal(torch["grad_negative"], want.grads["negative"])
    r = run_cli("check", "triplet", *files, "--my-loss", repr(want.value), "-f", "json")
    assert r.code == 0, r.err
    assert "torch" in r.out


@pytest.mark.parametrize("extra, words", [
    ([], "--var: is missing: gaussian-nll takes the variances"),
    (["--var", "SHAPE"], "--var: has shape [2, 2] but --pred has [2, 3]"),
    (["--var", "NAN"], "--var: "),
    (["--var", "NEG"], "--var: "),
])
def test_errors_name_the_extra_input(extra, words, tmp_path):
    np.save(tmp_path / "p.npy", np.ones((2, 3)))
    np.save(tmp_path / "y.npy", np.zeros((2, 3)))
    arrays = {"SHAPE": np.ones((2, 2)), "NAN": np.array([[1.0, 1, 1], [1, np.nan, 1]]),
              "NEG": np.array([[1.0, 1, 1], [1, 1, -2.0]])}
    args = []
    for a in extra:
        if a in arrays:
            np.save(tmp_path / "v.npy", arrays[a])
            a = tmp_path / "v.npy"
        args.append(a)
    r = run_cli("gaussian-nll", "-p", tmp_path / "p.npy", "-y", tmp_path / "y.npy", *args)
    assert_usage_error(r, words)
    if extra and extra[1] == "NAN":
        assert "v.npy[1, 1]" in r.err and "nan" in r.err
    if extra and extra[1] == "NEG":
        assert "v.npy[1, 2]" in r.err and "negative" in r.err
