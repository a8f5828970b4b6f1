"""The command line: parse arguments, call one function, render its result, exit with a code.

One module per command (the function and its EPILOG of examples); `app` holds the typer
application and the options the commands share; this module puts the commands on the app and runs
it. Errors reach the user once, in words (`error:` and `hint:` on stderr); a traceback only with
--debug. Heavy imports happen inside the command that needs them.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any, NoReturn

import typer

from lanchat.cli import discover, doctor, join, serve, status
from lanchat.cli.app import app, debugging
from lanchat.errors import ExitCode, LanchatError

# In the order a user meets them, which is the order --help lists them in.
app.command(epilog=serve.EPILOG)(serve.serve)
app.command(epilog=join.EPILOG)(join.join)
app.command(epilog=discover.EPILOG)(discover.discover)
app.command(epilog=status.EPILOG)(status.status)
app.command(epilog=doctor.EPILOG)(doctor.doctor)


def main() -> None:
    """Run the command line; every error ends here as words and an exit code."""
    try:
        # Usage errors come back here, to be said our way; and the name is `lanchat` under
        # `python -m lanchat` too (completion scripts and usage lines name the command).
        code = app(prog_name="lanchat", standalone_mode=False)
    except LanchatError as e:
        if debugging():
            import traceback

            traceback.print_exc()
        from lanchat.output import print_error

        print_error(e)
        sys.exit(int(e.exit_code))
    except KeyboardInterrupt:
        sys.exit(int(ExitCode.INTERRUPTED))
    except BrokenPipeError:  # `lanchat discover | head -1`: the reader has what it wanted
        from lanchat.output import quiet_output

        quiet_output(sys.stdout)
        sys.exit(int(ExitCode.ERROR))
    except Exception as e:  # a bug: say so in one line, never a traceback without --debug
        if _is_parser_error(e):
            _parser_error(e)
        if debugging():
            raise
        print(f"error: internal error: {type(e).__name__}: {e}", file=sys.stderr)
        print("hint: run again with --debug for the traceback, and report it.", file=sys.stderr)
        sys.exit(int(ExitCode.ERROR))
    sys.exit(code if isinstance(code, int) else int(ExitCode.OK))


def _click_exceptions() -> Any:
    """The option parser's exception classes (typer 0.2x carries its own click)."""
    try:
        return importlib.import_module("typer._click.exceptions")
    except ImportError:
        return importlib.import_module("click.exceptions")


def _is_parser_error(e: Exception) -> bool:
    return isinstance(e, _click_exceptions().ClickException | typer.Abort)


def _parser_error(e: Exception) -> NoReturn:
    """An unknown option, a bad value, a missing argument: `error:` and `hint:` like the rest."""
    exceptions = _click_exceptions()
    no_args = getattr(exceptions, "NoArgsIsHelpError", ())
    if no_args and isinstance(e, no_args):  # plain `lanchat`: the help, as before
        e.show()
        sys.exit(int(ExitCode.USAGE))
    from lanchat.errors import UsageError
    from lanchat.output import print_error

    if isinstance(e, typer.Abort):
        sys.exit(int(ExitCode.INTERRUPTED))
    message = e.format_message()  # type: ignore[attr-defined]
    ctx = getattr(e, "ctx", None)
    command = ctx.command_path if ctx is not None else "lanchat"
    listed = "commands" if command == "lanchat" else "options, with examples"
    hint = f"`{command} --help` lists the {listed}."
    print_error(UsageError(message[:1].upper() + message[1:], hint))
    sys.exit(int(getattr(e, "exit_code", ExitCode.USAGE)))
