"""Windows Defender Firewall: the PowerShell document and its reader (parse.py), the rule
precedence for one port and program (decide.py), the PowerShell fixes (fixes.py) and the checks
that run it through the probe (checks.py)."""
