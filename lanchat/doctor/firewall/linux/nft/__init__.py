"""nftables: `nft -j list ruleset` read into chains and rules (parse.py), shown as nft text again
(render.py), one rule matched against a packet (match.py), the input chains walked (decide.py)."""
