"""lanchat doctor: checks that explain why other PCs can or cannot reach this machine."""
