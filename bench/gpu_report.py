"""bench/gpu_check.py's results per section, with the ratios and rates derived from the measured
seconds (derived here, once, so the JSON and the markdown cannot disagree), and the markdown of them.
Ratios are "x times faster" unless named otherwise: the slower time over the faster candidate's."""

# The issue-4 targets for the CUDA kernels (docs/performance.md).
BIAS_ACT_COPY_PCT = 70      # bias_act bandwidth, percent of the device's copy bandwidth
RESAMPLE_VS_REF = 5         # upsample/downsample x2 forward+backward, times the reference
SEARCH_MATMUL_PCT = 70      # exact top-1 search, percent of the float32 matmul rate in the same chunks (issue 31)

# The published training time the auto1 variant is set against: stylegan2-ada-pytorch's README, "Expected
# training time", 256x256 on 1 GPU, --cfg=auto --aug=ada --metrics=fid50k_full, Tesla V100: 21.6-24.2 sec/kimg
# (data loading, logging and the snapshot metrics, which it puts at 3-9%, included; bench/train_step.py has
# none of them). Scaled to this device by the ratio of the rates bench/device_rates.py measures here to the
# V100 SXM2 datasheet peaks: copy bandwidth (HBM2, 900 GB/s), float16 tensor-core matmul (125 TFLOP/s) and
# float32 (15.7 TFLOP/s). The fastest and slowest of the three scalings bound the expected range. Measured rates
# fall below datasheet peaks, so the range is a little slow for this device: a lenient yardstick.
PUBLISHED = {"source": "stylegan2-ada-pytorch README: 256x256, 1 GPU, --cfg=auto, Tesla V100",
             "sec_per_kimg": (21.6, 24.2)}
V100_PEAK = {"copy_bytes_per_s": 900e9, "float16": 125e12, "float32": 15.7e12}


def summarise(jobs: dict[str, dict]) -> dict[str, dict]:
    """Per section (in the jobs' order): status, seconds, its jobs' records and what follows from them."""
    sections = {}
    for name, record in jobs.items():
        sections.setdefault(record["section"], {})[name] = record
    out = {}
    for section, mine in sections.items():
        done = {name: r["result"] for name, r in mine.items() if "result" in r}
        statuses = {r["status"] for r in mine.values()}
        status = (statuses.pop() if len(statuses) == 1
                  else "failed" if statuses & {"failed", "timeout"} else "partial")
        found = derived(section, done)
        if "derive_error" not in found:  # the derived numbers hold each result; raw/ keeps the originals
            mine = {name: {k: v for k, v in r.items() if k != "result"} for name, r in mine.items()}
        out[section] = {"status": status, "seconds": sum(r.get("seconds", 0.0) for r in mine.values()),
                        **found, "jobs": mine}
    if "auto1_fp16" in out.get("train", {}).get("variants", {}) and "copy_bytes_per_s" in out.get("device", {}):
        try:   # across two sections: an odd result in either is reported, as derived() does
            out["train"]["published"] = published(out["train"]["variants"]["auto1_fp16"], out["device"])
        except Exception as e:  # noqa: BLE001
            out["train"]["published_error"] = f"{type(e).__name__}: {e}"
    return out


def published(auto1: dict, rates: dict) -> dict:
    """The auto1 variant's sec/kimg against PUBLISHED, scaled to this device by its measured rates."""
    measured = {"copy_bytes_per_s": rates["copy_bytes_per_s"], **rates["matmul_flop_per_s"]}
    speedups = {k: measured[k] / peak for k, peak in V100_PEAK.items() if measured.get(k)}
    low, high = PUBLISHED["sec_per_kimg"]
    expected = (low / max(speedups.values()), high / min(speedups.values()))
    sec = auto1["round_sec_per_kimg"]
    return {**PUBLISHED, "device_vs_v100": speedups, "expected_sec_per_kimg": expected, "measured_sec_per_kimg": sec,
            "ops": auto1["ops"],
            "verdict": "faster than" if sec < expected[0] else "slower than" if sec > expected[1] else "within"}


def derived(section: str, done: dict) -> dict:
    """DERIVE[section] of the jobs that wrote results; a result it cannot read is reported, and the other
    sections' numbers are still written (they may have cost minutes of a GPU)."""
    if not done:
        return {}
    try:  # a section without a DERIVE entry (build, tests, matchers) shows its one job's result as it is
        return DERIVE[section](done) if section in DERIVE else next(iter(done.values()))
    except Exception as e:  # noqa: BLE001 - any malformed result becomes a reported error
        return {"derive_error": f"{type(e).__name__}: {e}"}


def ops(done: dict) -> dict:
    r = done["ops"]
    copy = r["copy_bytes_per_s"]
    rows = [{**row, "vs_ref": row["ref_s"] / row["fused_s"], "fused_gb_per_s": row["bytes"] / row["fused_s"] / 1e9,
             "pct_of_copy": 100 * row["bytes"] / row["fused_s"] / copy if copy else None} for row in r["rows"]]
    bias = [row["pct_of_copy"] for row in rows if row["op"].startswith("bias_act") and row["pct_of_copy"] is not None]
    resample = [row["vs_ref"] for row in rows if "sample" in row["op"] and row["pass"] == "fwd+bwd"]
    return {"copy_gb_per_s": copy / 1e9 if copy else None, "rows": rows, "targets": [
        {"target": f"bias_act >= {BIAS_ACT_COPY_PCT}% of copy bandwidth", "worst": min(bias, default=None),
         "best": max(bias, default=None)},
        {"target": f"up/down x2 fwd+bwd >= {RESAMPLE_VS_REF}x the reference", "worst": min(resample, default=None),
         "best": max(resample, default=None)}]}


def train(done: dict) -> dict:
    variants = {name.removeprefix("train_"): r for name, r in done.items()}
    pairs = [("fused_fp16", "ref_fp16"), ("fused_fp32", "ref_fp32"), ("fused_fp16", "fused_fp32"),
             ("ref_fp16", "ref_fp32")]
    sec = {name: r["round_sec_per_kimg"] for name, r in variants.items()}
    return {"variants": variants, "speedups": [
        {"of": a, "over": b, "speedup": sec[b] / sec[a]} for a, b in pairs if a in sec and b in sec]}


def dp(done: dict) -> dict:
    r = done["dp"]
    out = {**r, "private_vs_plain": r["private_s_per_step"] / r["plain_s_per_step"],
           "vmap_vs_loop": r["vmap_s"] / r["loop_s"], "per_layer_vs_loop": r["per_layer_s"] / r["loop_s"],
           "per_layer_vs_vmap": r["per_layer_s"] / r["vmap_s"]}
    if "private_frozen_s_per_step" in r:   # train.freeze_d: both steps with D's first blocks frozen
        out["frozen_private_vs_plain"] = r["private_frozen_s_per_step"] / r["plain_frozen_s_per_step"]
        out["frozen_vs_whole_private"] = r["private_frozen_s_per_step"] / r["private_s_per_step"]
    return out


def leak_step(done: dict) -> dict:
    r = done["leak_step"]
    return {**r, "regularized_vs_plain": r["regularized_s_per_step"] / r["plain_s_per_step"]}


def search(done: dict) -> dict:
    r = done["search"]
    full = next((row["seconds"] for row in r["rows"] if row["method"].startswith("full matrix")), None)
    rows = [{**row, "queries_per_s": r["queries"] / row["seconds"], "tflop_per_s": r["flop"] / row["seconds"] / 1e12,
             "time_vs_full": row["seconds"] / full if full else None} for row in r["rows"]]
    exact = next(row["seconds"] for row in r["rows"] if row["method"].startswith("exact"))
    floor = next(row["seconds"] for row in r["rows"] if row["method"].startswith("matmul alone"))
    return {**r, "rows": rows, "pct_of_matmul": 100 * floor / exact}


DERIVE = {"ops": ops, "train": train, "dp": dp, "leak_step": leak_step, "search": search}


def _f(x, digits=2, unit="") -> str:
    return "-" if x is None else f"{x:.{digits}f}{unit}"


def headline(name: str, s: dict) -> str:
    """One line per section for the overview table."""
    if s["status"] == "skipped":
        return next(iter(s["jobs"].values()))["why"]
    errors = [f"{job}: {r['error']}" for job, r in s["jobs"].items() if "error" in r]
    if name == "device" and "copy_bytes_per_s" in s:
        return f"copy {_f(s['copy_bytes_per_s'] / 1e9, 0)} GB/s; matmul " + ", ".join(
            f"{dtype} {_f(rate / 1e12, 1)}" for dtype, rate in s["matmul_flop_per_s"].items()) + " TFLOP/s"
    if name == "build" and "kernels" in s:
        return ", ".join(f"{d} {_f(k['seconds'], 1)} s" + (" (failed)" if k["error"] else "")
                         for d, k in s["kernels"].items())
    if name == "tests" and "passed" in s:
        return (f"{s['passed']} passed, {s['failed']} failed, {s['errors']} errors, {s['skipped']} skipped"
                + (" before it was stopped at its limit (counted from the log)" if s.get("partial") else ""))
    if name == "ops" and "targets" in s:
        return "; ".join(f"{t['target']}: {_f(t['worst'], 1)}-{_f(t['best'], 1)}" for t in s["targets"])
    if name == "train" and s.get("speedups"):
        line = ", ".join(f"{x['of']} {_f(x['speedup'])}x as fast as {x['over']}" for x in s["speedups"][:2])
        if "published" in s:
            p = s["published"]
            line += (f"; auto1 {_f(p['measured_sec_per_kimg'])} sec/kimg, {p['verdict']} the published V100 figures "
                     f"scaled ({_f(p['expected_sec_per_kimg'][0])}-{_f(p['expected_sec_per_kimg'][1])})")
        return line
    if name == "dp" and "private_vs_plain" in s:
        line = f"private D step {_f(s['private_vs_plain'])}x the time of the plain one"
        if "frozen_private_vs_plain" in s:
            line += f"; {_f(s['frozen_private_vs_plain'])}x with the first {s['freeze_d']} blocks frozen"
        return line
    if name == "leak_step" and "regularized_vs_plain" in s:
        return f"regularized G step {_f(s['regularized_vs_plain'])}x the time of the plain one"
    if name == "search" and "rows" in s:
        return (f"exact top-1, {s['queries']} x {s['bank']}: {_f(s['rows'][0]['seconds'])} s, "
                f"{_f(s['pct_of_matmul'], 0)}% of the matmul rate (target >= {SEARCH_MATMUL_PCT}%)")
    if name == "matchers" and "rows" in s:
        return f"{len(s['rows'])} timed, {len(s.get('skipped', []))} skipped"
    return "; ".join(errors)[:300]


def table(head: list[str], rows: list[list]) -> list[str]:
    def cells(row):
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |"
    return [cells(head), "|" + "---|" * len(head), *map(cells, rows)]


def detail(name: str, s: dict) -> list[str]:
    """The section's own table, or nothing when it has no results."""
    if name == "tests" and "failures" in s:  # skips too: official parity skips where its fixtures are missing
        return table(["test", "outcome", "message"],
                     [[f["test"], "failed", f["message"]] for f in s["failures"][:40]]
                     + [[f"{n} tests", "skipped", reason] for reason, n in s["skip_reasons"].items()])
    if name == "ops" and "rows" in s:
        return table(["op", "shape", "dtype", "pass", "ref ms", "fused ms", "vs ref", "fused GB/s", "% of copy"],
                     [[r["op"], r["shape"], r["dtype"], r["pass"], _f(r["ref_s"] * 1e3), _f(r["fused_s"] * 1e3),
                       _f(r["vs_ref"], 2, "x"), _f(r["fused_gb_per_s"], 0), _f(r["pct_of_copy"], 0, "%")]
                      for r in s["rows"]])
    if name == "train" and "variants" in s:
        steps = [st["step"] for st in next(iter(s["variants"].values()))["steps"]]
        rows = [[v, r["ops"], *[_f(st["sec_per_kimg"], 3) for st in r["steps"]], _f(r["round_sec_per_kimg"], 3)]
                for v, r in s["variants"].items()]
        fell_back = [f"- {v} ran the reference ops: {r['ops_why']}" for v, r in s["variants"].items()
                     if not v.startswith("ref") and r["ops"] == "ref"]
        return table(["variant", "ops ran", *[f"{st} sec/kimg" for st in steps], "round sec/kimg"], rows) + [
            "", *(f"- {x['of']} is {_f(x['speedup'])}x as fast as {x['over']}" for x in s["speedups"]), *fell_back,
            *published_lines(s.get("published"), s.get("published_error"))]
    if name == "dp" and "private_vs_plain" in s:
        return table(["D step (R1 every %d, amortized)" % s["r1_interval"], "ms/step", "real images", "ratio"],
                     [["plain d_step + lazy R1", _f(s["plain_s_per_step"] * 1e3, 1), s["plain_images"], "1.00x"],
                      ["private dp_d_step", _f(s["private_s_per_step"] * 1e3, 1), _f(s["private_images"], 1),
                       _f(s["private_vs_plain"], 2, "x")],
                      *([[f"plain, first {s['freeze_d']} D blocks frozen", _f(s["plain_frozen_s_per_step"] * 1e3, 1),
                          s["plain_images"], "1.00x"],
                         [f"private, first {s['freeze_d']} D blocks frozen",
                          _f(s["private_frozen_s_per_step"] * 1e3, 1),
                          _f(s["private_images"], 1), _f(s["frozen_private_vs_plain"], 2, "x")]]
                        if "frozen_private_vs_plain" in s else [])]) + [
            "", f"- per-unit gradients of {s['per_unit_units']} units: per layer {_f(s['per_layer_vs_loop'], 2, 'x')} "
                f"and torch.func {_f(s['vmap_vs_loop'], 2, 'x')} the batch-of-one loop's time (per layer "
                f"{_f(s['per_layer_vs_vmap'], 2, 'x')} torch.func's)"]
    if name == "search" and "rows" in s:
        return table(["method", "seconds", "queries/s", "TFLOP/s", "time vs full", "peak GiB"],
                     [[r["method"], _f(r["seconds"]), _f(r["queries_per_s"], 0), _f(r["tflop_per_s"]),
                       _f(r["time_vs_full"], 2, "x"), _f(r["peak_gib"])] for r in s["rows"]]) + [
            "", f"- the exact search runs at {_f(s['pct_of_matmul'], 0)}% of the float32 matmul rate in its own "
                f"chunks {s['chunks'][0]} x {s['chunks'][1]} (target >= {SEARCH_MATMUL_PCT}%)"]
    if name == "matchers" and "rows" in s:
        return table(["matcher", "weights", "img/s", "fwd+bwd img/s"],
                     [[r["matcher"], r["weights"], _f(r["embed_img_per_s"], 1), _f(r["fwd_bwd_img_per_s"], 1)]
                      for r in s["rows"]] + [[x["matcher"], "skipped: " + x["why"], "-", "-"] for x in s["skipped"]])
    return []


def published_lines(p: dict | None, error: str | None = None) -> list[str]:
    if error:
        return [f"- auto1_fp16 against the published V100 figures: not computed ({error})"]
    if not p:
        return []
    scaled = ", ".join(f"{k.replace('_bytes_per_s', '')} {_f(v, 1)}x" for k, v in p["device_vs_v100"].items())
    ops = "" if p["ops"] != "ref" else ", with the reference ops (the kernels did not load)"
    return [f"- auto1_fp16 (--cfg=auto at 256 px on one GPU{ops}): {_f(p['measured_sec_per_kimg'])} sec/kimg, "
            f"{p['verdict']} the published {p['sec_per_kimg'][0]}-{p['sec_per_kimg'][1]} sec/kimg on a V100 scaled to "
            f"this device: {_f(p['expected_sec_per_kimg'][0])}-{_f(p['expected_sec_per_kimg'][1])} (this device's "
            f"measured rates over the V100's datasheet peaks: {scaled}; bench/gpu_report.PUBLISHED says how)"]


def markdown(report: dict) -> str:
    env = report["env"]
    lines = ["# GPU check (issues 19 and 31)", "",
             f"{env['device']}, torch {env['torch']}, CUDA {env['cuda'] or 'none'}, {report['started'][:16]} UTC, "
             f"{report['seconds']:.0f} s of the {report['total_s']:.0f} s allowed"
             + (f", commit {env['commit'][:10]}" if env.get("commit") else ""), ""]
    if report["smoke"]:
        lines += ["--smoke: CPU and tiny sizes; the numbers show that every part runs, not how fast the GPU is.", ""]
    lines += table(["section", "status", "seconds", "result"],
                   [[name, s["status"], _f(s["seconds"], 1), s.get("derive_error") or drawn(headline, name, s)]
                    for name, s in report["sections"].items()])
    for name, s in report["sections"].items():
        body = drawn(detail, name, s)
        if body:
            lines += ["", f"## {name}", "", *([body] if isinstance(body, str) else body)]
    return "\n".join(lines) + "\n"


def drawn(draw, name: str, s: dict):
    """draw(name, s), or a line saying why it failed: one section's odd result must not cost the others'
    tables (the JSON is written before the markdown, so the numbers are safe either way)."""
    try:
        return draw(name, s)
    except Exception as e:  # noqa: BLE001 - any odd result becomes a visible line
        return f"(cannot draw {name}: {type(e).__name__}: {e})"
