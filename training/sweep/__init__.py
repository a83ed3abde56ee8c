"""Sweeps: privacy-versus-fidelity ablations as many ordinary training runs.

    spec.py     the sweep spec (configs/sweeps/*.yaml): base preset, axes, seeds, budget; its trials
    job.py      one trial: a training run in its own folder, resumed from its latest snapshot
    runner.py   where trials run (local processes, or Slurm / submitit's local executor) and what is skipped
    status.py   `leakguard sweep status`: progress read from the trial folders

The results table, the Pareto front and report.html are leakguard.sweep's: they read only the trial
folders' files.
"""
