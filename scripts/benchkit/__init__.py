"""benchkit: the stdlib-only fan-out load generator and benchmark behind scripts/bench.

Run it as ``scripts/bench --help``. The modules: ``payload`` (the line format, pure),
``accounting`` (what the receivers saw, pure), ``procfs`` (/proc sampling and CPU intervals),
``servers`` (starting and stopping the relays), ``shared`` (counters the generator processes
share), ``worker`` (one generator process's event loop), ``phases`` (the steps a generator process
follows), ``runner`` (one measured run), ``results`` (figures and summaries as data), ``report``
(plain-text tables) and ``cli`` (arguments, runs, exit codes).
"""
