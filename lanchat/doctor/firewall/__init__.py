"""The firewall: the verdict model (verdict.py), fix helpers every OS shares (fixes.py), and one
package per OS, each cut the same way: parse (command output -> data), decide (data + packet ->
verdict), fixes (the commands that open the port) and checks (collects through the probe and
returns the check results). checks/firewall.py picks the OS."""
