"""The typer application, its global options and the options the commands share."""

from __future__ import annotations

from typing import Annotated

import typer

from lanchat import __version__
from lanchat.protocol import DEFAULT_PORT

app = typer.Typer(
    name="lanchat",
    help="Chat with everyone on your LAN: a relay, a client, discovery and a network doctor.",
    epilog="Docs: README.md and docs/ in the project. Exit codes are listed in the README.",
    add_completion=True,  # --install-completion / --show-completion (bash, zsh, fish, pwsh)
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

_debug = False


def _version(value: bool) -> None:
    if value:
        print(f"lanchat {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
) -> None:
    global _debug
    _debug = debug


PortOption = Annotated[
    int,
    typer.Option(
        "--port",
        "-p",
        envvar="LANCHAT_PORT",
        min=0,
        max=65535,
        help=f"TCP port (default {DEFAULT_PORT}; 0 picks a free one).",
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Machine-readable output: one JSON object per line.")
]


def debugging() -> bool:
    """Whether --debug was given (tracebacks instead of one-line errors)."""
    return _debug
