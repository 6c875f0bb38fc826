"""Batch mode: CSV streamed block by block through both parsers (polars and numpy), with the mean's N counted
beforehand (files) or spooled (stdin); the results equal the in-memory computation, errors name the line, and
nothing half-written is left behind."""

import io

import numpy as np
import pytest

import lossgrad
from conftest import assert_usage_error, lossgrad as run
from lossgrad import batch, inputs, render
from lossgrad.options import setup


def _csv(rows, header="target,logit"):
    return header + "\n" + "".join(f"{a},{b!r}\n" for a, b in rows)


@pytest.fixture
def data():
    rng = np.random.default_rng(8)
    y = rng.integers(0, 2, 5000).astype(float)
    z = rng.normal(scale=4, size=5000)
    return y, z


def _stream(text: bytes, fast: bool, reduction="mean", rows=None, block=4096):
    reader = inputs.CsvReader(io.BytesIO(text), "t.csv", block_bytes=block)
    reader.fast = fast
    s = setup("bce", from_logits=True, reduction=reduction)
    chunks = reader.chunks()
    first = next(chunks)
    layout = inputs.choose_layout(reader, first, "elementwise", "auto", None, None)
    out = io.BytesIO()

    def chain():
        yield first
        yield from chunks

    acc = batch.stream(s, inputs.CsvSource(reader, chain(), layout), out, b"loss,grad\n", rows)
    return out.getvalue().decode(), Finished(s, acc)


class Finished:
    """A stream's set-up and accumulator: finish() gives the reduced value and the divisor."""

    def __init__(self, s, acc):
        self.s, self.acc = s, acc

    def finish(self):
        return self.acc.finish(self.s.reduction.value, self.s.np_dtype)


@pytest.mark.parametrize("fast", [True, False], ids=["polars", "numpy"])
@pytest.mark.parametrize("reduction,counted", [("mean", True), ("mean", False), ("sum", False), ("none", False)])
def test_stream_equals_in_memory(data, fast, reduction, counted):
    if fast and inputs._polars() is None:
        pytest.skip("polars not installed")
    y, z = data
    text = _csv(zip(y.astype(int).tolist(), z.tolist(), strict=True)).encode()
    out, ev = _stream(text, fast, reduction, rows=5000 if counted else None)
    got = np.loadtxt(io.StringIO(out), delimiter=",", skiprows=1)
    ref = lossgrad.bce(y, z, from_logits=True, reduction=reduction)
    assert out.startswith("loss,grad\n") and got.shape == (5000, 2)
    assert got[:, 0].tolist() == ref.losses.tolist()
    assert got[:, 1].tolist() == ref.grad.tolist()  # round-trip exact, bit for bit
    if reduction != "none":
        assert ev.finish()[0] == ref.value


@pytest.mark.parametrize("ending", ["\n", "", "\r\n"], ids=["lf", "no-final-newline", "crlf"])
def test_stream_blocks_cut_anywhere(data, ending):
    # block sizes that cut lines in every place (7 bytes: every line is longer than a read) give the same rows
    y, z = data
    text = _csv(zip(y[:300].astype(int).tolist(), z[:300].tolist(), strict=True))
    text = (text.replace("\n", ending) if ending == "\r\n" else text[:len(text) - 1 + len(ending)]).encode()
    outs = {_stream(text, False, "sum", block=b)[0] for b in (7, 64, 1000, 1 << 20)}
    assert len(outs) == 1
    assert len(outs.pop().splitlines()) == 301


@pytest.mark.parametrize("fast", [True, False], ids=["polars", "numpy"])
def test_stream_writes_a_chunks_slices_as_one_table(data, fast, monkeypatch):
    # a chunk is computed in slices (cache-sized) and its rows written from them directly, divided by N
    import lossgrad.evaluation

    if fast and inputs._polars() is None:
        pytest.skip("polars not installed")
    monkeypatch.setattr(lossgrad.evaluation, "SLICE_ROWS", 700)
    y, z = data
    y = y.copy()
    y[::3] = 0.25  # soft labels: the refined path too
    text = _csv(zip(y.tolist(), z.tolist(), strict=True)).encode()
    out, ev = _stream(text, fast, "mean", rows=5000, block=64 << 10)
    got = np.loadtxt(io.StringIO(out), delimiter=",", skiprows=1)
    ref = lossgrad.bce(y, z, from_logits=True)
    assert got[:, 0].tolist() == ref.losses.tolist() and got[:, 1].tolist() == ref.grad.tolist()


@pytest.mark.parametrize("fast", [True, False], ids=["polars", "numpy"])
def test_stream_bad_cell_names_line_and_column(fast):
    if fast and inputs._polars() is None:
        pytest.skip("polars not installed")
    rows = [f"{i % 2},{i / 7!r}" for i in range(2000)]
    rows[1500] = "1,0.5x"
    text = ("target,logit\n" + "\n".join(rows) + "\n").encode()
    with pytest.raises(lossgrad.InputError) as e:
        _stream(text, fast, block=8192)
    assert str(e.value).startswith("t.csv:1502:3: '0.5x' is not a number")


@pytest.mark.parametrize("fast", [True, False], ids=["polars", "numpy"])
def test_stream_domain_error_names_line(fast):
    if fast and inputs._polars() is None:
        pytest.skip("polars not installed")
    rows = [f"{i % 2},{i / 7!r}" for i in range(2000)]
    rows[1200] = "2,0.25"
    text = ("target,logit\n\n" + "\n".join(rows) + "\n").encode()  # a blank line shifts the line numbers
    with pytest.raises(lossgrad.InputError) as e:
        _stream(text, fast, block=8192)
    assert str(e.value).startswith("t.csv:1203:1: 2.0 is outside [0, 1]")


@pytest.mark.parametrize("text,want", [
    ("a,b\n1,2\n3,4\n", 3), ("a,b\n1,2\n3,4", 3), ("1,2\n", 1), ("a,b\r\n1,2\r\n", 2), ("", 0),
    ("a,b\n1,2\n\n3,4\n", None), ("a,b\n1,2\n 3,4\n", None), ("a,b\n1,2 \n", None),
    ("\na,b\n1,2\n", None), ("a,b\n1,2 \r\n", None), ("a,b\n1,2\n   ", None),
])
def test_count_lines(tmp_path, text, want):
    p = tmp_path / "x.csv"
    p.write_bytes(text.encode())
    assert inputs.count_lines(str(p)) == want


def test_cli_batch_mean_from_file_and_stdin_agree(tmp_path, data):
    y, z = data
    path = tmp_path / "b.csv"
    path.write_text(_csv(zip(y.astype(int).tolist(), z.tolist(), strict=True)))
    a = run("bce", "--from-logits", "--csv", path, "-f", "csv")
    b = run("bce", "--from-logits", "-f", "csv", input=path.read_text())
    assert a.code == b.code == 0 and a.out == b.out and a.err == b.err


@pytest.mark.parametrize("args, width", [  # (width: the columns written, the further gradients' among them)
    (["triplet", "-c", "optax", "--dtype", "float32", "--negative", "4:6"], 1 + 2 + 2 + 2),
    (["gaussian-nll", "-c", "torch", "--dtype", "bfloat16", "--var", "4:6"], 2 + 2 + 2),  # (a loss per element)
    (["bce", "-c", "torch", "--dtype", "bfloat16", "--sample-weight", "6"], 2 + 2),
])
def test_cli_further_inputs_from_stdin_as_from_a_file(tmp_path, args, width):
    # a framework's mean in a low dtype re-evaluates stdin's rows once N is known (they wait in a spool): the further
    # input's columns (and the weights) wait with them, and the further gradient's columns come out divided alike
    rng = np.random.default_rng(4)
    text = "a,b,c,d,e,f,w\n" + "".join(",".join(map(repr, [*(rng.random(6) * 0.4 + 0.3).tolist(), 2.0])) + "\n"
                                       for _ in range(5))
    path = tmp_path / "b.csv"
    path.write_text(text)
    cols = ["--target-cols", "0:2", "--pred-cols", "2:4", "-f", "csv"]
    a = run(*args, *cols, "--csv", path)
    b = run(*args, *cols, input=text)
    assert a.code == b.code == 0, b.err
    assert a.out == b.out and a.err == b.err
    header = b.out.splitlines()[0].split(",")
    assert len(header) == width and all(len(line.split(",")) == width for line in b.out.splitlines())


def test_cli_mean_error_leaves_no_output(tmp_path):
    text = "target,logit\n" + "".join(f"{i % 2},{i / 3}\n" for i in range(3000)) + "1,x\n"
    r = run("bce", "--from-logits", "-f", "csv", input=text)
    assert_usage_error(r, "<stdin>:3002:3")
    out = tmp_path / "o.csv"
    r = run("bce", "--from-logits", "-f", "csv", "-r", "none", "-o", out, input=text)
    assert r.code == 2 and not out.exists() and list(tmp_path.iterdir()) == []


def test_cli_streaming_reduction_none_keeps_complete_rows_before_an_error():
    # without a mean nothing waits for N: rows already written stay, and they are whole rows
    rows = "".join(f"{i % 2},{i / 3}\n" for i in range(300_000))
    r = run("bce", "--from-logits", "-f", "csv", "-r", "none", input="target,logit\n" + rows + "1,x\n")
    assert r.code == 2 and r.err.startswith("error: <stdin>:300002:3")
    lines = r.out.splitlines()
    assert lines[0] == "loss,grad" and all(len(line.split(",")) == 2 for line in lines)


def test_without_polars_batch_mode_still_works(monkeypatch, data):
    monkeypatch.setattr(inputs, "_polars", lambda: None)
    monkeypatch.setattr(render, "_polars", lambda: None)
    y, z = data
    text = _csv(zip(y.astype(int).tolist(), z.tolist(), strict=True)).encode()
    out, _ = _stream(text, fast=False)
    got = np.loadtxt(io.StringIO(out), delimiter=",", skiprows=1)
    assert got[:, 1].tolist() == lossgrad.bce(y, z, from_logits=True).grad.tolist()


# ---------------------------------------------------------------- --sample-weight


@pytest.mark.parametrize("conv", ["exact", "keras", "torch"])
def test_sample_weight_column_streams_as_the_api_computes(tmp_path, conv):
    # the weight column sits between the others: the default layout is taken over the rest
    rng = np.random.default_rng(21)
    n = 60_000
    y = rng.integers(0, 2, n).astype(float)
    z = rng.normal(scale=3, size=n)
    w = np.round(rng.uniform(0, 2, n), 3)
    path = tmp_path / "w.csv"
    rows = "".join(f"{a},{float(c)!r},{float(b)!r}\n" for a, b, c in zip(y, z, w, strict=True))
    path.write_text("target,weight,logit\n" + rows)
    r = run("bce", "--from-logits", "--csv", str(path), "--sample-weight", "weight", "-c", conv, "-f", "csv")
    assert r.code == 0, r.err
    got = np.loadtxt(io.StringIO(r.out), delimiter=",", skiprows=1)
    want = lossgrad.bce(y, z, from_logits=True, convention=conv, sample_weight=w)
    np.testing.assert_array_equal(got[:, 0], want.losses)
    np.testing.assert_array_equal(got[:, 1], want.grad)
    # exact divides the weighted sum by the sum of the weights, the frameworks by N
    n_is = np.sum(w) if conv == "exact" else n
    assert want.value == pytest.approx(np.sum(w * lossgrad.bce(y, z, from_logits=True, reduction="none").losses)
                                       / n_is, rel=1e-13)
    assert f"value={want.value!r}" in r.err


def test_sample_weight_worked_by_hand():
    # w = (1, 3): exact mean (1·1 + 3·4) / 4 = 3.25; Keras' sum_over_batch_size (1 + 12) / 2 = 6.5
    a = lossgrad.mse([0.0, 0.0], [1.0, 2.0], sample_weight=[1.0, 3.0])
    b = lossgrad.mse([0.0, 0.0], [1.0, 2.0], sample_weight=[1.0, 3.0], convention="keras")
    assert (a.value, a.n, b.value, b.n) == (3.25, 4.0, 6.5, 2)
    assert a.grad.tolist() == [2 * 1 / 4, 3 * 4 / 4] and b.grad.tolist() == [1.0, 6.0]


def test_sample_weight_inline_and_in_compare():
    r = run("mse", "-y", "0,0", "-p", "1,2", "--sample-weight", "1,3", "-f", "json")
    assert r.json()["value"] == 3.25 and r.json()["n_is"] == "the sum of the sample weights"
    r = run("compare", "mse", "-y", "0,0", "-p", "1,2", "--sample-weight", "1,3", "-f", "json")
    assert r.code == 0 and r.json()["conventions"]["keras"]["value"] == 6.5


@pytest.mark.parametrize("args,input,fragments", [
    (["mse", "-y", "0,0", "-p", "1,2", "--sample-weight", "1"], None, ["--sample-weight", "1 weight but", "2 samples"]),
    (["mse", "-y", "0,0", "-p", "1,2", "--sample-weight", "1,-3"], None, ["--sample-weight: value 2", "-3.0"]),
    (["bce", "--from-logits", "--sample-weight", "w", "-f", "csv"], "y,p,w\n0,1,1\n1,2,-1\n",
     ["<stdin>:3:5", "sample weight"]),
    (["bce", "--from-logits", "--sample-weight", "v", "-f", "csv"], "y,p,w\n0,1,1\n", ["no column named 'v'"]),
    (["ce", "--from-logits", "--sample-weight", "w", "--class-weights", "1,2", "-f", "csv"], "y,a,b,w\n0,1,1,1\n",
     ["--class-weights"]),
])
def test_sample_weight_errors(args, input, fragments):
    assert_usage_error(run(*args, input=input), *fragments)


@pytest.mark.parametrize("loss,conv,opts", [("kl", "exact", []), ("kl", "torch", []), ("cosine", "keras", []),
                                            ("poisson", "exact", ["--from-logits"]), ("focal", "optax",
                                                                                       ["--from-logits", "--alpha",
                                                                                        "0.3"])])
def test_new_losses_stream_as_the_api_computes(tmp_path, loss, conv, opts):
    rng = np.random.default_rng(31)
    n = 40_000
    if loss in ("kl", "cosine"):
        y, p = rng.dirichlet(np.ones(3), n), rng.dirichlet(np.ones(3), n)
    elif loss == "poisson":
        y, p = rng.integers(0, 5, (n, 1)).astype(float), rng.normal(size=(n, 1))
    else:
        y, p = rng.integers(0, 2, (n, 1)).astype(float), rng.normal(scale=3, size=(n, 1))
    path = tmp_path / "in.csv"
    np.savetxt(path, np.hstack([y, p]), delimiter=",", fmt="%.17g")
    r = run(loss, "--csv", str(path), "-c", conv, "-f", "csv", *opts)
    assert r.code == 0, r.err
    got = np.loadtxt(io.StringIO(r.out), delimiter=",", skiprows=1, ndmin=2)
    kw = {"alpha": 0.3} if "--alpha" in opts else {}
    want = lossgrad.evaluate(loss, y, p, convention=conv, from_logits="--from-logits" in opts, **kw)
    k = want.grad.shape[1]
    np.testing.assert_array_equal(got[:, -k:], want.grad)
    np.testing.assert_array_equal(got[:, :-k].reshape(want.losses.shape), want.losses)
    # the same sum in other chunks: pairwise within each, compensated across them, so within an ulp or two
    value = float(r.err.strip().rsplit("value=", 1)[1])
    assert abs(value - want.value) <= 2 * abs(np.spacing(want.value))


@pytest.mark.parametrize("where", ["-o", "stdout-file", "pipe"])
def test_blank_lines_never_change_the_mean(tmp_path, where):
    # the quick line count takes blank lines for rows: a file output is written again with the right N, a pipe
    # gets N from the count that checks every line
    rng = np.random.default_rng(41)
    y = rng.integers(0, 2, 80_000).astype(float)
    z = rng.normal(scale=3, size=80_000)
    rows = [f"{a},{float(b)!r}" for a, b in zip(y, z, strict=True)]
    rows.insert(60_000, "")
    rows.insert(100, "  ")
    path = tmp_path / "blank.csv"
    path.write_text("target,logit\n" + "\n".join(rows) + "\n\n")
    want = lossgrad.bce(y, z, from_logits=True)
    out = tmp_path / "out.csv"
    if where == "-o":
        r = run("bce", "--from-logits", "--csv", str(path), "-f", "csv", "-o", str(out))
        text = out.read_text()
    elif where == "stdout-file":
        import subprocess
        import sys

        with open(out, "w") as f:
            f.write("kept\n")  # what was in the file before stays; only lossgrad's part is rewritten
            f.flush()
            proc = subprocess.run([sys.executable, "-m", "lossgrad", "bce", "--from-logits", "--csv", str(path),
                                   "-f", "csv"], stdout=f, stderr=subprocess.PIPE, text=True)
        assert proc.returncode == 0, proc.stderr
        text = out.read_text()
        assert text.startswith("kept\n")
        text = text[len("kept\n"):]
    else:
        r = run("bce", "--from-logits", "--csv", str(path), "-f", "csv")
        text = r.out
    got = np.loadtxt(io.StringIO(text), delimiter=",", skiprows=1)
    np.testing.assert_array_equal(got[:, 1], want.grad)
    assert got.shape[0] == 80_000
