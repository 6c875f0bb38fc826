"""Every command-line option, declared once: its flags, type, default and help; a command takes those its
signature names (lossgrad.cli)."""

from __future__ import annotations

from typing import Annotated, Any, NamedTuple

import typer

Text = str | None


class Opt(NamedTuple):
    """An option as a parameter: its annotated type (Typer reads the option from it) and its default."""

    annotation: Any
    default: Any


def option(*decls: str, help: str, kind: Any = Text, default: Any = None, choices: str = "") -> Opt:
    """An option; `choices` (a|b|c) is shown in --help where Typer would show <str>."""
    return Opt(Annotated[kind, typer.Option(*decls, help=help, metavar=f"[{choices}]" if choices else None)], default)


# every option, declared once; a command takes those its signature names
OPTIONS: dict[str, Opt] = {
    "target": option("-y", "--target", help="Targets: numbers separated by commas or spaces; ';' between rows."),
    "pred": option("-p", "--pred", help="Predictions (probabilities, logits with --from-logits, or values), same "
                    "syntax; or a tensor file: .npy, .npz:KEY, .safetensors:KEY, .parquet:COLUMN, a glob of shards."),
    "csv": option("--csv", help="A CSV file, one sample per row; '-' reads stdin (piped stdin is read without it)."),
    "target_cols": option("--target-cols", help="CSV target columns: names or 0-based indexes, comma separated, a:b "
                           "ranges."),
    "pred_cols": option("--pred-cols", help="CSV prediction columns, as --target-cols."),
    "delimiter": option("--delimiter", help="The CSV field separator: one character, such as ';', '|' or 'tab' "
                         "[default: tab for .tsv and .tab files and when the first line has tabs and no commas, "
                         "else ',']."),
    "keep_cols": option("--keep-cols", help="CSV columns copied, as their text, in front of each output row (ids): "
                         "as --target-cols."),
    "sample_weight": option("--sample-weight", help="Per-sample weights: with CSV input the column that holds them "
                             "(a name or 0-based index); inline, one number per sample. Reduced as the convention "
                             "does: exact divides the weighted sum by the sum of the weights, the frameworks by N."),
    "from_logits": option("--from-logits", kind=bool, default=False, help="Predictions are logits: the "
                           "sigmoid/softmax is part of the loss."),
    "labels": option("--labels", kind=str, default="auto", choices="auto|index|onehot",
                      help="Targets are class indexes (index), rows (onehot), "
                      "or decided from their shape (auto)."),
    "reduction": option("-r", "--reduction", kind=str, default="mean", choices="mean|sum|none",
                         help="mean, sum or none."),
    "convention": option("-c", "--convention", kind=str, default="exact",
                          choices="exact|keras|tf-keras|torch|optax",
                          help="Whose numbers: exact, keras, tf-keras, torch or optax."),
    "eps": option("--eps", kind=float | None, help="The clipping epsilon of a clipping convention (Keras: 1e-7)."),
    "dtype": option("--dtype", kind=str, default="float64", choices="float64|float32|float16|bfloat16",
                     help="Arithmetic precision (tensor files: float32 predictions give float32)."),
    "format": option("-f", "--format", choices="table|json|csv",
                      help="table, json or csv [default: table on a terminal, else csv]."),
    "output": option("-o", "--output", help="Write to this file (atomically) instead of stdout."),
    "explain": option("--explain", kind=bool, default=False, help="Print the formulas used before the results."),
    "micro_batches": option("--micro-batches", kind=int | None, help="K: also the mean of K equal micro-batches' "
                             "means, as gradient accumulation computes it, beside the true mean, and its gradient."),
    "no_grad": option("--no-grad", kind=bool, default=False, help="Tensor files: write no gradient with -o."),
    "autocast": option("--autocast", kind=bool, default=False, help="With --dtype bfloat16 or float16: the "
                        "predictions are a mixed-precision model's, the loss runs as the framework's policy says "
                        "(torch.autocast on CPU, Keras' mixed policies), the gradient comes back in the dtype."),
    "input_lengths": option("--input-lengths", help="ctc on tensor files: each sequence's frames, a tensor file or "
                             "numbers [default: all T]."),
    "target_lengths": option("--target-lengths", help="ctc on tensor files: each sequence's labels, a tensor file "
                              "or numbers [default: up to --pad, else the whole row]."),
    "pad": option("--pad", kind=float | None, help="ctc on tensor files: the value that pads the label rows (each "
                   "row's labels end at its first)."),
    "time_major": option("--time-major/--batch-first", kind=bool | None, help="ctc on tensor files: predictions "
                          "[T, B, C] (PyTorch's) or [B, T, C] [default: the axis of the labels' B rows; T = B: "
                          "[T, B, C]]."),
    "cpu": option("--cpu", help="The processor whose framework kernels are reproduced: avx512 or avx2 (their "
                   "float32 sums split into 16 or 8 lanes) [default: this machine's, or $LOSSGRAD_CPU].",
                   choices="avx512|avx2"),
    "jit": option("--jit/--no-jit", kind=bool | None, help="optax in float32/float16/bfloat16 (and triplet, "
                   "contrastive --ntxent and ctc in float64): JAX's results under jax.jit, or op by op (they differ "
                   "where XLA fuses) [default: jit]."),
}
SEQUENCE = ("input_lengths", "target_lengths", "pad", "time_major")  # (sequence losses' commands only)
INPUTS = ("target", "pred", "csv", "target_cols", "pred_cols", "sample_weight", "from_logits", "labels", "dtype",
          "format", "output", "delimiter", "micro_batches", "autocast", *SEQUENCE)
CHECK_OPTIONS: dict[str, Opt] = {
    "my_grad": option("--my-grad", help="Your gradient, one value per prediction, or a tensor file (it, --my-loss "
                      "or a --my-grad-* is required)."),
    "my_loss": option("--my-loss", help="Your loss value, if you have one."),
    "convention": option("-c", "--convention", help="The framework to explain your numbers against [default: each "
                          "one that has the loss]."),
    "reduction": option("-r", "--reduction", help="That framework's reduction [default: mean]."),
    "my_grad_target": option("--my-grad-target", help="Your gradient with respect to the targets, where they are "
                              "embeddings (triplet's positives, cosine-embedding's and contrastive's second vectors), "
                              "as --my-grad."),
    "my_grad_var": option("--my-grad-var", help="Your gradient with respect to --var (gaussian-nll), as --my-grad."),
    "my_grad_negative": option("--my-grad-negative", help="Your gradient with respect to --negative (triplet), as "
                                "--my-grad."),
    "my_grad_other": option("--my-grad-other", help="Your gradient with respect to --other (margin-ranking), as "
                             "--my-grad."),
}
PLOT_OPTIONS: dict[str, Opt] = {
    "target": option("-y", "--target", kind=float | None, help="The target the curves are drawn for [default: 1]."),
    "range": option("--range", help="LO,HI: the predictions' range [default: probabilities 1e-15 to 1 - 1e-15, "
                     "logits -20,20, values target ± 3]."),
    "points": option("--points", kind=int, default=401, help="How many predictions."),
    "convention": option("-c", "--convention", help="Conventions to draw, comma separated [default: each one that "
                          "has the loss]."),
    "log_x": option("--log-x/--linear-x", kind=bool | None, help="Predictions log-spaced: log10(p/(1 - p)) for "
                     "probabilities, log10(p) for rates [default: on for those, off for logits and values]."),
    "what": option("--what", kind=str, default="both", help="loss, grad or both (two plots)."),
    "y_scale": option("--y-scale", kind=str, default="auto", help="linear, symlog (sign·log10(1 + |v|)) or auto "
                       "(symlog for curves beyond ±1000)."),
    "png": option("--png", help="Also write the picture to this PNG file (needs matplotlib: lossgrad[png])."),
}
LOSS_ARGUMENT = Annotated[str, typer.Argument(..., metavar="LOSS", help="The loss: see 'lossgrad losses'.")]
