"""Fine-tuning a generator on Private Evolution's images is post-processing: images.zip carries the PE record in
its dataset.json, and a run without privacy.unit on it writes a release.pt with that (epsilon, delta), saying why
and naming its init; data without a record leaves a non-private run without one."""
from fnmatch import fnmatch

import pytest

from leakguard.privacy.record import read_dataset_record, read_privacy_record
from tests.training.tiny import TINY
from training import rundir
from training.cli import main
from training.data.build import export_zip
from training.synthfaces import SynthFaces


@pytest.fixture(scope="module")
def pe_images(tmp_path_factory, synth_matcher_weights):
    root = tmp_path_factory.mktemp("pe_ft")
    assert main(["train", *TINY, f"run_dir={root / 'runs'}", "name=public", "train.kimg=0.008",
                 "data.synthfaces.identity_offset=1000000"]) == 0
    public = rundir.list_snapshots(next((root / "runs").glob("public-*")) / "checkpoints")[-1]
    private = export_zip(root / "private.zip", SynthFaces(32, num_identities=6, images_per_identity=3, seed=2))
    assert main(["pe", "--generator", str(public), "--data", str(private), "--embedding",
                 f"synth={synth_matcher_weights}", "--sigma", "2", "--population", "8", "--iterations", "2",
                 "--count", "24", "--device", "cpu", "--cache", str(root / "cache"), "--out", str(root / "pe")]) == 0
    return root, public, root / "pe" / "images.zip"


def test_a_fine_tune_on_the_pe_images_carries_their_epsilon_and_says_why(pe_images):
    root, public, images = pe_images
    pe_record = read_privacy_record(root / "pe" / "release.pt")
    assert read_dataset_record(images) == pe_record                    # the image set carries its release's record
    assert main(["train", *TINY, f"run_dir={root / 'runs'}", "name=ft", f"data.path={images}",
                 f"train.init={public}", "train.kimg=0.008"]) == 0
    release = next((root / "runs").glob("ft-*")) / "release.pt"
    record = read_privacy_record(release)
    assert (record["unit"], record["epsilon"], record["delta"]) == (pe_record["unit"], pe_record["epsilon"],
                                                                   pe_record["delta"])
    assert record["mechanisms"] == pe_record["mechanisms"] and record["source"] == pe_record
    assert record["method"].startswith(f"post-processing: trained only on the DP image set {images}")
    assert record["init"]["path"] == str(public) and "never saw" in record["init"]["assumption"]
    folder = release.parent
    written = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]
    unlisted = [w for w in written if not any(fnmatch(w, g) for g in record["covered_files"]
                                              + record["not_covered_files"])]
    assert unlisted == [] and "images/reals.png" in written          # every file the run wrote is accounted for


def test_a_run_on_data_without_a_record_writes_no_release(pe_images, tmp_path):
    root, public, _ = pe_images
    plain = export_zip(tmp_path / "plain.zip", SynthFaces(32, num_identities=4, images_per_identity=2, seed=3))
    assert read_dataset_record(plain) is None
    assert main(["train", *TINY, f"run_dir={tmp_path / 'runs'}", "name=plain", f"data.path={plain}",
                 "train.kimg=0.008"]) == 0
    assert not (next((tmp_path / "runs").glob("plain-*")) / "release.pt").exists()
