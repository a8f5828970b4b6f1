"""The only door to the operating system: the Probe and MdnsProbe interfaces (interface.py), the
real system probe (system.py) and the real mDNS probe over lanchat.discovery (mdns.py)."""
