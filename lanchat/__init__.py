"""lanchat: a LAN chat relay with discovery and firewall guidance."""

__version__ = "0.1.0"
