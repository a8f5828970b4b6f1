"""benchkit: the stdlib-only fan-out load generator and benchmark behind scripts/bench.

Run it as ``scripts/bench --help``. The modules: ``payload`` (the line format, pure),
``procfs`` (/proc sampling), ``servers`` (starting and stopping the relays), ``worker`` (one
generator process), ``runner`` (one measured run), ``results`` (figures and summaries as data),
``report`` (plain-text tables) and ``cli`` (arguments, runs, exit codes).
"""
