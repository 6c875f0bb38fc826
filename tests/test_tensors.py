"""Tensor files in and out (.npy, .npz, .safetensors, parquet, Arrow, globs of shards), any leading shape, and
the -o rules for tensor outputs."""

import json
import math
import os
import struct
from pathlib import Path

import numpy as np
import pytest

import lossgrad
from conftest import assert_usage_error, lossgrad as run
from lossgrad import cli, tensor_run
from reference import ce_logits, ulps

GOLDEN = json.loads((Path(__file__).resolve().parent / "golden" / "tokens.json").read_text())
IGNORE = -100


def logits_and_labels(dtype=np.float64, shape=(2, 3, 5), seed=3):
    rng = np.random.default_rng(seed)
    z = rng.normal(scale=3.0, size=shape).astype(dtype)
    y = rng.integers(0, shape[-1], size=shape[:-1])
    y.reshape(-1)[::4] = IGNORE  # every fourth token left out
    return z, y


def write_safetensors(path, tensors, dtypes):
    """The safetensors layout written by hand: 8-byte little-endian header length, JSON header, raw data."""
    header, offset, blobs = {}, 0, []
    for (name, a), code in zip(tensors.items(), dtypes, strict=True):
        raw = np.ascontiguousarray(a).tobytes()
        header[name] = {"dtype": code, "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    text = json.dumps(header).encode()
    Path(path).write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def read_safetensors(path):
    data = Path(path).read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    codes = {"F32": np.float32, "F64": np.float64}
    return {k: np.frombuffer(data[8 + n + v["data_offsets"][0]: 8 + n + v["data_offsets"][1]],
                             dtype=codes[v["dtype"]]).reshape(v["shape"]) for k, v in header.items()
            if k != "__metadata__"}


def ce_json(tmp_path, pred, target, *extra):
    r = run("ce", "--from-logits", "--pred", pred, "--target", target, "--ignore-index", IGNORE, *extra,
            "-f", "json", cwd=tmp_path)
    assert r.code == 0, r.err
    return r.json()


# ---------------------------------------------------------------- [B, T, V] cross entropy


def test_ce_over_tokens_against_mpmath(tmp_path):
    z, y = logits_and_labels()
    np.save(tmp_path / "z.npy", z)
    np.save(tmp_path / "y.npy", y)
    out = ce_json(tmp_path, "z.npy", "y.npy", "-o", "out.npz")
    kept = [(b, t) for b in range(2) for t in range(3) if y[b, t] != IGNORE]
    truths = {(b, t): ce_logits(np.eye(5)[y[b, t]], z[b, t]) for b, t in kept}
    mean = sum(loss for loss, _ in truths.values()) / len(kept)
    assert out["n"] == len(kept) == 4 and out["dtype"] == "float64" and out["losses_shape"] == [2, 3]
    assert ulps(out["value"], mean) <= 4
    got = np.load(tmp_path / "out.npz")
    assert got["losses"].shape == (2, 3) and got["grad"].shape == (2, 3, 5)
    for (b, t), (loss, grad) in truths.items():
        assert ulps(got["losses"][b, t], loss) <= 4
        assert max(ulps(g, d / len(kept)) for g, d in zip(got["grad"][b, t], grad, strict=True)) <= 4
    ignored = y == IGNORE
    assert (got["losses"][ignored] == 0).all() and (got["grad"][ignored] == 0).all()


def test_ce_over_tokens_is_the_flattened_2d_batch(tmp_path):
    z, y = logits_and_labels(np.float64, (3, 4, 6))
    np.save(tmp_path / "z.npy", z)
    np.save(tmp_path / "y.npy", y)
    out = ce_json(tmp_path, "z.npy", "y.npy", "-o", "out.npz")
    flat = lossgrad.ce(y.reshape(-1), z.reshape(-1, 6), from_logits=True, ignore_index=IGNORE)
    got = np.load(tmp_path / "out.npz")
    assert out["value"] == flat.value and out["n"] == flat.n
    assert np.array_equal(got["losses"].reshape(-1), flat.losses)
    assert np.array_equal(got["grad"].reshape(-1, 6), flat.grad)
    # the API takes the [B, T, V] arrays too, and keeps their shape
    api = lossgrad.ce(y, z, from_logits=True, ignore_index=IGNORE)
    assert api.value == flat.value and api.losses.shape == (3, 4) and np.array_equal(api.grad, got["grad"])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_float32_tokens_as_pytorch(tmp_path, reduction):
    np.save(tmp_path / "z.npy", np.array(GOLDEN["logits"], dtype=np.float32))
    np.save(tmp_path / "y.npy", np.array(GOLDEN["labels"]))
    out = ce_json(tmp_path, "z.npy", "y.npy", "-c", "torch", "-r", reduction, "-o", "out.npz")
    want = GOLDEN["torch"][reduction]
    got = np.load(tmp_path / "out.npz")
    assert out["dtype"] == "float32" and got["grad"].dtype == np.float32
    if want["value"] is not None:
        assert ulps(out["value"], want["value"], np.float32) <= 2
    else:
        np.testing.assert_allclose(got["losses"], want["losses"], rtol=4e-7, atol=1e-7)
    np.testing.assert_allclose(got["grad"], want["grad"], rtol=4e-7, atol=3e-8)


@pytest.mark.parametrize("case", GOLDEN["keras"], ids=["every-label", "ignore_class"])
def test_float32_tokens_as_keras(tmp_path, case):
    np.save(tmp_path / "z.npy", np.array(GOLDEN["logits"], dtype=np.float32))
    np.save(tmp_path / "y.npy", np.array(case["labels"]))
    extra = [] if case["ignore_class"] is None else ["--ignore-index", case["ignore_class"]]
    r = run("ce", "--from-logits", "-p", "z.npy", "-y", "y.npy", "-c", "keras", *extra, "-o", "out.npz", "-f",
            "json", cwd=tmp_path)
    assert r.code == 0, r.err
    got = np.load(tmp_path / "out.npz")
    assert ulps(r.json()["value"], case["value"], np.float32) <= 2
    np.testing.assert_allclose(got["losses"], case["losses"], rtol=4e-7, atol=1e-7)
    np.testing.assert_allclose(got["grad"], case["grad"], rtol=4e-7, atol=3e-8)


def test_the_value_does_not_depend_on_the_block(tmp_path, monkeypatch, capsys):
    z, y = logits_and_labels(np.float64, (7, 50, 9))
    np.save(tmp_path / "z.npy", z)
    np.save(tmp_path / "y.npy", y)
    results = []
    for block in (1 << 30, 9 * 8 * 13):  # everything at once; 13 rows a block
        monkeypatch.setattr(tensor_run, "BLOCK_BYTES", block)
        out = tmp_path / f"out{block}.npz"
        with pytest.raises(SystemExit) as e:
            cli.main(["ce", "--from-logits", "-p", str(tmp_path / "z.npy"), "-y", str(tmp_path / "y.npy"),
                      "--ignore-index", str(IGNORE), "-o", str(out), "-f", "json"])
        assert e.value.code == 0
        results.append((json.loads(capsys.readouterr().out)["value"], np.load(out)))
    (v1, a), (v2, b) = results
    assert abs(v1 - v2) <= 2 * np.spacing(abs(v1))
    assert np.array_equal(a["grad"], b["grad"]) and np.array_equal(a["losses"], b["losses"])


# ---------------------------------------------------------------- every input format


@pytest.fixture
def tokens(tmp_path):
    """[2, 3, 5] float32 logits and int64 labels, and the reference run on .npy files."""
    z, y = logits_and_labels(np.float32)
    np.save(tmp_path / "z.npy", z)
    np.save(tmp_path / "y.npy", y)
    return z, y, ce_json(tmp_path, "z.npy", "y.npy")


def same_run(a, b):
    return (a["value"], a["n"], a["dtype"], a["losses_shape"]) == (b["value"], b["n"], b["dtype"], b["losses_shape"])


def test_npz_members_by_key_alone_and_compressed(tmp_path, tokens):
    z, y, ref = tokens
    np.savez(tmp_path / "both.npz", logits=z, labels=y)
    np.savez(tmp_path / "one.npz", z)
    np.savez_compressed(tmp_path / "packed.npz", labels=y)
    assert same_run(ce_json(tmp_path, "both.npz:logits", "both.npz:labels"), ref)
    assert same_run(ce_json(tmp_path, "one.npz", "packed.npz"), ref)


def test_safetensors_written_by_hand(tmp_path, tokens):
    z, y, ref = tokens
    write_safetensors(tmp_path / "step.safetensors", {"logits": z, "labels": y}, ["F32", "I64"])
    out = ce_json(tmp_path, "step.safetensors:logits", "step.safetensors:labels")
    assert same_run(out, ref) and out["pred"]["shape"] == [2, 3, 5] and out["target"]["dtype"] == "int64"
    write_safetensors(tmp_path / "i32.safetensors", {"labels": y.astype(np.int32)}, ["I32"])
    assert same_run(ce_json(tmp_path, "step.safetensors:logits", "i32.safetensors"), ref)


@pytest.mark.parametrize("half,code", [("float16", "F16"), ("bfloat16", "BF16")])
def test_half_precision_logits_give_results_in_their_dtype(tmp_path, half, code):
    import ml_dtypes

    dtype = np.float16 if half == "float16" else ml_dtypes.bfloat16
    z, y = logits_and_labels(np.float32)
    zh = z.astype(dtype)
    write_safetensors(tmp_path / "h.safetensors", {"logits": zh}, [code])
    np.save(tmp_path / "y.npy", y)
    np.save(tmp_path / "z32.npy", zh.astype(np.float32))  # (exact: every half value is a float32)
    out = ce_json(tmp_path, "h.safetensors", "y.npy", "-o", "out.npz")
    want = lossgrad.ce(y, zh.astype(np.float64), from_logits=True, ignore_index=IGNORE, dtype=half)
    assert out["dtype"] == half and out["pred"]["dtype"] == half and out["value"] == want.value
    assert np.array_equal(np.load(tmp_path / "out.npz")["grad"], np.asarray(want.grad, dtype=np.float32))
    # Keras' half-precision kernels take ignore_index: the file's dtype
    keras = ce_json(tmp_path, "h.safetensors", "y.npy", "-c", "keras")
    assert keras["dtype"] == half and not any("computed in float32" in n for n in keras.get("notes", []))
    # with class weights as well they do not (the mask times fit's sample weights): float32, and a note saying why
    weights = ("--class-weights", ",".join(["1", "2"] * (z.shape[-1] // 2) + ["1"] * (z.shape[-1] % 2)))
    both = ce_json(tmp_path, "h.safetensors", "y.npy", "-c", "keras", *weights)
    assert both["dtype"] == "float32" and any(f"is {half}: computed in float32" in n for n in both["notes"])
    assert same_run(both, ce_json(tmp_path, "z32.npy", "y.npy", "-c", "keras", *weights))
    wide = ce_json(tmp_path, "h.safetensors", "y.npy", "--dtype", "float64")
    assert wide["dtype"] == "float64" and wide["value"] == lossgrad.ce(
        y, zh.astype(np.float64), from_logits=True, ignore_index=IGNORE).value


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
@pytest.mark.parametrize("convention", ["torch", "exact"])
def test_written_gradient_is_the_kernels_own_mean(tmp_path, dtype, convention):
    # PyTorch's kernels (and a half dtype's single rounding) bring the mean's 1/N in before they round: the file
    # holds the gradient as the in-memory path gives it (checked against PyTorch by test_lowp.py), bit for bit
    z, y = logits_and_labels(np.float32, (3, 40, 7))
    y = np.where(y == IGNORE, 0, y)
    np.save(tmp_path / "z.npy", z)
    np.save(tmp_path / "y.npy", y)
    r = run("ce", "--from-logits", "--pred", "z.npy", "--target", "y.npy", "-c", convention, "--dtype", dtype,
            "-o", "out.npz", "-f", "json", cwd=tmp_path)
    assert r.code == 0, r.err
    want = lossgrad.ce(y.reshape(-1), z.reshape(-1, 7).astype(np.float64), from_logits=True, convention=convention,
                       dtype=dtype, labels="index")
    got = np.load(tmp_path / "out.npz")["grad"].reshape(-1, 7)
    assert np.array_equal(got, np.asarray(want.grad, dtype=np.float32)) and r.json()["value"] == want.value


def test_float32_results_unless_dtype_says_otherwise(tmp_path, tokens):
    z, y, ref = tokens
    assert ref["dtype"] == "float32"
    assert ref["value"] == lossgrad.ce(y, z, from_logits=True, ignore_index=IGNORE, dtype="float32").value
    wide = ce_json(tmp_path, "z.npy", "y.npy", "--dtype", "float64")
    assert wide["dtype"] == "float64"
    assert wide["value"] == lossgrad.ce(y, z.astype(np.float64), from_logits=True, ignore_index=IGNORE).value


def test_parquet_and_arrow_columns(tmp_path):
    import polars as pl

    rng = np.random.default_rng(5)
    logit, label = rng.normal(size=40), rng.integers(0, 2, 40).astype(np.float64)
    pl.DataFrame({"logit": logit, "label": label}).write_parquet(tmp_path / "preds.parquet")
    r = run("bce", "--from-logits", "--pred", "preds.parquet:logit", "--target", "preds.parquet:label", "-f",
            "json", cwd=tmp_path)
    assert r.code == 0, r.err
    assert r.json()["value"] == lossgrad.bce(label, logit, from_logits=True).value
    # a list column holds one sample's row of classes
    z, y = logits_and_labels(np.float64, (6, 4))
    y = np.where(y == IGNORE, 1, y)
    frame = pl.DataFrame({"z": [list(row) for row in z], "y": y})
    frame.write_ipc(tmp_path / "t.arrow")
    frame.write_ipc(tmp_path / "t.feather")
    for name in ("t.arrow", "t.feather"):
        r = run("ce", "--from-logits", "-p", f"{name}:z", "-y", f"{name}:y", "-f", "json", cwd=tmp_path)
        assert r.code == 0, r.err
        assert r.json()["value"] == lossgrad.ce(y, z, from_logits=True).value and r.json()["pred"]["shape"] == [6, 4]


def test_elementwise_losses_of_any_equal_shape(tmp_path):
    rng = np.random.default_rng(8)
    y, p = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 3, 4))
    np.save(tmp_path / "y.npy", y)
    np.save(tmp_path / "p.npy", p)
    r = run("mse", "-p", "p.npy", "-y", "y.npy", "-o", "o.npz", "-f", "json", cwd=tmp_path)
    assert r.code == 0, r.err
    got, api = np.load(tmp_path / "o.npz"), lossgrad.mse(y, p)
    assert r.json()["value"] == api.value and api.losses.shape == (2, 3, 4)
    assert np.array_equal(got["losses"], api.losses) and np.array_equal(got["grad"], api.grad)
    # Keras averages each sample's last axis: one loss per [2, 3] place
    r = run("mse", "-p", "p.npy", "-y", "y.npy", "-c", "keras", "-o", "k.npz", "-f", "json", cwd=tmp_path)
    keras = lossgrad.mse(y, p, convention="keras")
    assert r.json()["value"] == keras.value and np.load(tmp_path / "k.npz")["losses"].shape == (2, 3)


def test_a_glob_of_shards_is_one_input(tmp_path):
    rng = np.random.default_rng(9)
    y, p = rng.normal(size=(7, 3)), rng.normal(size=(7, 3))
    for i, (a, b) in enumerate([(0, 2), (2, 3), (3, 7)]):
        np.save(tmp_path / f"shard-{i}.npy", p[a:b])
        np.save(tmp_path / f"y-{i}.npy", y[a:b])
    r = run("mse", "--pred", "shard-*.npy", "--target", "y-*.npy", "-o", "o.npz", "-f", "json", cwd=tmp_path)
    assert r.code == 0, r.err
    assert r.json()["value"] == lossgrad.mse(y, p).value and r.json()["pred"]["shape"] == [7, 3]
    assert np.array_equal(np.load(tmp_path / "o.npz")["grad"], lossgrad.mse(y, p).grad)
    np.save(tmp_path / "shard-3.npy", rng.normal(size=(2, 4)))
    assert_usage_error(run("mse", "--pred", "shard-*.npy", "--target", "y-*.npy", cwd=tmp_path),
                       "shard shard-3.npy has shape [2, 4]", "agree beyond the first axis")


# ---------------------------------------------------------------- refusals


def test_pickled_files_are_refused(tmp_path):
    (tmp_path / "logits.pt").write_bytes(b"\x80\x04")
    assert_usage_error(run("ce", "--from-logits", "-p", "logits.pt", "-y", "y.npy", cwd=tmp_path),
                       "--pred: logits.pt", "unpickling", "safetensors")


def test_keys_and_files_that_are_not_there(tmp_path, tokens):
    z, y, _ = tokens
    np.savez(tmp_path / "both.npz", logits=z, labels=y)
    write_safetensors(tmp_path / "s.safetensors", {"logits": z, "labels": y}, ["F32", "I64"])
    assert_usage_error(run("ce", "-p", "both.npz:logit", "-y", "y.npy", cwd=tmp_path),
                       "--pred: both.npz has no array 'logit'; its keys: labels, logits")
    assert_usage_error(run("ce", "-p", "both.npz", "-y", "y.npy", cwd=tmp_path), "pick one as FILE:KEY")
    assert_usage_error(run("ce", "-p", "s.safetensors:x", "-y", "y.npy", cwd=tmp_path),
                       "its keys: labels, logits")
    assert_usage_error(run("ce", "-p", "z.npy", "-y", "nothere.npy", cwd=tmp_path),
                       "--target: nothere.npy: no such file")
    assert_usage_error(run("ce", "-p", "z-*.npy", "-y", "y.npy", cwd=tmp_path), "no file matches")
    (tmp_path / "bad.safetensors").write_bytes(b"\xff" * 16)
    assert_usage_error(run("ce", "-p", "bad.safetensors", "-y", "y.npy", cwd=tmp_path), "not a safetensors file")


def test_columns_that_are_not_there(tmp_path):
    import polars as pl

    pl.DataFrame({"logit": [0.5, -1.0], "label": [1.0, 0.0]}).write_parquet(tmp_path / "p.parquet")
    assert_usage_error(run("bce", "--from-logits", "-p", "p.parquet:z", "-y", "p.parquet:label", cwd=tmp_path),
                       "p.parquet has no column 'z'; its columns: logit, label")


@pytest.mark.parametrize("option", ["--pred", "--target", "--sample-weight", "--var"])
def test_a_scalar_file_is_refused_for_every_input(tmp_path, option):
    np.save(tmp_path / "s.npy", np.float64(0.5))
    np.savez(tmp_path / "s.npz", s=np.float64(0.5))
    write_safetensors(tmp_path / "s.safetensors", {"s": np.array(0.5)}, ["F64"])
    np.save(tmp_path / "v.npy", np.array([0.5, 1.0]))
    for scalar in ("s.npy", "s.npz:s", "s.safetensors"):
        inputs = {"--pred": "v.npy", "--target": "v.npy", "--var": "v.npy", option: scalar}
        args = [a for k, v in inputs.items() for a in (k, v)]
        assert_usage_error(run("gaussian-nll", *args, cwd=tmp_path),
                           f"{option}: {scalar} holds a scalar (shape []); give an array")


def test_columns_of_lists_of_lists_or_text_and_nulls_inside_lists(tmp_path):
    import polars as pl

    pl.DataFrame({"nested": [[[0.5, 0.1]], [[0.2, 0.3]]], "words": [["a", "b"], ["c", "d"]],
                  "gap": [[0.5, 0.1], [0.2, None]], "y": [0, 1],
                  "fixed": pl.Series([[0.5, 0.1], [None, 0.3]], dtype=pl.Array(pl.Float64, 2))}
                 ).write_parquet(tmp_path / "f.parquet")
    for column, kind in [("nested", "List(List(Float64))"), ("words", "List(String)")]:
        assert_usage_error(run("ce", "--from-logits", "-p", f"f.parquet:{column}", "-y", "f.parquet:y", cwd=tmp_path),
                           f"--pred: f.parquet:{column}: is a column of {kind}; give a numeric column")
    for column, at in [("gap", "[1, 1]"), ("fixed", "[1, 0]")]:
        assert_usage_error(run("ce", "--from-logits", "-p", f"f.parquet:{column}", "-y", "f.parquet:y", cwd=tmp_path),
                           f"--pred: f.parquet:{column}{at}: is null (a missing value)")


def test_shapes_that_do_not_match(tmp_path, tokens):
    z, y, _ = tokens
    np.save(tmp_path / "yt.npy", y.T)
    assert_usage_error(run("ce", "--from-logits", "-p", "z.npy", "-y", "yt.npy", cwd=tmp_path),
                       "--target: has shape [3, 2] but --pred has [2, 3, 5]", "[2, 3]")
    np.save(tmp_path / "p.npy", np.zeros((2, 3)))
    np.save(tmp_path / "t.npy", np.zeros((3, 2)))
    assert_usage_error(run("mse", "-p", "p.npy", "-y", "t.npy", cwd=tmp_path), "must match")


def test_a_bad_value_names_its_index(tmp_path, tokens):
    z, y, _ = tokens
    y[1, 2] = 7
    np.save(tmp_path / "y7.npy", y)
    assert_usage_error(run("ce", "--from-logits", "-p", "z.npy", "-y", "y7.npy", "--ignore-index", IGNORE,
                           "-o", "o.npz", cwd=tmp_path), "--target: y7.npy[1, 2]: 7.0 is not a class index")
    z[0, 1, 4] = np.nan
    np.save(tmp_path / "znan.npy", z)
    assert_usage_error(run("ce", "--from-logits", "-p", "znan.npy", "-y", "y.npy", cwd=tmp_path),
                       "znan.npy[0, 1, 4]", "NaN")
    assert not (tmp_path / "o.npz").exists()
    assert [f for f in os.listdir(tmp_path) if f.startswith(".lossgrad")] == []


# ---------------------------------------------------------------- outputs


@pytest.mark.parametrize("fmt", [".npz", ".safetensors", ".parquet", ".npy"])
def test_every_output_format(tmp_path, tokens, fmt):
    z, y, _ = tokens
    api = lossgrad.ce(y, z, from_logits=True, ignore_index=IGNORE, dtype="float32")
    r = run("ce", "--from-logits", "-p", "z.npy", "-y", "y.npy", "--ignore-index", IGNORE, "-o", "out" + fmt,
            cwd=tmp_path)
    assert r.code == 0 and r.out == "", r.err
    assert f"wrote out{fmt}: losses [2, 3] float32" in r.err
    path = tmp_path / ("out" + fmt)
    if fmt == ".npy":  # one array: the losses
        got = {"losses": np.load(path)}
    elif fmt == ".npz":
        got = dict(np.load(path))
    elif fmt == ".safetensors":
        got = read_safetensors(path)
    else:
        import polars as pl

        frame = pl.read_parquet(path)
        got = {"losses": frame["losses"].to_numpy().reshape(2, 3), "grad": frame["grad"].to_numpy().reshape(2, 3, 5)}
    assert np.array_equal(got["losses"], api.losses)
    if fmt != ".npy":
        assert np.array_equal(got["grad"], api.grad) and "grad [2, 3, 5] float32" in r.err


def test_no_grad_writes_the_losses_only(tmp_path, tokens):
    r = run("ce", "--from-logits", "-p", "z.npy", "-y", "y.npy", "--ignore-index", IGNORE, "--no-grad", "-o", "o.npz",
            cwd=tmp_path)
    assert r.code == 0, r.err
    assert list(np.load(tmp_path / "o.npz")) == ["losses"]
    assert_usage_error(run("mse", "-p", "1,2", "-y", "1,2", "--no-grad"), "--no-grad: applies to tensor file")


def test_an_input_is_never_the_output(tmp_path, tokens):
    before = (tmp_path / "z.npy").read_bytes()
    assert_usage_error(run("ce", "--from-logits", "-p", "z.npy", "-y", "y.npy", "-o", "z.npy", cwd=tmp_path),
                       "z.npy is also the input")
    assert (tmp_path / "z.npy").read_bytes() == before
    assert_usage_error(run("ce", "--from-logits", "-p", "z.npy", "-y", "y.npy", "-o", "o.csv", cwd=tmp_path),
                       ".npz, .npy, .safetensors, .parquet")


def test_a_failed_run_leaves_the_old_output(tmp_path, tokens):
    (tmp_path / "o.npz").write_bytes(b"old")
    np.save(tmp_path / "y9.npy", np.full((2, 3), 9))
    assert_usage_error(run("ce", "--from-logits", "-p", "z.npy", "-y", "y9.npy", "-o", "o.npz", cwd=tmp_path),
                       "is not a class index")
    assert (tmp_path / "o.npz").read_bytes() == b"old"
    assert [f for f in os.listdir(tmp_path) if f.startswith(".lossgrad")] == []


def test_json_summary(tmp_path, tokens):
    out = ce_json(tmp_path, "z.npy", "y.npy", "-o", "o.safetensors")
    assert out["loss"] == "ce" and out["reduction"] == "mean" and out["output"] == "o.safetensors"
    assert out["pred"] == {"source": "z.npy", "shape": [2, 3, 5], "dtype": "float32"}
    assert out["written"] == {"losses": {"shape": [2, 3], "dtype": "float32"},
                              "grad": {"shape": [2, 3, 5], "dtype": "float32"}}


def test_the_table_summarises_sequences(tmp_path):
    z, y = logits_and_labels(np.float32, (40, 6, 3))
    np.save(tmp_path / "z.npy", z)
    np.save(tmp_path / "y.npy", y)
    r = run("ce", "--from-logits", "-p", "z.npy", "-y", "y.npy", "--ignore-index", IGNORE, "-f", "table",
            cwd=tmp_path)
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert lines[0].startswith("ce (exact, mean over N=") and "(30 of 40 sequences not shown" in r.out
    row = next(line.split() for line in lines if line.split()[:1] == ["39"])
    kept = y[39] != IGNORE
    api = lossgrad.ce(y[39], z[39], from_logits=True, ignore_index=IGNORE, reduction="none", dtype="float32")
    assert int(row[1]) == kept.sum() and float(row[3]) == pytest.approx(float(api.losses[kept].max()), rel=1e-9)
    assert float(row[2]) == pytest.approx(float(api.losses[kept].mean()), rel=1e-6)
    assert math.isfinite(float(row[2]))


def test_one_hot_rows_and_sample_weights_of_the_leading_shape(tmp_path):
    rng = np.random.default_rng(12)
    z, onehot, w = rng.normal(size=(3, 4, 5)), np.eye(5)[rng.integers(0, 5, (3, 4))], rng.uniform(size=(3, 4))
    for name, a in (("z", z), ("oh", onehot), ("w", w)):
        np.save(tmp_path / f"{name}.npy", a)
    r = run("ce", "--from-logits", "-p", "z.npy", "-y", "oh.npy", "--sample-weight", "w.npy", "-o", "o.npz", "-f",
            "json", cwd=tmp_path)
    assert r.code == 0, r.err
    flat = lossgrad.ce(onehot.reshape(-1, 5), z.reshape(-1, 5), from_logits=True, sample_weight=w.reshape(-1))
    assert r.json()["value"] == flat.value and r.json()["n"] == flat.n
    assert np.array_equal(np.load(tmp_path / "o.npz")["grad"].reshape(-1, 5), flat.grad)
    assert_usage_error(run("ce", "--from-logits", "-p", "z.npy", "-y", "oh.npy", "--sample-weight", "1,2",
                           cwd=tmp_path), "has 2 weights (shape [2]) but there are 12 samples (shape [3, 4])")


def test_grad_logits_where_the_loss_has_one(tmp_path):
    rng = np.random.default_rng(13)
    y, p = rng.integers(0, 2, (4, 3)).astype(np.float64), rng.uniform(0.05, 0.95, (4, 3))
    np.save(tmp_path / "y.npy", y)
    np.save(tmp_path / "p.npy", p)
    assert run("bce", "-p", "p.npy", "-y", "y.npy", "-o", "b.npz", cwd=tmp_path).code == 0
    got, api = np.load(tmp_path / "b.npz"), lossgrad.bce(y, p)
    assert sorted(got) == ["grad", "grad_logits", "losses"]
    assert np.array_equal(got["grad_logits"], api.grad_logits) and np.array_equal(got["grad"], api.grad)
    assert run("mse", "-p", "p.npy", "-y", "y.npy", "-o", "m.npz", cwd=tmp_path).code == 0
    assert sorted(np.load(tmp_path / "m.npz")) == ["grad", "losses"]


def test_what_a_tensor_run_does_not_take(tmp_path, tokens):
    (tmp_path / "text.npy").write_text("0.5, 0.5\n")
    assert_usage_error(run("ce", "-p", "text.npy", "-y", "y.npy", cwd=tmp_path), "text.npy is not a .npy file")
    assert_usage_error(run("ce", "--from-logits", "-p", "z.npy", cwd=tmp_path), "--target: is missing")
    assert_usage_error(run("ce", "--from-logits", "-p", "z.npy", "-y", "y.npy", "--ignore-index", IGNORE, "-f",
                           "csv", cwd=tmp_path), "--format: tensor inputs print a summary as table or json")


@pytest.mark.frameworks
def test_tokens_against_live_pytorch(tmp_path):
    torch = pytest.importorskip("torch")
    z, y = logits_and_labels(np.float32, (3, 7, 11), seed=21)
    np.save(tmp_path / "z.npy", z)
    np.save(tmp_path / "y.npy", y)
    out = ce_json(tmp_path, "z.npy", "y.npy", "-c", "torch", "-o", "o.npz")
    t = torch.tensor(z, requires_grad=True)
    loss = torch.nn.functional.cross_entropy(t.reshape(-1, 11), torch.tensor(y).reshape(-1), ignore_index=IGNORE)
    loss.backward()
    assert ulps(out["value"], loss.item(), np.float32) <= 4
    np.testing.assert_allclose(np.load(tmp_path / "o.npz")["grad"], t.grad.numpy(), rtol=1e-6, atol=1e-8)


# ---------------------------------------------------------------- micro-batches over tensor files


MICRO = json.loads((Path(__file__).resolve().parent / "golden" / "microbatch.json").read_text())


@pytest.mark.parametrize("case", [c for c in MICRO["cases"] if len(c["leading"]) == 2 and not c["class_weights"]],
                         ids=lambda c: c["name"])
def test_micro_batches_of_token_files_as_a_pytorch_accumulation_loop(tmp_path, case):
    # the loop recorded by scripts/golden_microbatch.py: F.cross_entropy per micro-batch of sequences, / K, backward
    b, t = case["leading"]
    z = np.array(case["logits"], dtype=np.float64).reshape(b, t, case["classes"])
    np.save(tmp_path / "z.npy", z)
    np.save(tmp_path / "y.npy", np.array(case["targets"], dtype=np.int64).reshape(b, t))
    out = tmp_path / "out.npz"
    j = ce_json(tmp_path, "z.npy", "y.npy", "-c", "torch", "--micro-batches", case["k"], "-o", out)
    m = j["micro_batches"]
    assert float(m["value"]) == pytest.approx(float(case["accumulated"]), rel=1e-12, nan_ok=True)
    assert m["true_value"] == pytest.approx(case["true_mean"], rel=1e-12) == j["value"]
    assert [float(v) for v in m["means"]] == pytest.approx([float(v) for v in case["means"]], rel=1e-12, nan_ok=True)
    got = np.load(out)
    assert np.allclose(got["grad_micro"], np.reshape(case["grad_micro"], z.shape), rtol=1e-12, atol=1e-15)
    assert np.allclose(got["grad"], np.reshape(case["grad_true"], z.shape), rtol=1e-12, atol=1e-15)


def test_micro_batches_of_token_files_split_sequences_not_rows(tmp_path):
    z, y = logits_and_labels(np.float64, (4, 3, 5))
    np.save(tmp_path / "z.npy", z)
    np.save(tmp_path / "y.npy", y)
    j = ce_json(tmp_path, "z.npy", "y.npy", "--micro-batches", "2")
    want = lossgrad.api.evaluate_micro("ce", y.reshape(-1), z.reshape(-1, 5), 2, leading=(4, 3), from_logits=True,
                                       ignore_index=IGNORE)
    assert j["micro_batches"]["means"] == want.means and j["micro_batches"]["value"] == want.value
    assert j["micro_batches"]["size"] == 6  # two sequences of three tokens
    r = run("ce", "--from-logits", "--pred", "z.npy", "--target", "y.npy", "--micro-batches", "3", cwd=tmp_path)
    assert_usage_error(r, "--micro-batches: 3 does not split the 4 sequences")


@pytest.mark.parametrize("convention", ["optax", "keras"])
@pytest.mark.parametrize("block_rows", [None, 4])
def test_micro_batch_means_of_token_files_are_the_kernels_own(tmp_path, monkeypatch, convention, block_rows):
    # float32: each micro-batch's mean is the kernel's sum (XLA's, TensorFlow's), as an in-memory run of it gives it,
    # whether a micro-batch is one block of the file or several; lossgrad's own sum is apart in the first one here
    rng = np.random.default_rng(3)
    z = (rng.normal(size=(4, 16, 300)) * 3).astype(np.float32)
    y = rng.integers(0, 300, size=(4, 16))
    np.save(tmp_path / "z.npy", z)
    np.save(tmp_path / "y.npy", y)
    if block_rows:
        monkeypatch.setattr(tensor_run, "BLOCK_BYTES", 8 * 300 * block_rows)
    r = run("ce", "--from-logits", "--pred", "z.npy", "--target", "y.npy", "-c", convention, "--micro-batches", "2",
            "-f", "json", cwd=tmp_path)
    assert r.code == 0 and "warning" not in r.err, r.err
    want = lossgrad.api.evaluate_micro("ce", y.reshape(-1), z.reshape(-1, 300), 2, leading=(4, 16),
                                       from_logits=True, convention=convention, dtype="float32")
    assert r.json()["micro_batches"]["means"] == want.means and not want.warnings


def test_check_finds_the_micro_batch_mean_in_token_files(tmp_path):
    # the PyTorch accumulation loop recorded by scripts/golden_microbatch.py, its gradient saved as a file
    case = next(c for c in MICRO["cases"] if c["name"].startswith("tokens [B=4, T=6"))
    b, t = case["leading"]
    np.save(tmp_path / "z.npy", np.reshape(case["logits"], (b, t, case["classes"])))
    np.save(tmp_path / "y.npy", np.reshape(case["targets"], (b, t)).astype(np.int64))
    np.save(tmp_path / "g.npy", np.reshape(case["grad_micro"], (b, t, case["classes"])))
    r = run("check", "ce", "--from-logits", "--pred", "z.npy", "--target", "y.npy", "--ignore-index", IGNORE,
            "--my-grad", "g.npy", "--micro-batches", case["k"], "-c", "torch", "-f", "json", cwd=tmp_path)
    assert r.code == 0, r.err
    j = r.json()
    assert j["match"]["reduction"] == "micro" and j["match"]["wrt"] == "logits"
    text = " ".join(j["findings"])
    assert f"the mean of {case['k']} per-micro-batch means" in text and "counted tokens" in text
    loss = run("check", "ce", "--from-logits", "--pred", "z.npy", "--target", "y.npy", "--ignore-index", IGNORE,
               "--my-loss", repr(case["accumulated"]), "--micro-batches", case["k"], "-f", "json", cwd=tmp_path)
    assert loss.code == 0 and loss.json()["match"]["reduction"] == "micro"


def test_compare_reads_token_files(tmp_path):
    z, y = logits_and_labels(np.float64, (2, 3, 5))
    np.save(tmp_path / "z.npy", z)
    np.save(tmp_path / "y.npy", y)
    r = run("compare", "ce", "--from-logits", "--pred", "z.npy", "--target", "y.npy", "--ignore-index", IGNORE,
            "-f", "json", cwd=tmp_path)
    assert r.code == 0, r.err
    want = lossgrad.ce(y, z, from_logits=True, ignore_index=IGNORE, convention="torch")
    assert r.json()["conventions"]["torch"]["value"] == want.value
    bad = run("compare", "ce", "--from-logits", "--pred", "z.npy", "--target", "missing.npy", cwd=tmp_path)
    assert_usage_error(bad, "missing.npy")


# ---------------------------------------------------------------- the mean's N ahead of the writing pass

def _count_cases():
    """(loss, arguments, {file: array}) of tensor runs whose kernels bring the mean's 1/N in before they round."""
    rng = np.random.default_rng(23)
    z, y = logits_and_labels(np.float32, (3, 50, 7))
    u = rng.uniform(0.05, 0.95, size=(3, 50, 7)).astype(np.float32)
    sign = np.where(rng.random((3, 50)) < 0.5, -1.0, 1.0)
    idx = np.where(y == IGNORE, 0, y)
    rows = np.eye(7)[idx].astype(np.float32)
    w = rng.uniform(0.5, 2.0, size=(3, 50))
    return [
        ("ce", ["--from-logits", "--ignore-index", IGNORE], {"pred": z, "target": y}),
        ("ce", ["--from-logits"], {"pred": z, "target": idx}),
        ("ce", ["--from-logits", "--label-smoothing", "0.1", "--ignore-index", IGNORE], {"pred": z, "target": y}),
        ("ce", ["--from-logits", "--class-weights", "1,2,3,1,1,2,0.5"], {"pred": z, "target": idx}),
        ("ce", ["--from-logits"], {"pred": z, "target": rows}),
        ("nll", ["--ignore-index", IGNORE], {"pred": np.log(u), "target": y}),
        ("bce", ["--from-logits"], {"pred": z, "target": (u > 0.5).astype(np.float32)}),
        ("bce", [], {"pred": u, "target": (u > 0.5).astype(np.float32), "sample-weight": w}),
        ("mse", [], {"pred": z, "target": u}),
        ("huber", ["--delta", "0.5"], {"pred": z, "target": u}),
        ("kl", ["--log-input"], {"pred": np.log(u), "target": u}),
        ("poisson", ["--from-logits"], {"pred": z, "target": u}),
        ("gaussian-nll", [], {"pred": z, "target": u, "var": u}),
        ("margin-ranking", [], {"pred": z[..., 0], "target": sign, "other": u[..., 0]}),
        ("triplet", [], {"pred": z, "target": u, "negative": z[::-1].copy()}),
        ("cosine-embedding", [], {"pred": z, "target": u, "label": sign}),
        ("focal", ["--from-logits"], {"pred": z, "target": (u > 0.5).astype(np.float32)}),
    ]


@pytest.mark.parametrize("dtype,convention", [("float32", "torch"), ("bfloat16", "torch"), ("float16", "exact"),
                                              ("float16", "keras"), ("bfloat16", "optax")])
def test_the_mean_counted_from_the_files_is_the_one_the_blocks_find(tmp_path, monkeypatch, capsys, dtype,
                                                                   convention):
    # a kernel that brings 1/N in before it rounds needs N before the gradient is written: counted from the shapes
    # and the labels where it is a count, found by evaluating the blocks where weights make it (and the same)
    seen = []

    def spy(s, r, weight):
        n = divisor(s, r, weight)
        if n is not None:
            seen.append((tensor_run._counted(s, r), tensor_run._evaluated_n(s, r, weight)))
        return n
    divisor = tensor_run._kernel_divisor
    monkeypatch.setattr(tensor_run, "_kernel_divisor", spy)
    monkeypatch.setattr(tensor_run, "BLOCK_BYTES", 7 * 8 * 40)  # (several blocks of rows)
    ran = 0
    for loss, args, files in _count_cases():
        argv = [loss, *map(str, args), "-c", convention, "--dtype", dtype, "-o", str(tmp_path / "out.npz")]
        for name, a in files.items():
            np.save(tmp_path / f"{name}.npy", a)
            argv += [f"--{name}", str(tmp_path / f"{name}.npy")]
        with pytest.raises(SystemExit) as e:
            cli.main(argv)
        out = capsys.readouterr()
        if e.value.code == 2 and out.err.startswith(("error: --convention", "error: --dtype",
                                                      "error: --label-smoothing", "error: --ignore-index",
                                                      "error: --class-weights")):
            continue  # (a loss or option the convention lacks in this dtype)
        assert e.value.code == 0, (loss, args, out.err)
        ran += 1
    assert ran >= 5
    assert all(n is None or n == found for n, found in seen), seen
    assert sum(n is not None for n, _ in seen) >= 5


def test_the_batch_totals_pass_holds_one_blocks_class_rows_at_a_time(tmp_path, monkeypatch):
    # PyTorch's kernels take the ignore_index count of the whole batch before the first block: that pass reads the
    # labels block by block, and keeps their class indexes, not each block's float64 rows of class probabilities
    # (blocks of 512 rows × 2,000 classes: 8 MB each, 66 MB together)
    import tracemalloc

    rng = np.random.default_rng(4)
    labels = rng.integers(0, 2000, 4096)
    labels[::10] = -100
    np.save(tmp_path / "z.npy", rng.normal(size=(4096, 2000)).astype(np.float32))
    np.save(tmp_path / "y.npy", labels)
    seen: list[tuple[int, int]] = []
    inner = tensor_run.with_batch_totals

    def measured(setup, y, classes, bounds):
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        out = inner(setup, y, classes, bounds)
        seen.append((len(bounds), tracemalloc.get_traced_memory()[1] - before))
        return out

    monkeypatch.setattr(tensor_run, "with_batch_totals", measured)
    tracemalloc.start()
    try:
        cli.main(["ce", "--from-logits", "--pred", str(tmp_path / "z.npy"), "--target", str(tmp_path / "y.npy"),
                  "--ignore-index", "-100", "-c", "torch", "--dtype", "float32", "-o", str(tmp_path / "o.npz")])
    except SystemExit as e:
        assert e.code == 0
    finally:
        tracemalloc.stop()
    (blocks, peak), = seen
    assert blocks >= 6  # (the short last block joins the one before it)
    assert peak < 28 << 20  # (the largest block's rows, up to 16 MB, and what the pass keeps; all of them: 66 MB)
