"""iptables and ip6tables (nft or legacy backend): `iptables-save` text read into tables and rules
(parse.py), one rule matched against a packet (match.py), the tables walked in hook order
(decide.py)."""
