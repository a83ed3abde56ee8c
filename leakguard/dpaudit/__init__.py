"""Empirical privacy auditing with canaries, stand-alone (no import of training/): the one-run lower
bound on epsilon (bound.py) and its report (report.py). `leakguard dp-audit` (training.cli.dp_audit)
trains with canaries and scores them."""
