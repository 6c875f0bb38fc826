"""What each command does, stage by stage: read -> set up -> evaluate -> reduce -> render.

The functions take the command line's values by name (cli.py declares the options) and raise LossgradErrors,
which cli.main turns into one `error:` line.
"""

from __future__ import annotations

import re
import sys
from typing import Annotated, Any

import numpy as np
import typer

from . import autocast, conventions, render
from .api import MICRO_OVER_BATCH, Result, batch_value, micro_batches, run, summary
from .errors import InputError, OptionError, cli_name
from .flags import SEQUENCE
from .inputs import Batch, CsvRequest, as_rows, parse_inline, read
from .losses import LOSSES
from .options import Format, Reduction, Setup, choose, choose_loss, per_length, setup
from .reduction import formulas, micro_formulas
from .tensors import input_files, is_tensor_file

# the commands besides the losses: (help, example), in the order --help lists them
HELP = {
    "losses": ("List the losses, their options and the conventions that support each.", None),
    "compare": ("The same inputs under every convention, side by side: value and gradients, the cells that differ "
                "from the exact mathematics marked *, and one line per difference saying why.",
                "Example: lossgrad compare bce -y 0,1,0,0 -p 8.4e-9,0.62,0.95,2.8e-6"),
    "check": ("Which convention, reduction and derivative explain your hand-computed gradient (and loss), and in "
              "plain sentences how it departs from each framework's. Exit status 0 when one explains it, 1 when none "
              "does.", "Example: lossgrad check bce -y 0,1,0,0 -p 8.358e-09,0.6248,0.9498,2.761e-06 --my-grad "
              "1.0,-1.6,19.9,1.0"),
    "completion": ("A completion script for your shell (bash, zsh, fish or powershell): eval \"$(lossgrad "
                   "completion bash)\" in ~/.bashrc completes commands, losses and options.", None),
    "jacobian": ("An activation's values and its full Jacobian matrix ∂aᵢ/∂xⱼ (softmax: diag(s) − s·sᵀ): the step "
                 "between a gradient with respect to probabilities and one with respect to logits.",
                 "Example: lossgrad jacobian softmax --x 1,2,3"),
    "plot": ("The loss and its gradient drawn over the prediction, one curve per convention: where a framework's clip "
             "or clamp flattens the gradient, at a glance.",
             "Examples: lossgrad plot bce ; lossgrad plot bce --from-logits --range -40,40"),
}
EXAMPLES = {
    "mse": "Example: lossgrad mse --target 0.11,0.01,0.59 --pred 0.12,0.35,0.61",
    "bce": "Examples: lossgrad bce --from-logits -y 0,1,0,0 -p -18.6,0.51,2.94,-12.8 ; "
    "lossgrad bce -c tf-keras -y 1,1,1 -p 1,1,0",
    "ce": "Examples: lossgrad ce --from-logits -y 2,0 -p '0.3,-1.2,2.0;1.5,0.2,-0.4' ; "
    "cat batch.csv | lossgrad ce --from-logits --format csv > per_row.csv",
    "ctc": "Examples: lossgrad ctc --from-logits --target 1,2 --pred '0,0.7,0;0.7,0,0;0,0,0.7' ; without "
    "--from-logits the predictions are log-probabilities, as PyTorch's ctc_loss takes them: lossgrad ctc -c torch ...",
}
# the options every loss command passes on to the set-up, the rest being the loss's own parameters
SETUP = ("from_logits", "reduction", "convention", "eps", "dtype", "labels", "autocast", "jit")
INPUT = ("target", "pred", "csv", "target_cols", "pred_cols", "sample_weight", "format", "output", "explain",
         "my_grad", "my_loss", "delimiter", "keep_cols", "micro_batches", "no_grad", *SEQUENCE,
         "my_grad_target", "my_grad_var", "my_grad_negative", "my_grad_other")


def _request(kw: dict[str, Any], loss: str | None = None) -> CsvRequest:
    """The CSV input the options name (stdin is read when piped, or named as '-'), and the columns of the loss's
    further inputs."""
    path = kw.get("csv")
    stdin = None if path is None and sys.stdin.isatty() else sys.stdin.buffer
    if path == "-" and sys.stdin.isatty():
        sys.stderr.write("reading CSV typed here: one sample per line (a header line first, if you like); "
                         "Ctrl-D on an empty line ends it\n")
    extra = tuple((k, str(v)) for k, v in _extra(loss, kw).items() if v is not None) if loss else ()
    return CsvRequest(path, stdin, kw.get("target_cols"), kw.get("pred_cols"), kw.get("sample_weight"),
                      kw.get("delimiter"), kw.get("keep_cols"), extra)


def _inputs(kw: dict[str, Any]) -> list[tuple[str, str | int]]:
    """The files read, which the output must not be: every tensor file an option names (compare's and check's,
    --my-grad's too), --csv's, or stdin's when it is read."""
    files: list[tuple[str, str | int]] = [(f"{cli_name(k)} {f}", f) for k, v in kw.items()
                                          if k != "output" and isinstance(v, str) and is_tensor_file(v)
                                          for f in input_files(v)]
    if _inline(kw):
        return files
    path = kw.get("csv")
    if path not in (None, "-"):
        return [*files, (f"--csv {path}", path)]
    try:
        return [*files, ("stdin", sys.stdin.fileno())] if not sys.stdin.isatty() else files
    except (OSError, ValueError, AttributeError):  # (no stdin to speak of)
        return files


def _read(s: Setup, kw: dict[str, Any]) -> Batch:
    return read(s.loss, target=kw.get("target"), pred=kw.get("pred"), weights=kw.get("sample_weight"),
                csv=_request(kw), labels=s.labels.value, extra=_extra(s.loss.name, kw))


def _extra(loss: str, kw: dict[str, Any]) -> dict[str, Any]:
    """The loss's extra inputs as typed (numbers, or with --csv column names); another loss's is an error."""
    own = {i.name for i in LOSSES[loss].inputs}
    for name in _input_names() - own:
        if kw.get(name) is not None:
            users = [x.name for x in LOSSES.values() if any(i.name == name for i in x.inputs)]
            raise OptionError(name, f"applies to {', '.join(users)}, not to {loss}")
    return {k: kw.get(k) for k in own}


def _input_names() -> set[str]:
    return {i.name for loss in LOSSES.values() for i in loss.inputs}


def _inline(kw: dict[str, Any]) -> bool:
    return kw.get("target") is not None or kw.get("pred") is not None


def _loss_params(kw: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in kw.items() if k not in SETUP + INPUT and k not in _input_names()}


# ---------------------------------------------------------------- lossgrad LOSS


def run_loss(name: str, **kw: Any) -> None:
    if _sequence_files(name, kw):
        from . import sequence_run, tensor_run  # (only tensor runs need them)

        return sequence_run.run(name, kw, tensor_run.given_dtype(kw), _loss_params(kw))
    if _tensor_files(kw):
        from . import tensor_run  # (only tensor runs need it)

        return tensor_run.run(name, kw, tensor_run.given_dtype(kw), _loss_params(kw))
    if kw.get("no_grad"):
        raise OptionError("no_grad", "applies to tensor file inputs ({pred} FILE.npy ... {output} FILE.npz)")
    s = setup(name, sample_weight=kw.get("sample_weight") is not None, **{k: kw[k] for k in SETUP if k in kw},
              **_loss_params(kw))
    fmt = choose(Format, "format", kw.get("format") or render.default_format(kw.get("output")), "format")
    k = kw.get("micro_batches")
    # (micro-batches hold the input in memory, and so does --over-batch: the batch's one loss)
    if fmt is Format.CSV and not _inline(kw) and k is None and not s.params.get("over_batch"):
        return _run_batch(s, kw)
    b = _read(s, kw)
    r = run(s, b)
    micro = None if k is None else micro_batches(s, b, k, whole=r)
    render.warn(r.warnings + (micro.warnings if micro else []))
    explain = _formulas(s, r) + (micro_formulas(micro.k) if micro else []) if kw.get("explain") else None
    flat = not s.rows_loss and (len(b.shape) == 1 if b.source == "inline" else b.p.shape[1] == 1)
    with render.open_output(kw.get("output"), inputs=_inputs(kw)) as out:
        render.write_result(render.Report(r, b.p, b.names, flat, b.source, b.kept, b.extra, micro, b.shape,
                                          b.input_names),
                            fmt.value, out, explain)
    if fmt is Format.CSV:
        sys.stderr.write(render.value_line(r) + "\n")
        if micro is not None:
            sys.stderr.write(render.micro_line(micro, r) + "\n")


def _formulas(s: Setup, r: Result) -> list[str]:
    policy = [f"autocast: {autocast.note(s.conv.name, s.loss.name, s.from_logits)}"] if s.autocast else []
    return s.loss.formulas(s.from_logits, s.conv, **s.params) + formulas(r.reduction, r.n, r.weight_note,
                                                                        per_length(s)) + policy



def _run_batch(s: Setup, kw: dict[str, Any]) -> None:
    """CSV in, CSV out, block by block; the reduced value (and the formulas) on stderr."""
    from . import batch  # (threads and the batch writer: only batch mode needs them)

    with render.open_output(kw.get("output"), binary=True, inputs=_inputs(kw)) as out:
        s, acc, per_sample = batch.run(s, _request(kw, s.loss.name), out)
    r = summary(s, acc, per_sample)
    if acc.slices is not None:  # (the kernel's own value, as a batch held in memory gives it)
        r.value = batch_value(s, acc.slices, acc.finish(s.reduction.value, s.np_dtype)[1], r)
    render.warn(r.warnings)
    if kw.get("explain"):
        sys.stderr.write("".join(line + "\n" for line in _formulas(s, r)))
    sys.stderr.write(render.value_line(r) + "\n")


# ---------------------------------------------------------------- compare and check


def _report_format(kw: dict[str, Any], command: str) -> str:
    if kw.get("format"):
        fmt = choose(Format, "format", kw["format"], "format")
        if fmt is Format.CSV:
            raise OptionError("format", f"{command} writes table or json")
        return fmt.value
    return "table" if kw.get("output") in (None, "-") and sys.stdout.isatty() else "json"


def _batch_for(loss: str, kw: dict[str, Any]) -> Batch:
    if _sequence_files(loss, kw):
        from . import sequence_run  # (only tensor runs need it)

        notes: list[str] = []
        return sequence_run.read(kw, notes)[0]
    if _tensor_files(kw):
        from . import tensor_run  # (only tensor runs need it)

        return tensor_run.read_batch(loss, kw, kw.get("labels", "auto"))
    s = setup(loss, from_logits=kw.get("from_logits", False), labels=kw.get("labels", "auto"),
              sample_weight=kw.get("sample_weight") is not None)
    return _read(s, kw)


def _tensor_files(kw: dict[str, Any]) -> bool:
    return any(is_tensor_file(kw.get(k)) for k in ("pred", "target", "sample_weight", *sorted(_input_names())))


def _sequence_files(loss: str, kw: dict[str, Any]) -> bool:
    """Whether a sequence loss reads a batch from tensor files; the options of such a batch are refused
    elsewhere."""
    given = [k for k in SEQUENCE if kw.get(k) is not None]
    sequence = loss in LOSSES and LOSSES[loss].kind == "sequence"
    if given and not sequence:
        raise OptionError(given[0], "applies to ctc's batches of sequences, from tensor files")
    if given and not _tensor_files(kw):
        raise OptionError(given[0], "applies to batches of sequences from tensor files ({pred} FILE.npy {target} "
                                    "FILE.npy); one sequence typed inline takes all its frames and labels")
    return sequence and _tensor_files(kw)


def compare(loss: str, **kw: Any) -> None:
    from .diagnose import compare as compare_all

    fmt = _report_format(kw, "compare")
    b = _batch_for(loss, kw)
    comp = compare_all(loss, b, from_logits=kw["from_logits"], reduction=kw["reduction"],
                       labels=b.labels or kw["labels"], dtype=kw["dtype"], params=_loss_params(kw),
                       micro=kw.get("micro_batches"), autocast=kw.get("autocast", False), jit=_jit_switch(kw, loss))
    with render.open_output(kw.get("output"), inputs=_inputs(kw)) as out:
        render.write_comparison(comp, b.p, b.y, fmt, out)


def _jit_switch(kw: dict[str, Any], loss: str) -> bool | None:
    """optax's results under jax.jit or op by op, where its XLA kernels run (float32, float16, bfloat16; float64 for
    the losses conventions.jit_applies names)."""
    if kw.get("jit") is not None and not conventions.jit_applies(conventions.OPTAX, kw["dtype"], loss):
        raise OptionError("jit" if kw["jit"] else "no_jit", "chooses between JAX's results under jax.jit and op by "
                          "op, for optax in float32, float16 or bfloat16 (and triplet, contrastive --ntxent and ctc "
                          "in float64): give {dtype} float32, float16 or bfloat16, or drop it")
    jit = kw.get("jit")
    return None if jit is None else bool(jit)


def check(loss: str, **kw: Any) -> None:
    from .diagnose import check as check_all, tolerance

    further = {k[len("my_grad_"):]: v for k, v in kw.items() if k.startswith("my_grad_") and v is not None}
    if kw.get("my_grad") is None and kw.get("my_loss") is None and not further:
        raise OptionError("my_grad", "or {my_loss} is required: give your gradient (one value per prediction), "
                                     "your loss value, or both")
    fmt = _report_format(kw, "check")
    choose_loss(loss)
    if kw.get("convention") is not None:
        try:
            conventions.get(kw["convention"])
        except conventions.UnsupportedError as e:
            raise OptionError("convention", str(e)) from None
    if kw.get("reduction") is not None:
        choose(Reduction, "reduction", kw["reduction"], "reduction")
    if kw.get("micro_batches") is not None and kw.get("over_batch"):
        raise OptionError("micro_batches", MICRO_OVER_BATCH)
    b = _batch_for(loss, kw)
    grad, tokens = _my_grad(kw.get("my_grad"), "my_grad", kw.get("pred"))
    if grad is not None and tokens is not None and b.order is not None and grad.size == b.p.size:
        grad = as_rows(grad, b.shape, b.order)  # (a [T, B, C] file's gradient, sequence by sequence as the rows)
        tokens = list(as_rows(np.array(tokens, dtype=object), b.shape, b.order))
    my_loss = None
    if kw.get("my_loss") is not None:
        v = parse_inline(kw["my_loss"], "{my_loss}").reshape(-1)
        if v.size != 1:
            raise InputError("{my_loss}", "takes one number, the reduced loss")
        my_loss = (float(v[0]), float(tolerance([kw["my_loss"].strip()], v)[0]))
    diag = check_all(loss, b, grad, tokens, from_logits=kw["from_logits"], labels=b.labels or kw["labels"],
                     against=kw.get("convention"), reduction=kw.get("reduction"), my_loss=my_loss, dtype=kw["dtype"],
                     params=_loss_params(kw), micro=kw.get("micro_batches"), autocast=kw.get("autocast", False),
                     my_grads={k: _my_grad(v, f"my_grad_{k}", kw.get(k)) for k, v in further.items()},
                     jit=_jit_switch(kw, loss))
    with render.open_output(kw.get("output"), inputs=_inputs(kw)) as out:
        render.write_diagnosis(diag, fmt, out)
    raise typer.Exit(0 if diag.match else 1)


def _my_grad(text: str | None, name: str, of: str | None) -> tuple[Any, Any]:
    """A gradient the user gave, as numbers typed (with the tokens, whose digits set the tolerance) or a tensor
    file (1e-6 relative), in the shape of the tensor file it is the gradient of (`of`: that input's option)."""
    if text is None:
        return None, None
    if is_tensor_file(text):
        from . import tensor_run

        grad = tensor_run.read_array(text, "{" + name + "}")
        if is_tensor_file(of):
            assert of is not None
            shape = tensor_run.open_tensor(of, "{" + name + "}").shape
            if grad.shape != shape:
                what = "the predictions'" if name == "my_grad" else f"{cli_name(name[len('my_grad_'):])}'s"
                raise InputError("{" + name + "}", f"{text} has shape {list(grad.shape)}; give it in {what} shape, "
                                                   f"{list(shape)}: one value per element, as laid out there")
        grad = grad.reshape(-1)
        return grad, [repr(float(v)) for v in grad]
    return parse_inline(text, "{" + name + "}").reshape(-1), [t for t in re.split(r"[,;\s]+", text.strip()) if t]


# ---------------------------------------------------------------- losses and jacobian


def list_losses(format: str | None = None) -> None:
    fmt = format or "table"
    if fmt not in ("table", "json"):
        raise OptionError("format", f"unknown format {fmt!r}; choose table or json")
    with render.open_output(None) as out:
        render.write_losses(fmt, out)


def completion(shell: Annotated[str, typer.Argument(..., metavar="SHELL", help="bash, zsh, fish or powershell.")]
               ) -> None:
    from typer._completion_shared import get_completion_script

    shells = ("bash", "zsh", "fish", "powershell")
    if shell not in shells:
        raise OptionError("shell", f"unknown shell {shell!r}; choose one of {', '.join(shells)}")
    sys.stdout.write(get_completion_script(prog_name="lossgrad", complete_var="_LOSSGRAD_COMPLETE", shell=shell)
                     + "\n")


# the most values `jacobian` takes: their matrix of 1,048,576 entries, about 25 MB of JSON
JACOBIAN_MOST = 1024


def jacobian(
    activation: Annotated[str, typer.Argument(..., metavar="ACTIVATION", help="softmax, sigmoid, tanh or relu.")],
    x: Annotated[str | None, typer.Option("--x", "-x", help="The input vector: numbers separated by commas or "
                                             "spaces.")] = None,
    format: Annotated[str | None, typer.Option("-f", "--format", help="table or json [default: table on a "
                                                  "terminal, else json].")] = None,
) -> None:
    from .activations import ACTIVATIONS

    if activation not in ACTIVATIONS:
        raise OptionError("activation", f"unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}")
    if x is None:
        raise OptionError("x", "is required: the input vector, e.g. --x 1,2,3")
    v = parse_inline(x, "{x}")
    if v.ndim != 1:
        raise InputError("{x}", "takes one vector (no ';' rows)")
    if v.size > JACOBIAN_MOST:
        raise InputError("{x}", f"has {v.size:,} values, whose Jacobian would have {v.size ** 2:,} entries; jacobian "
                                f"shows it for up to {JACOBIAN_MOST:,} values (a loss's gradient through the "
                                "activation needs no matrix: give the loss the logits, with --from-logits)")
    fmt = format or ("table" if sys.stdout.isatty() else "json")
    if fmt not in ("table", "json"):
        raise OptionError("format", f"unknown format {fmt!r}; choose table or json")
    act = ACTIVATIONS[activation]
    values, jac = act.fn(v)
    with render.open_output(None) as out:
        render.write_jacobian(act, v, values, jac, fmt, out)


# ---------------------------------------------------------------- plot


PLOT = ("range", "points", "log_x", "what", "y_scale", "png")


def plot(loss: str, **kw: Any) -> None:
    """The loss and its gradient over a range of predictions, one curve per convention; --png as an image too."""
    from . import plot as plots

    if loss in LOSSES and LOSSES[loss].inputs:
        raise OptionError("loss", f"plot draws losses of one prediction against one target; {loss} takes "
                                  f"{', '.join('{' + i.name + '}' for i in LOSSES[loss].inputs)} too")
    params = {k: v for k, v in _loss_params(kw).items() if k not in PLOT}
    c = plots.curves(loss, target=kw["target"], range=plots.parse_range(kw["range"]), points=kw["points"],
                     from_logits=kw["from_logits"], conventions=kw["convention"], log_x=kw["log_x"], eps=kw["eps"],
                     dtype=kw["dtype"], params=params)
    text = plots.terminal(c, kw["what"], kw["y_scale"])
    if kw.get("png"):
        plots.write_png(c, kw["png"], kw["what"], kw["y_scale"])
    sys.stdout.write(text)


__all__ = ["EXAMPLES", "check", "compare", "jacobian", "list_losses", "run_loss"]
