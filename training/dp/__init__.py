"""Differential privacy for the discriminator: which images make up a privacy unit and how units are
Poisson-sampled (units.py), their per-step chunks on the device (stream.py), exact per-unit gradients
of D by torch.func (per_unit.py), the run's privacy state and the budget it still allows, built from the
config (setup.py), every secret-key stream and ledger mechanism name (keys.py), what DP refuses in a
config (refusals.py), and the DP audit's hooks in the private step (audit_hooks.py).
The DP step itself is `training.steps.dp_d_step`; the accountants and the ledger live in leakguard.privacy."""
