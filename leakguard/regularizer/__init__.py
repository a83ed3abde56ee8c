"""The identity-leakage regularizer, stand-alone (no import of training/): the identity bank of the
training people under a matcher (bank.py) and the per-sample hinge penalty on generated faces
(penalty.py). `training.leakage` builds them from the `leakage_reg:` config; `training.steps.leak_step`
applies them."""
from leakguard.regularizer.bank import IdentityBank, private_centroids
from leakguard.regularizer.penalty import IdentityLeakagePenalty, LeakageTerms, leakage_terms

__all__ = ["IdentityBank", "private_centroids", "IdentityLeakagePenalty", "LeakageTerms", "leakage_terms"]
