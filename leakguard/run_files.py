"""The names of the files in a run folder (runs/<name>-<n>/), a sweep folder and an audit's --out, spelled
once: training writes them (training.rundir, training.loop, training.report, training.evaluate) and the
pages, the sweep's results and `leakguard report` read them."""

# A training run's folder
CONFIG = "config.yaml"          # the resolved config
STATS = "stats.jsonl"           # one line per tick: losses, progress, timing (and Privacy/* under DP)
EVAL = "eval.jsonl"             # one line per evaluation during training
RELEASE = "release.pt"          # a private run's networks and privacy record, without the secret key
CHECKPOINTS = "checkpoints"     # snapshot-<nimg>.pt
IMAGES = "images"               # reals.png and fakes-<nimg>.png

# Pages and their data (a run's report, an audit's or a DP audit's --out, a sweep folder)
REPORT_HTML = "report.html"
REPORT_JSON = "report.json"

# A sweep's folder
SPEC = "spec.yaml"
STATUS = "status.json"
RESULTS_JSON, RESULTS_CSV = "results.json", "results.csv"
TRIALS = "trials"               # one run folder per trial
TRIAL = "trial.json"            # a trial's resolved config and state

# A DP audit's --out
CANARIES = "canaries.json"
