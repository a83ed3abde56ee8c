"""A hyperparameter sweep's results (privacy against fidelity): one row per trial from its own files
(trial.py), results.json / results.csv and the means over seeds (results.py), the Pareto front of
each privacy axis against FD (pareto.py, plot.py) and SWEEP/report.html (report.py).

The runner that trains the trials lives in `training.sweep`; this package only reads what the trials
wrote, so it needs no part of `training`.
"""
