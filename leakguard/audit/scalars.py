"""An audit's headline numbers as named scalars, so a training loop can log an audit beside its
losses through its own logger (training.report.Reporter.write):

    report = run_audit(inputs, matchers, store, settings)
    reporter.write(nimg, scalars(report))

Tags: Audit/<matcher>/leak_rate@<fmr>, .../leak_ratio@<fmr>, .../chance_rate@<fmr>,
.../rg_best_mean, .../ks_vs_impostor, and with membership .../membership_auc and
.../membership_tpr@<fpr>.
"""
import math


def scalars(report: dict) -> dict[str, float]:
    """The report's headline numbers by tag (non-finite ratios left out)."""
    out = {}
    for name, m in report["matchers"].items():
        prefix = f"Audit/{name}"
        for row in m["leakage"]:
            fmr = f"{row['fmr']:g}"
            out[f"{prefix}/leak_rate@{fmr}"] = row["leak_rate"]
            out[f"{prefix}/chance_rate@{fmr}"] = row["chance_rate"]
            if math.isfinite(row["ratio"]):
                out[f"{prefix}/leak_ratio@{fmr}"] = row["ratio"]
        out[f"{prefix}/rg_best_mean"] = m["rg"]["mean"]
        out[f"{prefix}/ks_vs_impostor"] = m["rg"]["ks_vs_impostor"]
        if m["membership"] is not None:
            out[f"{prefix}/membership_auc"] = m["membership"]["auc"]
            for fpr, tpr in m["membership"]["tpr_at_fpr"].items():
                out[f"{prefix}/membership_tpr@{fpr}"] = tpr
    return out
