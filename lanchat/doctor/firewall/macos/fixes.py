"""macOS fix texts: allow the Python program in the Application Firewall, or turn off "Block all
incoming connections". Data only; nothing runs."""

from __future__ import annotations

from lanchat.doctor.result import Fix


def macos_allow_app(exe: str) -> Fix:
    """Add the interpreter to the Application Firewall and unblock it."""
    tool = "/usr/libexec/ApplicationFirewall/socketfilterfw"
    return Fix(
        "Allow the Python program that runs lanchat in the macOS firewall (or System Settings > "
        "Network > Firewall > Options):",
        (f'sudo {tool} --add "{exe}"', f'sudo {tool} --unblockapp "{exe}"'),
        True,
    )


def macos_block_all() -> Fix:
    """The macOS 'Block all incoming connections' option."""
    return Fix(
        "The macOS firewall blocks all incoming connections: System Settings > Network > "
        'Firewall > Options... > turn off "Block all incoming connections".',
        ("sudo /usr/libexec/ApplicationFirewall/socketfilterfw --setblockall off",),
        True,
    )
