"""Batch mode: CSV in, per-row CSV out, in constant memory.

Blocks of input are parsed (polars for large inputs, numpy for small), evaluated, and written out by a second
thread while the next block is parsed. With reduction `mean` the gradient of each row carries 1/N, and N is known
only at the end: the unscaled losses and gradients are spooled to a temporary file and written out, divided by N,
once the input is exhausted; so a bad row anywhere stops the run before anything is written. Kernels that compute a
row by where it lies in the whole batch (kernels.placed) are told each block's first row and the batch's rows: a
file's counted beforehand, a pipe's known once it has ended (its inputs spooled until then, as for a mean).
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO, Any

import numpy as np

from . import inputs
from .api import accumulate, mean_part
from .errors import DomainError, EnvironmentFault, InputError, OptionError
from .evaluation import evaluate
from .inputs import (
    FAST_BYTES,
    Chunk,
    CsvReader,
    CsvRequest,
    CsvSource,
    Kept,
    Layout,
    count_lines,
    quick_count_lines,
    whole_packets,
)
from .losses.base import Place
from .options import Labels, Reduction, Setup
from .reduction import HELD_VALUES, Accumulator, Slices
from .render import Progress, csv_header, extra_header, grad_order, rows_table, write_table

Pieces = list[tuple[np.ndarray, np.ndarray]]


def prepare_writer() -> None:
    """Start, on a thread of its own, what the first write_table would otherwise pay while every other stage
    waits for it: importing polars and its first numpy conversion (which imports numpy.ma: 20-40 ms). The reader
    parses the first block meanwhile."""
    import threading

    def warm() -> None:
        try:
            pl = inputs._polars()
            if pl is not None:
                import io

                pl.from_numpy(np.zeros((1, 2))).write_csv(io.BytesIO(), include_header=False)
        except BaseException:  # only a head start: the writer meets (and reports) any failure itself
            pass

    try:
        threading.Thread(target=warm, daemon=True).start()
    except RuntimeError:  # (no thread to spare: the writer imports polars itself)
        pass


class Miscounted(Exception):
    """The rows read differ from the count the output was divided by (blank lines the quick count took for
    rows): the stream must run again, with `rows`."""

    def __init__(self, rows: int):
        super().__init__(rows)
        self.rows = rows


class _Stage:
    """One thread that runs jobs in order, at most one behind whoever feeds it. Parsing (polars), computing
    (numpy), formatting (polars) and writing (the kernel) all release the GIL, so stages overlap on both cores."""

    def __init__(self) -> None:
        self.pool = ThreadPoolExecutor(max_workers=1)
        self.pending: list[Future[Any]] = []

    def submit(self, fn: Any, *args: Any) -> None:
        while len(self.pending) >= 1:
            self.pending.pop(0).result()
        self.pending.append(self.pool.submit(fn, *args))

    def drain(self) -> None:
        while self.pending:
            self.pending.pop(0).result()

    def close(self, finish: bool = False) -> None:
        """Stop; `finish` lets the jobs already queued complete (rows computed before an error are good rows)."""
        for f in self.pending:
            if finish:
                try:
                    f.result()
                except Exception:  # the first error is the one being reported
                    pass
            else:
                f.cancel()
        self.pool.shutdown(wait=True)


def _steady_heap() -> None:
    """Keep freed memory for the next block (glibc): every block allocates the same few arrays of a few MB, and
    by default glibc maps large ones afresh and gives the heap's top back after each, so every block pays the
    page faults again (ce's compute: 60% of its time). Peak memory is unchanged; nothing happens elsewhere."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-1, 256 << 20)  # M_TRIM_THRESHOLD: keep up to 256 MB free at the heap's top
        libc.mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD: arrays below 32 MB come from the heap
    except (OSError, AttributeError):  # not glibc (musl): its own allocator, left as it is
        pass




class _Spool:
    """Unscaled losses and gradients (and the kept columns' text) kept in a temporary file until the mean's N is
    known."""

    def __init__(self) -> None:
        self.file = tempfile.TemporaryFile()
        self.shapes: list[list[tuple[tuple[int, ...], tuple[int, ...], np.dtype[Any]]]] = []
        self.texts: list[list[int]] = []  # each chunk's kept columns: their lengths in bytes

    def put(self, pieces: Pieces, kept: Kept | None = None) -> None:
        shapes, texts = [], []
        try:
            for losses, grad in pieces:
                losses, grad = np.ascontiguousarray(losses), np.ascontiguousarray(grad)
                self.file.write(losses.tobytes())
                self.file.write(grad.tobytes())
                shapes.append((losses.shape, grad.shape, losses.dtype))
            for column in kept or []:  # (a field holds no line end: the lines of a column are its fields)
                texts.append(self.file.write("\n".join(column).encode()))
        except OSError as e:  # (the mean's rows wait here: a full disk or a file-size limit stops them)
            raise EnvironmentFault(f"a temporary file in {tempfile.gettempdir()}", e.strerror or str(e)) from None
        self.shapes.append(shapes)
        self.texts.append(texts)

    def chunks(self) -> Iterator[tuple[Pieces, Kept | None]]:
        """Each chunk's pieces and kept text, as they were put."""
        self.file.seek(0)
        for shapes, texts in zip(self.shapes, self.texts, strict=True):
            pieces = [(self._read(lshape, dtype), self._read(gshape, dtype)) for lshape, gshape, dtype in shapes]
            kept = [self.file.read(n).decode().split("\n") for n in texts]
            yield pieces, kept or None

    def _read(self, shape: tuple[int, ...], dtype: np.dtype[Any]) -> np.ndarray:
        n = int(np.prod(shape))
        return np.frombuffer(self.file.read(n * dtype.itemsize), dtype=dtype).reshape(shape)


class _Watch:
    """The size of an input that is a regular file, as it was when it was opened: a file that shrinks or grows
    while it is read (truncated, appended to, rewritten) gives rows that are neither the old file's nor the new."""

    def __init__(self, reader: CsvReader) -> None:
        self.name = reader.name
        self.fd: int | None = None
        try:
            fd = reader.raw.fileno()
            st = os.fstat(fd)
        except (OSError, ValueError, AttributeError):
            return
        if stat.S_ISREG(st.st_mode):
            self.fd, self.size = fd, st.st_size

    def changed(self) -> bool:
        try:
            return self.fd is not None and os.fstat(self.fd).st_size != self.size
        except OSError:
            return False

    def check(self) -> None:
        if self.changed():
            raise changed_error(self.name)


def changed_error(name: str) -> InputError:
    return InputError(name, "changed while it was read (its size is not what it was when lossgrad opened it); "
                            "read it once it is complete, or a copy")


class _Writer:
    """The output side of a stream: the header once, then each chunk's rows, divided by N when it is known
    (else spooled until it is)."""

    def __init__(self, out: IO[bytes], header: bytes) -> None:
        self.out, self.header = out, header
        self.divisor: int | float | None = None
        self.spool: _Spool | None = None
        self.divided = False  # the rows come divided by N already (a kernel's own mean: Parts.mean_grad)
        self.rows: int | None = None  # the batch's rows, as kernels that compute a row by its place are told them
        self.stage = _Stage()

    def emit(self, table: Any) -> None:
        self.write_header()
        write_table(self.out, table)

    def write_header(self) -> None:
        if self.header:
            self.out.write(self.header)
            self.header = b""

    def put(self, pieces: Pieces, kept: Kept | None) -> None:
        if self.spool is not None:
            self.spool.put(pieces, kept)
        else:
            self.stage.submit(self.emit, rows_table(pieces, 1 if self.divided else self.divisor or 1, kept))


def stream(setup: Setup, source: CsvSource, out: IO[bytes], header: bytes, rows: Any = None) -> Accumulator:
    """Evaluate the CSV `source` block by block under `setup` and write `header` and the per-row CSV to the binary
    stream `out`. `rows` (a number, a future of one, or None) is the count of data rows when it could be known
    beforehand: then a mean's 1/N goes into the rows as they are written; else they wait in a spool."""
    _steady_heap()
    compute, writer = _Stage(), _Writer(out, header)
    progress = Progress(source.reader)
    acc = Accumulator()
    k = 1 if setup.per_sample_for(len(source.layout.pred)) else len(source.layout.pred)
    t0 = time.perf_counter()

    def process(chunk: Chunk) -> None:
        if writer.divisor is None and writer.spool is None:  # (the first block: N, where known beforehand)
            _decide(setup, writer, rows, k)
            if setup.reduction is not Reduction.NONE:  # (what the kernel's reduced value needs of the blocks)
                acc.slices = Slices(_resolved(rows), HELD_VALUES)
        pieces = _evaluate_chunk(setup, source, chunk, acc, writer.divisor if writer.divided else None,
                                 (acc.rows, writer.rows))
        if writer.spool is not None and _evaluated_again(setup):  # (evaluated again once N or the rows are known)
            pieces = _inputs(source, chunk)
        writer.put(pieces, chunk.kept)

    watch, changed = _Watch(source.reader), False
    # (TensorFlow's kernels take the whole batch in packets of 8 values: every block a multiple of 8 rows)
    chunks = whole_packets(source.chunks, PACKET) if setup.lowp and setup.conv.kernels in ("tf", "tf-keras") \
        else source.chunks
    try:
        for chunk in chunks:
            watch.check()
            compute.submit(process, chunk)
            progress.update(acc.rows, time.perf_counter() - t0)
        compute.drain()
        writer.stage.drain()
        watch.check()
        _finish(setup, source.layout, acc, writer, compute)
        writer.write_header()
        if acc.slices is not None and not _whole_batch_sums(setup, acc):
            acc.slices.fold = None
    except (InputError, Miscounted):
        # a bad row, or rows miscounted, in a file that changed: the change is what went wrong, and no more rows
        # are written
        changed = watch.changed()
        if changed:
            raise changed_error(watch.name) from None
        raise
    finally:
        progress.close()
        compute.close()
        writer.stage.close(finish=not changed)
        if writer.spool is not None:
            writer.spool.file.close()
    return acc


def _decide(setup: Setup, writer: _Writer, rows: Any, k: int) -> None:
    """On the first block: divide as we go (N known) or spool (N known only at the end); and the batch's rows for
    kernels that compute a row by its place in the batch (spooled where only the end knows them)."""
    wanted = placed(setup)
    writer.rows = _resolved(rows) if wanted else None
    if setup.reduction is not Reduction.MEAN:
        writer.divisor = 1
        writer.spool = _Spool() if wanted and writer.rows is None else None
        return
    n_rows = _resolved(rows) if countable(setup) else None
    if n_rows is None:
        writer.spool = _Spool()
    else:
        writer.divisor = n_rows * k
        writer.divided = kernel_mean(setup)


def _resolved(rows: Any) -> int | None:
    """The count of data rows (`rows`: a number, a future of one, or None)."""
    return rows.result() if hasattr(rows, "result") else rows  # type: ignore[no-any-return]


def _whole_batch_sums(setup: Setup, acc: Accumulator) -> bool:
    """Whether the kernels' sums over the whole batch (the reduced value's) can be formed from the blocks: not for
    PyTorch's class-weighted mean over several blocks, each of which divides by its own weights (_weights_total)."""
    return acc.pieces <= 1 or setup.reduction is not Reduction.MEAN or setup.params.get("class_weights") is None


# the values of a packet of TensorFlow's kernels (Eigen's on AVX)
PACKET = 8


def kernel_mean(setup: Setup) -> bool:
    """A mean whose 1/N the kernel brings in before it rounds (Parts.mean_grad): its rows cannot be divided by N
    afterwards."""
    return setup.reduction is Reduction.MEAN and (setup.lowp or setup.half is not None)


def placed(setup: Setup) -> bool:
    """Whether the kernels compute a row by where it lies in the whole batch (kernels.placed; probability rows
    until the layout says class indexes): a stream tells them the batch's rows, counted beforehand, or spools its
    rows until it has ended."""
    if not setup.lowp:
        return False
    from . import kernels  # (the backends load only where a low-precision kernel runs)
    return kernels.placed(setup.conv.kernels or "", setup.loss.name, setup.from_logits,
                          setup.labels is not Labels.INDEX, "float32" if setup.autocast else setup.dtype.value)


def _evaluated_again(setup: Setup) -> bool:
    """Whether spooled rows are evaluated again once the stream has ended (their inputs spooled, not their
    results): a kernel's mean brings 1/N in before it rounds, or the kernels compute a row by its place."""
    return kernel_mean(setup) or placed(setup)


def _inputs(source: CsvSource, chunk: Chunk) -> Pieces:
    """A block's inputs as spool pieces: (targets, predictions), the weights when there are any, then each of the
    loss's further inputs (triplet's negatives, ...) in the layout's order."""
    layout = source.layout
    pieces = [(chunk.data[:, layout.target], chunk.data[:, layout.pred])]
    further = [chunk.data[:, [layout.weight]]] if layout.weight is not None else []
    further += [chunk.data[:, cols] for cols in layout.extra.values()]
    return pieces + [(a, a) for a in further]


def _spooled_rows(setup: Setup, layout: Layout, pieces: Pieces, n: int | float, kept: Kept | None,
                  place: Place) -> Any:
    """The rows of spooled inputs (as _inputs put them), evaluated again with the mean's N and the batch's rows
    now known (`place`: where they lie in it)."""
    (y, p), further = pieces[0], [a for a, _ in pieces[1:]]
    w = further.pop(0)[:, 0] if layout.weight is not None else None
    blocks = evaluate(setup, y, p, w, dict(zip(layout.extra, further, strict=True)), place)
    return rows_table([(b.parts.losses, _row_grads(setup, b.parts, n)) for b in blocks], 1, kept)


def _grad(parts: Any, divisor: int | float | None) -> np.ndarray:
    """The gradient as written: of the mean over `divisor` when the kernel divides (None: not yet divided)."""
    grad: np.ndarray = parts.grad if divisor is None else mean_part(parts, "grad", divisor)
    return grad


def _evaluate_chunk(setup: Setup, source: CsvSource, chunk: Chunk, acc: Accumulator,
                    divisor: int | float | None = None, place: Place | None = None) -> Pieces:
    layout = source.layout
    y = chunk.data[:, layout.target]
    p = chunk.data[:, layout.pred]
    w = None if layout.weight is None else chunk.data[:, layout.weight]
    try:
        blocks = evaluate(setup, y, p, w, {name: chunk.data[:, cols] for name, cols in layout.extra.items()}, place)
    except DomainError as e:
        raise layout.error(e, chunk) from None
    accumulate(setup, acc, blocks)
    acc.pieces += 1
    return [(b.parts.losses, _row_grads(setup, b.parts, divisor)) for b in blocks]


def _row_grads(setup: Setup, parts: Any, divisor: int | float | None) -> np.ndarray:
    """A row's gradient columns: the gradient, then the further gradients (gaussian-nll's var), divided alike."""
    grad = _grad(parts, divisor)
    order = grad_order(setup.loss)
    if not order:
        return grad
    further = {k: (parts.extra_grads or {})[k] if divisor is None else mean_part(parts, "grad_" + k, divisor)
               for k in order}
    return np.hstack([grad, *(further[k].reshape(len(grad), -1) for k in order)])


def _finish(setup: Setup, layout: Layout, acc: Accumulator, writer: _Writer, compute: _Stage) -> None:
    """Check the N the rows were divided by (and the rows the kernels were told), or write the spooled rows divided
    by the N now known."""
    _, n = acc.finish(setup.reduction.value, setup.np_dtype)
    if writer.divisor is not None and writer.divisor != 1 and n != writer.divisor:
        raise Miscounted(acc.rows)
    if writer.spool is None and writer.rows not in (None, acc.rows):
        raise Miscounted(acc.rows)
    if writer.spool is not None:
        again = _evaluated_again(setup)

        def rows(p: Pieces, k: Kept | None, first: int) -> Any:
            return _spooled_rows(setup, layout, p, n, k, (first, acc.rows)) if again else rows_table(p, n, k)

        first = 0
        for pieces, kept in writer.spool.chunks():
            compute.submit(lambda p, k, at: writer.stage.submit(writer.emit, rows(p, k, at)), pieces, kept, first)
            first += pieces[0][1].shape[0]
        compute.drain()
        writer.stage.drain()


# ---------------------------------------------------------------- batch mode as the command line runs it


def run(setup: Setup, request: CsvRequest, out: IO[bytes]) -> tuple[Setup, Accumulator, bool]:
    """The CSV input of `request` into `out` as per-row CSV; the setup (its label layout decided), what the
    reduction needs, and whether the rows held one loss per sample. A mean's N is counted first where it can be
    (see `_how_to_count`); if blank lines made a quick count wrong, the output (a regular file) is written again
    with the right N."""
    if setup.loss.whole_batch:
        raise OptionError("csv", f"{setup.loss.name}'s loss of each row depends on every row, so a CSV batch is not "
                          "streamed in blocks: give the batch with {pred} and {target}")
    if setup.params.get("over_batch"):
        raise OptionError("over_batch", "gives the whole batch one loss, so a CSV batch is not streamed in blocks: "
                                        "give the batch with {pred} and {target} (tensor files, or numbers)")
    start = _rewind_point(out)
    how = _how_to_count(setup, request, start is not None)
    name = request.path if request.path not in (None, "-") else "<stdin>"
    try:
        return _stream_once(setup, request, out, how)
    except Miscounted as m:
        if start is None:  # (a checked count is wrong only when the file changed after it was counted)
            raise changed_error(str(name)) from None
        out.seek(start)
        out.truncate()
        rows = m.rows
    try:
        return _stream_once(setup, request, out, rows)
    except Miscounted:  # (the exact count, wrong: the file is changing)
        raise changed_error(str(name)) from None


def countable(setup: Setup) -> bool:
    """Whether a mean's N is the row count: not where rows are left out or weighted (ignore_index, class_weights,
    exact's sample_weight), which only the end knows."""
    return setup.params.get("ignore_index") is None and not n_is_weighed(setup)


def n_is_weighed(setup: Setup) -> bool:
    """Whether a mean's N is a sum of weights (class_weights, exact's sample_weight) rather than a count."""
    return setup.params.get("class_weights") is not None or (
        setup.sample_weight and setup.conv.sample_weight_mean == "sum-of-weights")


def _how_to_count(setup: Setup, request: CsvRequest, rewindable: bool) -> str | None:
    """None (no count needed beforehand, or spooled), "quick" (line ends alone, checked at the end) or "checked"
    (a count that checks every line). A mean's N is counted; so are the rows of a file whose kernels sum over the
    whole batch (Slices: a wrong quick count only leaves the value to lossgrad's sum), and, as N, the rows of a file
    whose kernels compute a row by its place in the batch (placed)."""
    path = request.path
    if path in (None, "-") or not os.path.isfile(path):
        return None
    if (setup.reduction is Reduction.MEAN and countable(setup)) or placed(setup):
        return "quick" if rewindable else "checked"
    return "quick" if setup.lowp and setup.reduction is not Reduction.NONE else None


def _rewind_point(out: IO[bytes]) -> int | None:
    """The offset to go back to if the output must be written again: a regular file's, else None (a pipe)."""
    try:
        if not stat.S_ISREG(os.fstat(out.fileno()).st_mode):
            return None
        out.flush()
        return out.tell()
    except (OSError, ValueError, AttributeError):
        return None


def _data_rows(lines: Future[int | None], skip: int) -> int | None:
    """The count of data rows: the lines counted, less those up to the header."""
    counted = lines.result()
    return None if counted is None else counted - skip


def _stream_once(setup: Setup, request: CsvRequest, out: IO[bytes], how: str | int | None
                 ) -> tuple[Setup, Accumulator, bool]:
    """One pass over the CSV input into `out`. `how`: None, "quick" or "checked" (count the file's lines on
    another thread while the reader starts), or the row count itself."""
    if request.size() > FAST_BYTES:  # (a pipe's size is unknown, and it may be small)
        prepare_writer()
    counting = lines = None
    if how in ("quick", "checked") and request.path is not None:
        counting = ThreadPoolExecutor(max_workers=1)
        lines = counting.submit(quick_count_lines if how == "quick" else count_lines, request.path)
    try:
        source = request.open(setup.loss.kind, setup.labels.value)
        setup = setup.with_labels(source.layout.labels)
        per_sample = setup.per_sample_for(len(source.layout.pred))
        widths = {k: len(source.layout.extra.get(k, source.layout.pred)) for k in grad_order(setup.loss)}
        header = (csv_header(per_sample, source.names, source.kept_names).rstrip("\n")
                  + extra_header(widths, source.names, source.input_names) + "\n")
        rows: Any = how if isinstance(how, int) else None
        if counting is not None and lines is not None:
            # the lines up to the header (or before the first data row) are not samples
            reader = source.reader
            skip = reader.header_line if reader.header is not None else reader.header_line - 1
            rows = counting.submit(_data_rows, lines, skip)
        return setup, stream(setup, source, out, header.encode(), rows), per_sample
    finally:
        if counting is not None:
            counting.shutdown(wait=True)
