"""The processor whose kernels are reproduced: this machine's by default, --cpu, cpu= or LOSSGRAD_CPU otherwise."""

import numpy as np
import pytest

from conftest import assert_usage_error
from lossgrad import api, cpu


def test_detected_reads_the_flags_pytorch_asks_for(tmp_path, monkeypatch):
    info = tmp_path / "cpuinfo"
    real_open = open

    def fake_open(path, *a, **k):
        return real_open(info if path == "/proc/cpuinfo" else path, *a, **k)

    for flags, want in (("fpu avx2 fma avx512f avx512dq avx512bw avx512vl", "avx512"),
                        ("fpu avx2 fma avx512f", "avx2"),  # (AVX-512F alone: PyTorch runs its AVX2 kernels)
                        ("fpu avx2 fma", "avx2")):
        info.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
        cpu.detected.cache_clear()
        monkeypatch.setattr("builtins.open", fake_open)
        try:
            assert cpu.detected() == want
        finally:
            monkeypatch.undo()
            cpu.detected.cache_clear()


def test_chosen_over_environment_over_machine(monkeypatch):
    monkeypatch.delenv(cpu.ENV, raising=False)
    assert cpu.selected() == cpu.detected()
    monkeypatch.setenv(cpu.ENV, "AVX2")
    assert cpu.selected() == "avx2"
    with cpu.using("avx512"):
        assert cpu.selected() == "avx512"
    assert cpu.selected() == "avx2"


def test_unknown_capability_is_an_option_error(cli, monkeypatch):
    assert_usage_error(cli("mse", "-y", "1", "-p", "2", "--cpu", "sse4"), "--cpu", "avx512 or avx2", "'sse4'")
    assert_usage_error(cli("mse", "-y", "1", "-p", "2", env={"LOSSGRAD_CPU": "neon"}), "LOSSGRAD_CPU", "'neon'")
    with pytest.raises(ValueError, match="avx512 or avx2"):
        api.evaluate("mse", [1.0], [2.0], cpu="avx")


def test_the_option_reaches_every_command(cli):
    for args in (("ce", "--from-logits", "-y", "1", "-p", "1,0,0", "-c", "torch", "--dtype", "float32"),
                 ("compare", "ce", "--from-logits", "-y", "1", "-p", "1,0,0", "--dtype", "float32"),
                 ("check", "ce", "--from-logits", "-y", "1", "-p", "1,0,0", "--dtype", "float32", "--my-grad",
                  "0.576,-0.788,0.212")):
        for name in cpu.CAPABILITIES:
            r = cli(*args, "--cpu", name)
            assert r.code in (0, 1) and "error" not in r.err, (args, name, r.err)
    assert np.isfinite(api.ce([1], [[1.0, 0.0, 0.0]], from_logits=True, convention="torch", dtype="float32",
                              cpu="avx2").value)


def test_optax_float32_over_several_rows_takes_each_processors_order_unwarned():
    # measured on an AMD EPYC with AVX2: JAX's float32 sums over [N, K] take other lanes there (lowp_xla.avx2_lanes,
    # tests/test_avx2_xla_sums.py and test_avx2_xla_fused.py) and ntxent's fused loops other blocks
    # (tests/test_avx2_xla_seq.py); each capability's order is reproduced, so none warns, but they differ: 4 pairs of
    # 5 features go 4 rows at a time with AVX2, fusing other products in their first 4 columns
    y, p = np.ones((16, 10), np.float32), np.linspace(-1, 1, 160, dtype=np.float32).reshape(16, 10)
    rows = np.eye(10, dtype=np.float32)[np.arange(16) % 10]
    for c in cpu.CAPABILITIES:
        assert api.evaluate("mse", y, p, convention="optax", dtype="float32", jit=False, cpu=c).warnings == []
        assert api.evaluate("ce", rows, p, convention="optax", dtype="float32", from_logits=True, jit=False,
                            cpu=c).warnings == []
    a = np.sin(np.arange(20.0)).reshape(4, 5)
    runs = {c: api.contrastive(a + 0.3 * np.cos(np.arange(20.0)).reshape(4, 5), a, convention="optax",
                               dtype="float32", jit=True, ntxent=True, cpu=c) for c in cpu.CAPABILITIES}
    assert all(r.warnings == [] for r in runs.values())
    assert not np.array_equal(runs["avx2"].grad, runs["avx512"].grad)
    column = api.evaluate("mse", y[:, :1], p[:, :1], convention="optax", dtype="float32", jit=False, cpu="avx2")
    assert column.warnings == []
