"""LeakGuard's privacy suite: face matchers (matchers/), leakage and membership audits with their
reports (audit/), DP accounting, the ledger, DP-SGD's stages and the privacy record (privacy/), fidelity
metrics (fidelity/), the leakage regularizer (regularizer/), the DP audit's bound (dpaudit/), the release
filter (filter/), a sweep's results (sweep/), the commands (cli/), and what every package shares: the
page toolkit (html.py), the one atomic-write helper (atomic.py), safe reading of torch files
(torch_files.py), the names of a run folder's files (run_files.py) and the cache folders (cache_dirs.py).

Stand-alone by design: nothing here imports `training/`, so the suite audits any generator or a
folder of images; `training` adapts to it (it renders a generator's images and hands them over).
"""
