"""Input layouts (inline, CSV files, stdin), headers and column selection; the JSON and CSV outputs; --output."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

import lossgrad
from conftest import DATA, SAMPLES, assert_usage_error, lossgrad as run


def test_negative_numbers_in_both_option_forms():
    a = run("bce", "--from-logits", "-y", "0,1", "--pred", "-18.6,0.51", "-f", "json").json()
    b = run("bce", "--from-logits", "-y", "0,1", "--pred=-18.6,0.51", "-f", "json").json()
    assert a == b and a["n"] == 2


def test_commas_spaces_and_rows():
    a = run("mse", "-y", "1 2, 3;4,5 6", "-p", "0,0,0;0,0,0", "-f", "json").json()
    # (1+4+9+16+25+36)/6 by hand
    assert a["value"] == 91 / 6 and a["losses"] == [[1.0, 4.0, 9.0], [16.0, 25.0, 36.0]]
    assert a["grad"] == [[-2 / 6, -4 / 6, -6 / 6], [-8 / 6, -10 / 6, -12 / 6]]


def test_json_keys_and_shapes():
    out = run("ce", "-y", "0;1", "-p", "0.7,0.3;0.4,0.6", "-f", "json").json()
    assert list(out)[:10] == ["loss", "convention", "from_logits", "reduction", "dtype", "n", "value", "losses",
                              "grad", "grad_logits"]
    assert out["n"] == 2 and len(out["losses"]) == 2 and np.shape(out["grad"]) == (2, 2)
    # worked by hand: (-log 0.7 - log 0.6)/2; grad -y/p/2; grad_logits (p - y)/2
    assert out["value"] == pytest.approx((-math.log(0.7) - math.log(0.6)) / 2, rel=1e-15)
    assert out["grad"] == [[-1 / 0.7 / 2, 0.0], [0.0, -1 / 0.6 / 2]]
    np.testing.assert_allclose(out["grad_logits"], [[-0.15, 0.15], [0.2, -0.2]], rtol=1e-14)


def test_reduction_none_has_null_value_and_per_element_derivatives():
    out = run("mse", "-r", "none", "-y", "1,2", "-p", "2,4", "-f", "json").json()
    assert out["value"] is None and out["grad"] == [2.0, 4.0] and out["losses"] == [1.0, 4.0]


def test_sum_reduction():
    out = run("mse", "-r", "sum", "-y", "1,2", "-p", "2,4", "-f", "json").json()
    assert out["value"] == 5.0 and out["grad"] == [2.0, 4.0]


def test_json_floats_round_trip():
    rng = np.random.default_rng(0)
    y, p = rng.uniform(size=20), rng.uniform(size=20)
    out = run("bce", "-y", ",".join(map(repr, y.tolist())), "-p", ",".join(map(repr, p.tolist())), "-f", "json").json()
    ref = lossgrad.bce(y, p)
    assert out["grad"] == ref.grad.tolist() and out["value"] == ref.value


def test_csv_output_header_rows_and_value_on_stderr():
    r = run("bce", "--from-logits", "--csv", SAMPLES / "binary_logits.csv", "-f", "csv")
    lines = r.out.splitlines()
    assert lines[0] == "loss,grad" and len(lines) == 25
    ref = lossgrad.evaluate("bce", *np.loadtxt(SAMPLES / "binary_logits.csv", delimiter=",", skiprows=1).T,
                            from_logits=True)
    got = np.array([[float(v) for v in line.split(",")] for line in lines[1:]])
    assert got[:, 0].tolist() == ref.losses.tolist() and got[:, 1].tolist() == ref.grad.tolist()
    assert r.err.strip() == f"bce (exact, mean over N=24 elements): value={ref.value!r}"


def test_csv_output_names_columns_after_the_predictions():
    r = run("mse", "--csv", SAMPLES / "regression.csv", "-f", "csv")
    assert r.out.splitlines()[0] == "loss_price_hat,loss_demand_hat,grad_price_hat,grad_demand_hat"
    r = run("ce", "--from-logits", "--csv", SAMPLES / "multiclass_logits.csv", "-f", "csv")
    assert r.out.splitlines()[0] == "loss,grad_z0,grad_z1,grad_z2"


def test_default_format_off_a_terminal_is_csv():
    assert run("mse", "-y", "1", "-p", "2").out == "loss,grad\n1.0,2.0\n"


def test_piped_stdin_equals_file_and_dash():
    text = (SAMPLES / "multiclass_logits.csv").read_text()
    a = run("ce", "--from-logits", "-f", "json", input=text).json()
    b = run("ce", "--from-logits", "-f", "json", "--csv", "-", input=text).json()
    c = run("ce", "--from-logits", "-f", "json", "--csv", SAMPLES / "multiclass_logits.csv").json()
    assert a == b == c and a["n"] == 12


def test_csv_without_header_crlf_and_blank_lines():
    a = run("bce", "-f", "json", "--csv", DATA / "crlf.csv").json()
    b = run("bce", "-f", "json", input="1,0.9\n\n0,0.2\n").json()
    assert a == b and a["n"] == 2


@pytest.mark.parametrize("text", ["t,p\r1,0.5\r0,1\r", "1,0.5\r0,1\r", "\n1,0.5\r0,1"])
def test_lines_ending_in_a_bare_carriage_return_say_how_to_convert(tmp_path, text):
    (tmp_path / "cr.csv").write_bytes(text.encode())
    line = text.count("\n", 0, text.index("\r")) + 1
    for where, r in [("<stdin>", run("bce", "--from-logits", input=text)),
                     ("cr.csv", run("bce", "--from-logits", "--csv", "cr.csv", cwd=tmp_path))]:
        assert_usage_error(r, f"{where}:{line}: has lines that end in a bare carriage return", "tr '\\r' '\\n'")


def test_ce_layouts_index_and_onehot():
    idx = run("ce", "--from-logits", "-f", "json", input="2,0.3,-1.2,2.0\n0,1.5,0.2,-0.4\n").json()
    onehot = run("ce", "--from-logits", "-f", "json", input="0,0,1,0.3,-1.2,2.0\n1,0,0,1.5,0.2,-0.4\n").json()
    assert idx["n"] == onehot["n"] == 2 and len(idx["grad"][0]) == 3
    assert idx["value"] == pytest.approx(onehot["value"], rel=1e-15)
    forced = run("ce", "--from-logits", "--labels", "index", "-f", "json",
                 input="1,0,0.3,-1.2\n0,1,1.5,0.2\n").json()
    assert len(forced["grad"][0]) == 3


def test_column_selection_by_name_index_and_range():
    base = run("mse", "-f", "json", "--csv", SAMPLES / "regression.csv").json()
    by_name = run("mse", "-f", "json", "--csv", SAMPLES / "regression.csv",
                  "--target-cols", "price,demand", "--pred-cols", "price_hat,demand_hat").json()
    by_range = run("mse", "-f", "json", "--csv", SAMPLES / "regression.csv", "--target-cols", "0:2").json()
    assert base == by_name == by_range
    one = run("mse", "-f", "json", "--csv", SAMPLES / "regression.csv", "--target-cols", "1", "--pred-cols", "3").json()
    assert one["n"] == 10 and len(one["grad"]) == 10


def test_output_file_is_written_atomically(tmp_path):
    out = tmp_path / "grads.csv"
    r = run("mse", "-y", "1,2", "-p", "2,4", "-o", out)
    assert r.code == 0 and r.out == "" and out.read_text() == "loss,grad\n1.0,1.0\n4.0,2.0\n"
    # a failing run leaves the previous file untouched and no temporary file behind
    r = run("mse", "-y", "1,x", "-p", "2,4", "-o", out)
    assert_usage_error(r, "--target")
    assert out.read_text() == "loss,grad\n1.0,1.0\n4.0,2.0\n"
    r = run("bce", "--csv", DATA / "bad_number.csv", "-o", tmp_path / "new.csv")
    assert r.code == 2 and not (tmp_path / "new.csv").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grads.csv"]


def test_output_folder_must_exist(tmp_path):
    assert_usage_error(run("mse", "-y", "1", "-p", "2", "-o", tmp_path / "no" / "x.csv"), "--output", "does not exist")
    # the missing folder is the first one on the way, and through a symlink the one its target needs
    assert_usage_error(run("mse", "-y", "1", "-p", "2", "-o", tmp_path / "a" / "b" / "x.csv"),
                       f"folder {tmp_path.resolve() / 'a'} does not exist")
    (tmp_path / "dangling").symlink_to(Path("nowhere") / "x.csv")
    assert_usage_error(run("mse", "-y", "1", "-p", "2", "-o", "dangling", cwd=tmp_path),
                       "--output: dangling is a link to nowhere/x.csv",
                       f"folder {tmp_path.resolve() / 'nowhere'} does not exist")
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize("pred", ["2", "p.npy"])
def test_an_empty_output_name_says_so(tmp_path, pred):
    np.save(tmp_path / "p.npy", np.array([2.0]))
    assert_usage_error(run("mse", "-y", "1", "-p", pred, "-o", "", cwd=tmp_path),
                       "error: --output: is empty; give a file name")


def test_table_shows_header_and_rows():
    r = run("bce", "--from-logits", "-y", "0,1,0,0", "-p", "-18.6,0.51,2.94,-12.8", "-f", "table")
    assert "bce (exact, mean over N=4 elements): value=0.8654579497810972" in r.out
    assert "-0.09379838138" in r.out and "prob" in r.out


def test_long_table_elides_the_middle():
    y = ",".join(["0.5"] * 100)
    r = run("mse", "-y", y, "-p", y, "-f", "table")
    assert "…" in r.out and "50 of 100 elements not shown" in r.out


def test_head_closing_the_pipe_ends_quietly():
    import subprocess
    import sys

    big = "\n".join(f"{i % 2},{i / 1000}" for i in range(200000))
    proc = subprocess.run(
        f"{sys.executable} -m lossgrad bce --from-logits -f csv | head -2",
        shell=True, input=big, capture_output=True, text=True, timeout=120,
    )
    assert proc.stdout.splitlines()[0] == "loss,grad" and "Traceback" not in proc.stderr
    assert "Error" not in proc.stderr
    # and lossgrad's own exit status is 0: a reader that stops early is not a failure
    proc = subprocess.run(
        ["bash", "-c", f"{sys.executable} -m lossgrad bce --from-logits -f csv | head -0; exit ${{PIPESTATUS[0]}}"],
        input=big, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


def test_explain_prints_the_formulas():
    r = run("bce", "--from-logits", "--explain", "-y", "0,1", "-p", "1,2", "-f", "table")
    assert "σ(zᵢ) − yᵢ" in r.out and "N = 2" in r.out
    r = run("bce", "--from-logits", "--explain", "-y", "0,1", "-p", "1,2", "-f", "json")
    assert any("N = 2" in line for line in json.loads(r.out)["formulas"]) and r.err == ""
    r = run("bce", "--from-logits", "--explain", "-y", "0,1", "-p", "1,2", "-f", "csv")
    assert r.out.startswith("loss,grad") and "N = 2" in r.err  # stdout stays data


def test_losses_command_lists_support():
    out = json.loads(run("losses", "-f", "json").out)
    by = {r["loss"]: r for r in out}
    assert set(by) == {"mse", "bce", "ce", "mae", "huber", "smooth-l1", "logcosh", "hinge", "squared-hinge", "nll",
                       "kl", "poisson", "focal", "cosine"} | {"gaussian-nll", "triplet", "margin-ranking",
                                                               "cosine-embedding", "ctc"} | {"categorical-focal",
                                                                                             "dice", "tversky"} | {
                           "contrastive"}
    assert by["gaussian-nll"]["inputs"] == ["--var"] and "inputs" not in by["mse"]
    assert by["kl"]["options"] == ["--log-input", "--log-target"]
    assert by["poisson"]["conventions"]["logits"] == ["exact", "torch"]
    assert "optax" not in by["bce"]["conventions"]["probs"] and "optax" in by["bce"]["conventions"]["logits"]


def test_python_m_and_console_script_agree():
    import shutil
    import subprocess

    exe = shutil.which("lossgrad")
    if exe is None:
        pytest.skip("console script not on PATH")
    a = subprocess.run([exe, "mse", "-y", "1", "-p", "3", "-f", "json"], capture_output=True, text=True).stdout
    assert a == run("mse", "-y", "1", "-p", "3", "-f", "json").out
