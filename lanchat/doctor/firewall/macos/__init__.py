"""macOS: socketfilterfw and pfctl output read (parse.py), the Application Firewall's per-program
decision with pf beside it (decide.py), the fixes (fixes.py) and the checks that run it through
the probe (checks.py)."""
