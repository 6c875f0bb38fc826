"""The command line: Typer commands whose options are declared once; read -> set up -> evaluate -> reduce -> render;
and the one boundary that turns every failure into one line and an exit status.

    lossgrad LOSS [OPTIONS]     the loss and its gradient, per element and reduced
    lossgrad compare|check      every convention side by side; which one explains your numbers
    lossgrad losses             the losses, their options and the conventions that support each
    lossgrad plot LOSS          the loss and its gradient drawn over the prediction, one curve per convention
"""

from __future__ import annotations

import inspect
import os
import sys
import warnings
from typing import Annotated, Any

from . import faults

if faults.launched_as_command():  # a signal during the imports below ends the run as quietly as one after them
    faults.install()

import typer  # noqa: E402

from .errors import LossgradError, OptionError, cli_name  # noqa: E402
from .flags import CHECK_OPTIONS, INPUTS, LOSS_ARGUMENT, OPTIONS, PLOT_OPTIONS, SEQUENCE, Opt, Text, option  # noqa: E402

EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPT = 2, 70, 130

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  context_settings={"help_option_names": ["-h", "--help"]},
                  help="Loss functions and their gradients: per element, reduced, and as each framework computes them.")

COMPLETE_VAR = "_LOSSGRAD_COMPLETE"  # set by the shell's completion function (see 'lossgrad completion')


def _version(value: bool) -> None:
    if value:
        from . import __version__

        sys.stdout.write(f"lossgrad {__version__}\n")
        raise typer.Exit(0)


@app.callback()
def _top(version: Annotated[bool, typer.Option("--version", "-V", is_eager=True, callback=_version,
                                               help="Print lossgrad's version and exit.")] = False) -> None:
    """(lossgrad's own options, before a command)"""


def _param_option(p: Any) -> Opt:
    if p.flag:
        return option(cli_name(p.name), kind=bool, default=False, help=p.help)
    default = "" if p.default is None else f" [default: {p.default:g}]"
    return option(cli_name(p.name), kind=Text if p.vector else float | None, help=p.help + default)


def _params(losses: Any, inputs: bool = True) -> dict[str, Opt]:
    """The losses' own numbers, and (`inputs`) their extra input arrays: numbers as --pred, or CSV columns."""
    out: dict[str, Opt] = {}
    for loss in losses:
        for p in loss.params:
            out.setdefault(p.name, _param_option(p))
        for i in loss.inputs if inputs else ():
            out.setdefault(i.name, option(cli_name(i.name), help=f"{i.help} Numbers as --pred, or CSV columns."))
    return out


def _command(run: Any, name: str, options: dict[str, Opt], argument: Any = None) -> Any:
    """A command calling `run(**values)`, with the signature Typer reads: `argument` (LOSS), then `options`."""
    def command(**kw: Any) -> Any:
        from . import cpu

        with cpu.using(kw.pop("cpu", None)):
            return run(**kw)

    params = [] if argument is None else [inspect.Parameter("loss", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                                            annotation=argument)]
    params += [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, annotation=o.annotation, default=o.default)
               for n, o in options.items()]
    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__name__ = name
    return command


def _loss_options(loss: Any) -> dict[str, Opt]:
    skip = {"from_logits"} if not loss.has_logits else set()
    skip |= {"labels"} if loss.kind != "rows" else set()
    skip |= set(SEQUENCE) if loss.kind != "sequence" else set()
    return {k: v for k, v in OPTIONS.items() if k not in skip} | _params([loss])


def _register() -> None:
    if app.registered_commands:
        return
    from . import commands
    from .losses import LOSSES

    every_param = _params(LOSSES.values())
    options = {
        "losses": {"format": option("-f", "--format", help="table or json [default: table].")},
        "compare": {k: v for k, v in OPTIONS.items() if k in (*INPUTS, "reduction", "jit", "cpu")} | every_param,
        "check": {k: OPTIONS[k] for k in (*INPUTS, "jit", "cpu")} | CHECK_OPTIONS | every_param,
        "plot": {k: OPTIONS[k] for k in ("from_logits", "eps", "dtype")} | PLOT_OPTIONS | _params(LOSSES.values(),
                                                                                                   False),
    }
    for name, (text, example) in commands.HELP.items():
        run = getattr(commands, "list_losses" if name == "losses" else name)
        command = run if name not in options else _command(run, name, options[name],
                                                           LOSS_ARGUMENT if name != "losses" else None)
        app.command(name, help=text, epilog=example)(command)
    for loss in LOSSES.values():
        app.command(loss.name, help=f"{loss.summary[0].upper()}{loss.summary[1:]}.\n\nReproduces: {loss.reference}.",
                    epilog=commands.EXAMPLES.get(loss.name))(
            _command(lambda _n=loss.name, **kw: commands.run_loss(_n, **kw), loss.name, _loss_options(loss)))


# ---------------------------------------------------------------- the one error boundary


def main(argv: list[str] | None = None) -> None:
    """Entry point: runs the app, turns every failure into one line and an exit status."""
    if argv is None:  # the command line's own process: its signals, streams and environment
        faults.install()
        faults.guard_streams()
        faults.settle_environment()
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    if debug:
        args.remove("--debug")
    code = _run(args, debug)
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        faults.quiet_stdout()
    except (OSError, ValueError) as e:
        code = faults.report(faults.as_fault(e, "<stdout>") or e)
    if argv is None:
        # the command line's own process: everything is written and closed, so skip the interpreter's teardown
        # (freeing polars and numpy takes a tenth of a second after a large batch)
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def _run(args: list[str], debug: bool) -> int:
    from typer._click import exceptions as click_exc  # typer >= 0.26 vendors click

    if os.environ.get(COMPLETE_VAR):  # the shell asks for completions: the whole group answers
        from typer._completion_classes import completion_init

        completion_init()
    try:
        _register()
        command, prog, rest = _click_command(args)
        _given_once(command, rest)
        with warnings.catch_warnings():
            # numpy's floating-point warnings (overflow in a cast to float16, 0/0) are results here, which the
            # output states itself (∞ and NaN, with their warnings and hints), not lines of their own
            warnings.simplefilter("ignore", RuntimeWarning)
            rv = command.main(args=rest, prog_name=prog, standalone_mode=False)
        return rv if isinstance(rv, int) else 0
    except LossgradError as e:
        return _error(e.message(cli_name))
    except click_exc.NoArgsIsHelpError as e:
        sys.stdout.write(e.format_message() + "\n")
        return 0
    except click_exc.UsageError as e:
        return _error(_usage_message(e))
    except (KeyboardInterrupt, typer.Abort):
        return EXIT_INTERRUPT
    except BrokenPipeError:
        faults.quiet_stdout()
        return 0
    except SystemExit as e:
        if not isinstance(e.__context__, BrokenPipeError):
            raise
        # (click turns a closed pipe into exit status 1; a reader that stops early is no failure here either)
        faults.quiet_stdout()
        return 0
    except BaseException as e:  # a bug (one line, the traceback only with --debug), or what the system refused
        if not isinstance(e, Exception) and type(e).__name__ != "PanicException":  # (polars' Rust panics)
            raise
        fault = faults.as_fault(e)
        if fault is not None:
            return faults.report(fault)
        if debug:
            raise
        sys.stderr.write(f"error: internal failure ({type(e).__name__}: {e}); this is a bug in lossgrad: please "
                         "report it with the command line (rerun with --debug for the traceback)\n")
        return EXIT_INTERNAL


def _click_command(args: list[str]) -> tuple[Any, str, list[str]]:
    """The click command to run, its program name and its arguments: only the subcommand named first when
    there is one (building all of them from their signatures takes longer than a small batch's own work),
    else the whole group (its help, and suggestions for a misspelt command)."""
    import copy

    if args and not args[0].startswith("-"):
        for info in app.registered_commands:
            if info.name == args[0]:
                one = copy.copy(app)
                one.registered_commands = [info]  # a Typer app of one command (and no callback) is that command
                one.registered_callback = None
                return typer.main.get_command(one), f"lossgrad {args[0]}", args[1:]
    return typer.main.get_command(app), "lossgrad", args


def _given_once(command: Any, args: list[str]) -> None:
    """An option that takes one value given twice is an error (click would keep the last without a word); a
    value is read as click reads it: after '=' or attached to a short option, else the next argument."""
    takes = {o: p for p in getattr(command, "params", ()) if p.param_type_name == "option"
             and not (p.is_flag or p.multiple or p.count) for o in p.opts}
    first: dict[str, str] = {}
    i = 0
    while i < len(args) and args[i] != "--":
        arg = args[i]
        name = arg.partition("=")[0] if arg.startswith("--") else arg[:2]
        p = takes.get(name) if arg.startswith("-") else None
        i += 1
        if p is None:
            continue
        attached = arg[len(name):].removeprefix("=") if arg.startswith("--") else arg[2:]
        if arg == name and i < len(args):
            attached, i = args[i], i + 1
        if p.name in first:
            raise OptionError("", f"{'/'.join(sorted(p.opts, key=len))} is given twice ({first[p.name]!r}, then "
                                  f"{attached!r}); it takes one value: give it once")
        first[p.name] = attached


def _error(message: str) -> int:
    try:
        sys.stderr.write(f"error: {message}\n")
    except Exception as e:  # (stderr closed or full: the status alone says it)
        return faults.report(e)
    return EXIT_USAGE


def _usage_message(e: Any) -> str:
    import re

    msg = e.format_message()
    cmd = getattr(e, "ctx", None)
    further = _another_loss_input(e, cmd)
    if further:
        return further
    if "No such command" not in msg:
        return f"{msg} (see '{cmd.command_path} --help')" if cmd is not None and cmd.command_path else msg
    from .losses import LOSSES

    m = re.match(r"No such command '([^']*)'\.?(?: Did you mean '([^']*)'\?)?", msg)
    if m:
        msg = f"no such loss or command {m.group(1)!r}" + (f" (did you mean {m.group(2)!r}?)" if m.group(2) else "")
    others = "compare, check, plot, jacobian, losses, completion"
    return f"{msg}; the losses are {', '.join(LOSSES)}, the other commands {others}"


def _another_loss_input(e: Any, cmd: Any) -> str | None:
    """An option that is another loss's further input (--other given to cosine-embedding), said as such: which
    losses take it, and which this one takes."""
    from typer._click import exceptions as click_exc

    from .losses import LOSSES

    name = getattr(e, "option_name", "") if isinstance(e, click_exc.NoSuchOption) else ""
    loss = LOSSES.get(cmd.command.name) if cmd is not None and cmd.command is not None else None
    users = [x.name for x in LOSSES.values() if any(f"--{i.name.replace('_', '-')}" == name for i in x.inputs)]
    if not users or loss is None:
        return None
    own = [f"--{i.name.replace('_', '-')}" for i in loss.inputs]
    takes = f"; {loss.name} takes {', '.join(own)}" if own else f"; {loss.name} takes a target and a prediction only"
    return f"{name}: applies to {', '.join(users)}, not to {loss.name}{takes}"


__all__ = ["OptionError", "app", "main"]
