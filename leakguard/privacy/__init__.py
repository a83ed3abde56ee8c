"""Differential privacy, stand-alone: the accountants (Opacus's, behind a small registry), the privacy
ledger that records every access to private data, the DP-SGD stages (clip, sum, noise) as plain
functions on per-unit gradients, and the reader of a checkpoint's privacy record (record.py). Nothing here
knows about StyleGAN2: training adapts its config to these."""
from leakguard.privacy.accountants import ACCOUNTANTS, epsilon, noise_multiplier
from leakguard.privacy.dpsgd import add_noise, clip_and_accumulate, per_unit_norms
from leakguard.privacy.ledger import Mechanism, PrivacyLedger, PrivacyLedgerError

__all__ = ["ACCOUNTANTS", "epsilon", "noise_multiplier", "add_noise", "clip_and_accumulate", "per_unit_norms",
           "Mechanism", "PrivacyLedger", "PrivacyLedgerError"]
