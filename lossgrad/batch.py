"""Batch mode: CSV in, per-row CSV out, in constant memory.

Blocks of input are parsed (polars for large inputs, numpy for small), evaluated, and written out by a second
thread while the next block is parsed. With reduction `mean` the gradient of each row carries 1/N, and N is known
only at the end: the unscaled losses and gradients are spooled to a temporary file and written out, divided by N,
once the input is exhausted; so a bad row anywhere stops the run before anything is written.
"""

from __future__ import annotations

import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .inputs import _polars


class _Sink:
    """A binary stream for polars to write to that keeps the stream's own exception (polars turns a
    BrokenPipeError into a plain OSError)."""

    def __init__(self, out):
        self.out = out
        self.error = None

    def write(self, data) -> int:
        try:
            return self.out.write(data)
        except Exception as e:
            self.error = e
            raise

    def flush(self) -> None:
        self.out.flush()


def rows_table(pieces, divisor: int = 1):
    """The CSV rows of `pieces` ((losses, grad) in turn: a row per sample of its losses then its gradient
    divided by `divisor`) as a table for write_table: a polars DataFrame when it is large, else a numpy array."""
    n = sum(grad.shape[0] for _, grad in pieces)
    nl = pieces[0][0].size // max(pieces[0][1].shape[0], 1)
    ng = pieces[0][1].shape[1]
    dtype = np.result_type(*(a for piece in pieces for a in piece))
    # one C-ordered matrix: polars copies its columns out faster than it gathers strided ones
    table = np.empty((n, nl + ng), dtype=dtype)
    row = 0
    for losses, grad in pieces:
        m = grad.shape[0]
        table[row:row + m, :nl] = losses.reshape(m, nl)
        if divisor == 1:
            table[row:row + m, nl:] = grad
        else:
            np.divide(grad, grad.dtype.type(divisor), out=table[row:row + m, nl:])
        row += m
    pl = _polars() if n > 2000 else None  # (a small batch does not pay for importing polars)
    return table if pl is None else pl.from_numpy(table)


def write_table(out, table) -> None:
    """Write a rows_table to the binary stream `out`, every float in its shortest round-trip form."""
    if isinstance(table, np.ndarray):
        out.write("".join(",".join(map(repr, r)) + "\n" for r in table.tolist()).encode())
        return
    sink = _Sink(out)
    try:
        table.write_csv(sink, include_header=False)  # into `out` itself: no intermediate bytes
    except Exception:
        if sink.error is not None:  # the stream's own error (a closed pipe), not polars' rewording of it
            raise sink.error from None
        raise


def prepare_writer() -> None:
    """Start, on a thread of its own, what the first write_table would otherwise pay while every other stage
    waits for it: importing polars and its first numpy conversion (which imports numpy.ma: 20-40 ms). The reader
    parses the first block meanwhile."""
    import threading

    def warm():
        pl = _polars()
        if pl is not None:
            import io

            pl.from_numpy(np.zeros((1, 2))).write_csv(io.BytesIO(), include_header=False)

    threading.Thread(target=warm, daemon=True).start()


class Miscounted(Exception):
    """The rows read differ from the count the output was divided by (blank lines the quick count took for
    rows): the stream must run again, with `rows`."""

    def __init__(self, rows: int):
        super().__init__(rows)
        self.rows = rows


class _Stage:
    """One thread that runs jobs in order, at most one behind whoever feeds it. Parsing (polars), computing
    (numpy), formatting (polars) and writing (the kernel) all release the GIL, so stages overlap on both cores."""

    def __init__(self):
        self.pool = ThreadPoolExecutor(max_workers=1)
        self.pending = []

    def submit(self, fn, *args):
        while len(self.pending) >= 1:
            self.pending.pop(0).result()
        self.pending.append(self.pool.submit(fn, *args))

    def drain(self):
        while self.pending:
            self.pending.pop(0).result()

    def close(self, finish: bool = False):
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


class _Progress:
    """A progress bar on stderr, only when stderr is a terminal and the input is more than a moment's work."""

    def __init__(self, reader):
        self.reader = reader
        self.bar = None
        big = reader.size is None or reader.size > (64 << 20)
        if not (big and sys.stderr.isatty()):
            return
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(
            TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(), console=Console(stderr=True), transient=True,
            redirect_stdout=False, redirect_stderr=False,
        )
        self.task = self.bar.add_task(reader.name, total=reader.size, rate="")
        self.bar.start()

    def update(self, rows: int, seconds: float):
        if self.bar:
            rate = f"{rows / max(seconds, 1e-9):,.0f} rows/s"
            self.bar.update(self.task, completed=self.reader.bytes_read, rate=rate)

    def close(self):
        if self.bar:
            self.bar.stop()


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


def stream(ev, reader, layout, out, chunks, header: bytes, rows=None) -> None:
    """Evaluate `chunks` (blocks of `reader`) under `ev` and write `header` and the per-row CSV to the binary
    stream `out`. `rows` (a number, or a future of one, or None) is the count of data rows when it could be
    known beforehand: then a mean's 1/N goes into the rows as they are written; else they wait in a spool."""
    import time

    _steady_heap()
    compute, write = _Stage(), _Stage()
    progress = _Progress(reader)
    k = 1 if ev.per_sample_for(len(layout.pred)) else len(layout.pred)
    sizes = []
    state = {"header": header, "divisor": None, "spool": None}
    t0 = time.perf_counter()

    def emit(table):
        if state["header"]:
            out.write(state["header"])
            state["header"] = b""
        write_table(out, table)

    def decide():
        """On the first block: divide as we go (N known) or spool (N known only at the end)."""
        if ev.reduction != "mean":
            state["divisor"] = 1
            return
        n_rows = rows.result() if hasattr(rows, "result") else rows
        if n_rows is None:
            state["spool"] = tempfile.TemporaryFile()
        else:
            state["divisor"] = n_rows * k

    def process(chunk):
        if state["divisor"] is None and state["spool"] is None:
            decide()
        pieces = [(parts.losses, parts.grad) for parts in ev.csv_chunk(chunk, layout, joined=False)]
        spool, divisor = state["spool"], state["divisor"]
        if spool is None:
            write.submit(emit, rows_table(pieces, divisor))
        else:
            shapes = []
            for losses, grad in pieces:
                losses = np.ascontiguousarray(losses)
                grad = np.ascontiguousarray(grad)
                spool.write(losses.tobytes())
                spool.write(grad.tobytes())
                shapes.append((losses.shape, grad.shape, losses.dtype))
            sizes.append(shapes)

    try:
        for chunk in chunks:
            compute.submit(process, chunk)
            progress.update(ev.rows, time.perf_counter() - t0)
        compute.drain()
        write.drain()
        value, n = ev.finish()
        divisor, spool = state["divisor"], state["spool"]
        if divisor is not None and divisor != 1 and n != divisor:
            raise Miscounted(ev.rows)
        if spool is not None:
            spool.seek(0)
            for shapes in sizes:  # a chunk's pieces, written out together as they came
                pieces = []
                for lshape, gshape, dtype in shapes:
                    ln, gn = int(np.prod(lshape)), int(np.prod(gshape))
                    losses = np.frombuffer(spool.read(ln * dtype.itemsize), dtype=dtype).reshape(lshape)
                    grad = np.frombuffer(spool.read(gn * dtype.itemsize), dtype=dtype).reshape(gshape)
                    pieces.append((losses, grad))
                compute.submit(lambda p: write.submit(emit, rows_table(p, n)), pieces)
            compute.drain()
            write.drain()
        if state["header"]:
            out.write(state["header"])
    finally:
        progress.close()
        compute.close()
        write.close(finish=True)
        if state["spool"] is not None:
            state["spool"].close()
