"""Differential privacy for the discriminator: which images make up a privacy unit and how units are
Poisson-sampled (units.py), their per-step chunks on the device (stream.py), exact per-unit gradients
of D by torch.func (per_unit.py), and the run's privacy state built from the config (setup.py).
The DP step itself is `training.steps.dp_d_step`; the accountants and the ledger live in leakguard.privacy."""
