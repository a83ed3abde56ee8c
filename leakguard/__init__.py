"""LeakGuard's privacy suite: face matchers, identity banks, leakage and membership audits, reports.

Stand-alone by design: nothing here imports `training/`, so the suite audits any generator or a
folder of images. The matchers and audits arrive with their issues; the package exists now so the
import boundary is fixed from the start.
"""
