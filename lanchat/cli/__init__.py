"""The command line: parse arguments, call one function, render its result, exit with a code.

One module per command (the function and its EPILOG of examples); `app` holds the typer
application and the options the commands share; this module puts the commands on the app and runs
it. Errors reach the user once, in words (`error:` and `hint:` on stderr); a traceback only with
--debug. Heavy imports happen inside the command that needs them.
"""

from __future__ import annotations

import sys

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
        app()  # typer reports usage errors itself (exit 2) and ends with SystemExit
    except LanchatError as e:
        if debugging():
            import traceback

            traceback.print_exc()
        from lanchat.output import print_error

        print_error(e)
        sys.exit(int(e.exit_code))
    except KeyboardInterrupt:
        sys.exit(int(ExitCode.INTERRUPTED))
    except Exception as e:  # a bug: say so in one line, never a traceback without --debug
        if debugging():
            raise
        print(f"error: internal error: {type(e).__name__}: {e}", file=sys.stderr)
        print("hint: run again with --debug for the traceback, and report it.", file=sys.stderr)
        sys.exit(int(ExitCode.ERROR))
