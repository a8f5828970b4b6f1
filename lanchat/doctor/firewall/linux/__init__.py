"""Linux: nft/ and iptables/ (each parse, match, decide for one rule store), the chain walk they
share (chainwalk.py) and their value matching (netmatch.py); decide.py combines the three rule
stores into one verdict per family; collect.py reads them through the probe, checks.py words the
results and fixes.py writes the rules that would let the packet in."""
