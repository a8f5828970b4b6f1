"""soakkit: the stdlib-only soak test behind scripts/soak.

``clients`` holds the behaviours (the well-behaved lanchat client that checks what it gets, and
the hostile ones: churn, floods, garbage, slow readers); ``run`` the event loop, the reports per
interval, the verdict and the command line. The relay is started and measured with
scripts/benchkit's ``servers`` and ``procfs``.
"""
