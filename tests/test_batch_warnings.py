"""Batch mode (CSV streamed block by block) says what the kernels warn of, each warning once, as the run held in
memory says it: Keras 3's cast of class indexes to bfloat16, optax's fall-back to lossgrad's float32 formulas."""

import io

import numpy as np

from conftest import lossgrad
from lossgrad import api, batch, inputs
from lossgrad.options import setup

# optax's triplet_margin_loss with norm_degree 255 under jit in float32 (x^255 takes 14 products) is not
# reproduced: lossgrad's float32 formulas, with a warning
TRIPLET = ["triplet", "-c", "optax", "--dtype", "float32", "--norm-degree", "255"]
WIDTH = 30
BASE = np.linspace(1, 2, WIDTH)
SHIFTS = (3, 11, 0, 29, 7)
COLS = ["--target-cols", f"0:{WIDTH}", "--pred-cols", f"{WIDTH}:{2 * WIDTH}", "--negative", f"{2 * WIDTH}:{3 * WIDTH}"]


def _warnings(err):
    return [line for line in err.splitlines() if line.startswith("warning: ")]


def _rows(shifts):
    """Each row: the positive (from BASE rolled by its shift), the anchor, then the negative; the anchor above both
    by 0.75 to 1.25 (optax raises the differences themselves to the 255th power: a negative one's is negative, and
    one much above 1.3 overflows)."""
    return [[*(BASE + 2 - (BASE - np.roll(BASE, k)) / 4).tolist(), *(BASE + 3).tolist(),
             *(BASE + 2 + (BASE[::-1] - 1.5) / 4).tolist()] for k in shifts]


def _csv(shifts):
    names = [f"{part}{i}" for part in "ypn" for i in range(WIDTH)]
    return ",".join(names) + "\n" + "".join(",".join(map(repr, row)) + "\n" for row in _rows(shifts))


def _held(shifts):
    """The same rows given on the command line, held in memory."""
    rows = _rows(shifts)

    def part(k):
        return ";".join(",".join(map(repr, r[k * WIDTH:(k + 1) * WIDTH])) for r in rows)
    return lossgrad(*TRIPLET, "-y", part(0), "-p", part(1), "--negative", part(2), "-f", "csv")


def test_a_kernel_fallback_is_warned_of_in_batch_mode_as_in_memory(tmp_path):
    path = tmp_path / "triplet.csv"
    path.write_text(_csv(SHIFTS[:1]))
    streamed = lossgrad(*TRIPLET, "--csv", path, *COLS, "-f", "csv")
    held = _held(SHIFTS[:1])
    assert streamed.code == held.code == 0, streamed.err
    assert streamed.out.splitlines()[1:] == held.out.splitlines()[1:]  # (the rows; the headers name columns)
    warned = _warnings(streamed.err)
    assert len(warned) == 1 and "computed by lossgrad's float32 formulas, not bit for bit" in warned[0]
    assert streamed.err == held.err  # the warning, then the value line, as the run in memory writes them
    piped = lossgrad(*TRIPLET, *COLS, "-f", "csv", input=path.read_text())
    assert piped.err == held.err  # (stdin: the rows wait in a spool until N is known; warned of alike)


def test_each_distinct_warning_once_over_many_blocks():
    # 10 rows in blocks of one row: every block falls back and says so; said once
    text = _csv(SHIFTS * 2).encode()
    reader = inputs.CsvReader(io.BytesIO(text), "triplet.csv", block_bytes=len(text) // 10)
    s = setup("triplet", convention="optax", dtype="float32", norm_degree=255.0)
    chunks = reader.chunks()
    first = next(chunks)
    layout = inputs.choose_layout(reader, first, "rows", "auto", f"0:{WIDTH}", f"{WIDTH}:{2 * WIDTH}")
    layout.extra["negative"] = list(range(2 * WIDTH, 3 * WIDTH))

    def chain():
        yield first
        yield from chunks

    acc = batch.stream(s, inputs.CsvSource(reader, chain(), layout), io.BytesIO(), b"loss\n", None)
    assert acc.rows == 10
    notes = [w for w in api.summary(s, acc, True).warnings if "float32 formulas" in w]
    assert len(notes) == 1
    held = _held(SHIFTS * 2)
    assert _warnings(held.err) == [f"warning: {notes[0]}"]


def test_keras_bfloat16_index_cast_is_warned_of_in_batch_mode(tmp_path):
    # class 257 needs 9 significant bits; bfloat16 keeps 8, and rounds 257 (halfway) to even: 256 (by hand)
    classes = 260
    z = np.linspace(-1, 1, classes)
    header = "y," + ",".join(f"z{i}" for i in range(classes)) + "\n"
    labels = (257, 3, 255, 257)
    path = tmp_path / "k.csv"
    path.write_text(header + "".join(f"{y}," + ",".join(map(repr, z.tolist())) + "\n" for y in labels))
    args = ["ce", "-c", "keras", "--dtype", "bfloat16", "--from-logits"]
    streamed = lossgrad(*args, "--csv", path, "--target-cols", "y", "--pred-cols", f"1:{classes + 1}", "-f", "csv")
    held = lossgrad(*args, "-y", ",".join(map(str, labels)), "-p",
                    ";".join(",".join(map(repr, z.tolist())) for _ in labels), "-f", "csv")
    assert streamed.code == held.code == 0, streamed.err
    assert _warnings(streamed.err) == _warnings(held.err) == [
        "warning: 2 class indexes (first 257 at row 0) rounded to another class by Keras' cast of the targets to "
        "bfloat16: 257 became 256, as the framework computes it"]

