"""The audit half of `make demo`: audits the newest SynthFaces demo run for identity leakage and
membership with the synth and synth_b matchers, trained on first use on people the generator never saw,
and writes the run's report of its evaluations during training (RUN_DIR/report.html).

    python tools/demo_audit.py [RUN_DIR]        # default: the newest runs/synthfaces32-*

The data and matchers come from tools/demo_data.py (made once, cached).
"""
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tools.demo_data import MATCHERS, data, matcher  # noqa: E402
from training import rundir  # noqa: E402
from training.cli import main  # noqa: E402


def main_demo(argv: list[str]) -> int:
    run = Path(argv[0]) if argv else max(Path("runs").glob("synthfaces32-*"), key=lambda p: p.stat().st_mtime)
    snapshots = rundir.list_snapshots(run / rundir.CHECKPOINTS)
    if not snapshots:
        raise SystemExit(f"{run}: no snapshot to audit; run `make demo` (or leakguard train) first")
    files = data()
    chosen = [arg for arch in MATCHERS for arg in ("--matcher", f"{arch}={matcher(arch, files)}")]
    out = run / "audit"
    code = main(["audit", "--generator", str(snapshots[-1]), "--seeds", "0-999", "--training", str(files["train.zip"]),
                 "--members", str(files["members.zip"]), "--nonmembers", str(files["nonmembers.zip"]),
                 *chosen, "--out", str(out), "--show-training-images",
                 "--force"])  # the audit of this run, redone when the demo audit runs again
    if code == 0 and (run / "eval.jsonl").is_file():
        code = main(["report", str(run), "--force"])  # the run's page, redone with the audit
    if code == 0:
        print(f"open {out / 'report.html'} (the audit) and {run / 'report.html'} (training) in a browser")
    return code


if __name__ == "__main__":
    sys.exit(main_demo(sys.argv[1:]))
