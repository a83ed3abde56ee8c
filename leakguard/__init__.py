"""LeakGuard's privacy suite: face matchers (matchers/), leakage and membership audits with their
reports (audit/), the commands that run them on image sets (cli/), and the one atomic-write helper
(atomic.py) every package writes files with.

Stand-alone by design: nothing here imports `training/`, so the suite audits any generator or a
folder of images; `training` adapts to it (it renders a generator's images and hands them over).
"""
