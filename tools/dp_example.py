"""`make dp-example`: a private generator that draws faces, beside its controls (docs/dp_example.md).

    python tools/dp_example.py                 # everything missing under runs/dp-example/, then the table
    python tools/dp_example.py --only table    # the table and grids from what is there

1. public     StyleGAN2 pretrained on public SynthFaces people (configs/synthfaces32-public.yaml), copied to
              runs/dp-example/public.pt: the init of every fine-tune, and the "public-only" arm.
2. the arms   configs/synthfaces32-dp.yaml (2,000 private people x 4 images, the "private" population) with
              overrides, all 10 kimg from the same init where they have one:
                nonprivate     fine-tune, no DP (the bar DP is compared to)
                dp8_s0, dp8_s1 DP fine-tune per person, epsilon 8 at delta 1e-5, train.seed 0 and 1
                dp1, dp1_s1    DP fine-tune per person, epsilon 1, train.seed 0 and 1
                dp8_scratch    DP per person from random weights, epsilon 8 (for contrast)
   PE arms     Private Evolution (`leakguard pe`, docs/private_evolution.md) from the same public model on the same
              private people, voting in the synth matcher's embedding (no training on private data):
                pe8_s0, pe8_s1 epsilon 8 per person, public seeds 0 and 1 (the secret key drawn from the OS)
                pe1, pe1_s1    epsilon 1, public seeds 0 and 1
                pe8_features   epsilon 8, voting in the synthfaces features, the very features FD is computed in
                               (as PE's paper votes in Inception and reports FID): an upper bound, not a fair row
   PE fine-tunes the public model fine-tuned without DP on a PE arm's 2,000 images (10 kimg, the non-private
              arm's recipe): post-processing, so the generator carries the PE arm's epsilon
                pe1_ft, pe8_ft on pe1's and pe8_s0's images
3. judged     every arm's G_ema (a private arm's release.pt), 2,000 fakes (seeds 0-1999), by `leakguard audit`
              with synth_b (held out: no arm used it for anything) and synth, FMR 1e-3, membership of held-out
              photos of private people vs private-population people never trained on, the face share in the
              synthfaces features; `leakguard fidelity` for FD/KID/precision/recall against the private set.
              The null: the same audit of 2,000 photos of private-population people never trained on.

Every stage is skipped when its output exists, so a rerun after an interruption goes on where it stopped
(a training run that was stopped resumes from its last snapshot). Writes runs/dp-example/summary.json,
summary.md and one grid per arm; the numbers read the private images, so they are the data holder's view,
outside every arm's (epsilon, delta) guarantee.
"""
import argparse
import contextlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools"))
import demo_data  # noqa: E402
from training.data.build import export_zip  # noqa: E402
from training.synthfaces import SynthFaces  # noqa: E402
from training.synthfaces.feature_net import ensure_synthfaces_features  # noqa: E402
from leakguard.privacy.record import read_dataset_record  # noqa: E402

OUT = REPO / "runs" / "dp-example"
LEAKGUARD = str(Path(sys.executable).with_name("leakguard"))
RES = 32
PRIVATE = dict(num_identities=2000, images_per_identity=4, population="private")   # as configs/synthfaces32-dp.yaml
FAKES = "0-1999"
FMR = 1e-3
ARMS = {  # name -> overrides of configs/synthfaces32-dp.yaml (None: no training, the public model itself)
    "public_only": None,
    "nonprivate": ["privacy.unit=none"],
    "dp8_s0": ["train.seed=0"],
    "dp8_s1": ["train.seed=1"],
    "dp1": ["privacy.target_epsilon=1"],
    "dp1_s1": ["privacy.target_epsilon=1", "train.seed=1"],
    "dp8_scratch": ["train.init=null", "train.freeze_d=0"],
}
# name -> `leakguard pe` options beside the common ones in pe(); the pilot in docs/private_evolution.md chose them
PE_ARMS = {
    "pe8_s0": ["--epsilon", "8", "--population", "250", "--iterations", "5", "--seed", "0"],
    "pe8_s1": ["--epsilon", "8", "--population", "250", "--iterations", "5", "--seed", "1"],
    "pe1": ["--epsilon", "1", "--population", "100", "--iterations", "3"],
    "pe1_s1": ["--epsilon", "1", "--population", "100", "--iterations", "3", "--seed", "1"],
    "pe8_features": ["--epsilon", "8", "--population", "250", "--iterations", "5", "--embedding", "FEATURES"],
}
# name -> the PE arm whose 2,000 images the public model is fine-tuned on, without DP (post-processing: the
# generator carries that arm's epsilon, training.dp.image_set), with the non-private arm's recipe
PE_FINETUNES = {"pe1_ft": "pe1", "pe8_ft": "pe8_s0"}


def run(args: list[str]) -> None:
    print("+ " + " ".join(args), file=sys.stderr, flush=True)
    subprocess.run(args, check=True, cwd=REPO)


def photos(path: Path, offset: int, people: int, first_image: int, count: int) -> Path:
    """Images first_image.. of private-population people offset..offset+people-1, with identities."""
    return path if path.is_file() else demo_data.held_out(path, people, first_image, count, offset, "private")


def data() -> dict[str, Path]:
    """The private training set as a zip (the same images training renders), the membership sets and the null."""
    d = OUT / "data"
    d.mkdir(parents=True, exist_ok=True)
    private = d / "private.zip"
    if not private.is_file():
        export_zip(private, SynthFaces(RES, **PRIVATE))
    return {"private": private,
            "members": photos(d / "members.zip", 0, 500, 4, 2),          # held-out photos of 500 trained people
            "nonmembers": photos(d / "nonmembers.zip", 50000, 500, 0, 2),  # 500 people never trained on
            "null": photos(d / "null.zip", 60000, 2000, 0, 1)}             # 2,000 faces of new people


def run_folder(name: str) -> Path | None:
    found = sorted((OUT / "runs").glob(f"{name}-*"))
    return found[-1] if found else None


def final_networks(folder: Path) -> Path | None:
    """A finished run's released networks: release.pt (private) or its last snapshot; None while unfinished."""
    if (folder / "release.pt").is_file():
        return folder / "release.pt"
    snapshots = sorted((folder / "checkpoints").glob("snapshot-*.pt"))
    if not snapshots or not (folder / "config.yaml").is_file():
        return None
    planned = yaml.safe_load((folder / "config.yaml").read_text())["train"]["kimg"]
    last = int(snapshots[-1].stem.split("-")[1])          # snapshot-<nimg>.pt
    return snapshots[-1] if last >= planned * 1000 else None


def train(name: str, config: str, overrides: list[str]) -> Path:
    """The run's final networks, training (or resuming) it first when unfinished."""
    folder = run_folder(name)
    if folder is not None and final_networks(folder) is not None:
        return final_networks(folder)
    resume = ["--resume", str(folder)] if folder is not None and any((folder / "checkpoints").glob("*.pt")) else []
    run([LEAKGUARD, "train", "--config", config, f"name={name}", f"run_dir={OUT / 'runs'}", *overrides, *resume])
    networks = final_networks(run_folder(name))
    if networks is None:
        raise SystemExit(f"dp-example: {name} ended without its final networks in {run_folder(name)}")
    return networks


def pe(arm: str, options: list[str], files: dict, matchers: dict, features: Path) -> Path:
    """The arm's Private Evolution image set (run, or continued, when missing; a finished run whose images.zip
    predates the record in its dataset.json is rerun, which rewrites the same images with the record)."""
    out = OUT / "pe" / arm
    if not (out / "images.zip").is_file() or read_dataset_record(out / "images.zip") is None:
        options = [f"synthfaces={features}" if o == "FEATURES" else o for o in options]
        run([LEAKGUARD, "pe", "--generator", str(OUT / "public.pt"), "--data", str(files["private"]), "--embedding",
             f"synth={matchers['synth']}", "--count", "2000", "--variation", "0.5", "0.3", "--device", "cpu",
             "--out", str(out), *options])
    return out / "images.zip"


def judge(arm: str, networks: Path, files: dict, matchers: dict, features: Path) -> dict:
    """The arm's audit and fidelity reports (made when missing)."""
    out = OUT / "arms" / arm
    common = ["--training", str(files["private"]), "--device", "cpu"]
    generated = ["--generated", str(networks)] if networks.suffix == ".zip" else ["--generator", str(networks),
                                                                                   "--seeds", FAKES]
    if not (out / "audit" / "report.json").is_file():
        members = [] if arm == "null" else ["--members", str(files["members"]),
                                            "--nonmembers", str(files["nonmembers"])]
        run([LEAKGUARD, "audit", *generated, *common, *members, "--matcher", f"synth_b={matchers['synth_b']}",
             "--matcher", f"synth={matchers['synth']}", "--features", f"synthfaces={features}",
             "--out", str(out / "audit"), "--force"])
    if arm != "null" and not (out / "fidelity" / "fidelity.json").is_file():
        run([LEAKGUARD, "fidelity", *generated, *common, "--features", f"synthfaces={features}",
             "--out", str(out / "fidelity"), "--force"])
    return {"audit": json.loads((out / "audit" / "report.json").read_text()),
            "fidelity": (json.loads((out / "fidelity" / "fidelity.json").read_text())
                         if (out / "fidelity" / "fidelity.json").is_file() else None)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", choices=["table"], help="only rebuild the table and grids from what exists")
    args = p.parse_args(argv)
    with contextlib.redirect_stdout(sys.stderr):
        files = data()
        matchers = {a: demo_data.matcher(a, demo_data.data()) for a in demo_data.MATCHERS}
        features = ensure_synthfaces_features(None, resolution=RES)
    networks = {}
    public = OUT / "public.pt"
    if not public.is_file() and args.only is None:
        shutil.copyfile(train("public", "configs/synthfaces32-public.yaml", []), public)
    networks["public_only"] = public
    for arm, overrides in ARMS.items():
        if overrides is not None:
            folder = run_folder(arm)
            done = folder is not None and final_networks(folder) is not None
            if done or args.only is None:
                networks[arm] = train(arm, "configs/synthfaces32-dp.yaml", overrides)
    if args.only is None or (OUT / "pe").is_dir():
        for arm, options in PE_ARMS.items():
            if args.only is None or (OUT / "pe" / arm / "images.zip").is_file():
                networks[arm] = pe(arm, options, files, matchers, features)
    for arm, source in PE_FINETUNES.items():
        images = networks.get(source)
        folder = run_folder(arm)
        if images is not None and (args.only is None or (folder is not None and final_networks(folder) is not None)):
            networks[arm] = train(arm, "configs/synthfaces32-dp.yaml", ["privacy.unit=none", f"data.path={images}"])
    results = {arm: judge(arm, path, files, matchers, features) for arm, path in networks.items() if path.is_file()}
    results["null"] = judge("null", files["null"], files, matchers, features)
    from dp_example_table import write_summary  # noqa: E402  (the table's own file)
    write_summary(OUT, results, networks, FMR)
    return 0


if __name__ == "__main__":
    sys.exit(main())
