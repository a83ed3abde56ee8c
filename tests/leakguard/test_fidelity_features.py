"""Feature extractors and `leakguard fidelity`: the Inception loader on a TorchScript model with the
published file's interface (written here: nothing ships Inception weights), matcher features, the
cached real features, the JSON against a direct computation, and the errors that name the file."""
import json
import warnings

import numpy as np
import pytest
import torch

from leakguard.audit.images import ImageFiles
from leakguard.fidelity.extractors import INCEPTION_URL, MatcherFeatures, build_extractor
from leakguard.fidelity.metrics import feature_statistics, frechet_distance
from tests.synth_matcher import RES
from training.checkpoint import save_networks
from training.cli import main
from training.cli.generate import random_generator
from training.data.build import export_zip
from training.synthfaces import SynthFaces


class FakeInception(torch.nn.Module):
    """The interface of inception-2015-12-05.pt: uint8-valued [N, 3, H, W] -> [N, 2048] with
    return_features=True (it resizes to 299 itself), logits otherwise."""

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(3 * 8 * 8, 2048)

    def forward(self, img: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        x = torch.nn.functional.interpolate(img.float() / 255, size=(8, 8), mode="area")
        f = torch.tanh(self.proj(x.flatten(1)))
        return f if return_features else f[:, :1008]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("fidelity")
    torch.manual_seed(0)
    with warnings.catch_warnings():  # torch.jit is what writes a file of the published interface
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(FakeInception()).save(str(root / "inception-2015-12-05.pt"))
    data = dict(train=export_zip(root / "train.zip", SynthFaces(RES, num_identities=8, images_per_identity=4)),
                other=export_zip(root / "other.zip", SynthFaces(RES, num_identities=8, images_per_identity=4,
                                                                identity_offset=500)))
    save_networks(root / "G.pt", {"G_ema": random_generator(RES, 0)})
    return dict(root=root, inception=root / "inception-2015-12-05.pt", generator=root / "G.pt", **data)


def test_inception_features_are_the_models_pool_features(files):
    ex = build_extractor("inception", str(files["inception"]), batch_size=5)
    images = torch.randint(0, 256, [12, 3, RES, RES], dtype=torch.uint8)
    model = ex.model
    expected = model(images, return_features=True)
    torch.testing.assert_close(ex.embed(images), expected)
    assert ex.metric_prefix == "fid" and ex.version.startswith("inception-") and ex.embedding_dim == 2048


def test_a_missing_inception_file_names_the_path_and_where_it_is_published(tmp_path):
    missing = tmp_path / "nowhere" / "inception-2015-12-05.pt"
    with pytest.raises(FileNotFoundError) as e:
        build_extractor("inception", str(missing))
    assert str(missing) in str(e.value) and INCEPTION_URL in str(e.value)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    with pytest.raises(ValueError, match=f"{bad}: not a TorchScript model"):
        build_extractor("inception", str(bad))


def test_matcher_features_are_named_fd_not_fid(synth_matcher_weights):
    ex = build_extractor("synth", str(synth_matcher_weights))
    assert isinstance(ex, MatcherFeatures) and ex.metric_prefix == "fd_synth"
    with pytest.raises(ValueError, match="unknown feature extractor 'vgg'; valid: inception, "):
        build_extractor("vgg")


def test_the_cli_writes_what_a_direct_computation_gives_and_caches_the_real_set(files, synth_matcher_weights,
                                                                               capsys):
    cache, out = files["root"] / "cache", files["root"] / "out"
    args = ["fidelity", "--generated", str(files["other"]), "--training", str(files["train"]),
            "--features", f"inception={files['inception']}", "--features", f"synth={synth_matcher_weights}",
            "--kid-subsets", "10", "--kid-subset-size", "16", "--cache", str(cache), "--out", str(out)]
    assert main(args) == 0
    report = json.loads((out / "fidelity.json").read_text())
    assert set(report["metrics"]) == {"fid", "fd_synth"}
    assert "outside the released model's guarantee" in report["note"]
    ex = build_extractor("inception", str(files["inception"]))
    real = np.concatenate([ex.embed(b).numpy() for b in ImageFiles(files["train"]).batches(64)])
    fake = np.concatenate([ex.embed(b).numpy() for b in ImageFiles(files["other"]).batches(64)])
    fid = report["metrics"]["fid"]
    assert fid["fid"] == pytest.approx(frechet_distance(*feature_statistics(real), *feature_statistics(fake)),
                                       rel=1e-6)
    assert fid["real_count"] == fid["fake_count"] == 32 and fid["kid_subset_size"] == 16
    cached = sorted(p.name for p in cache.glob("*.npy"))
    assert len(cached) == 2  # the real set, once per extractor; generated images are never cached
    assert main(args) == 2 and "pass --force" in capsys.readouterr().err
    assert main(args + ["--force"]) == 0
    assert sorted(p.name for p in cache.glob("*.npy")) == cached
    assert json.loads((out / "fidelity.json").read_text())["metrics"] == report["metrics"]


def test_a_set_against_itself_has_fd_near_zero_and_full_precision_recall(files):
    out = files["root"] / "self"
    assert main(["fidelity", "--generated", str(files["train"]), "--training", str(files["train"]),
                 "--features", f"inception={files['inception']}", "--kid-subsets", "5",
                 "--cache", str(files["root"] / "cache"), "--out", str(out)]) == 0
    fid = json.loads((out / "fidelity.json").read_text())["metrics"]["fid"]
    # 32 images in 2048-d: rank-31 covariances, whose eigen square roots round to ~1e-5 absolute
    assert abs(fid["fid"]) < 1e-4 and fid["fid_precision"] == fid["fid_recall"] == 1.0


def test_a_generator_is_sampled_at_its_seeds(files):
    out = files["root"] / "gen"
    assert main(["fidelity", "--generator", str(files["generator"]), "--seeds", "0-9", "--training",
                 str(files["train"]), "--features", f"inception={files['inception']}", "--kid-subsets", "5",
                 "--cache", str(files["root"] / "cache"), "--out", str(out)]) == 0
    report = json.loads((out / "fidelity.json").read_text())
    assert report["inputs"]["generated_count"] == 10 and report["inputs"]["generated"]["seeds"] == "0-9 (10)"


@pytest.mark.parametrize("extra, message", [
    (["--features", "vgg"], "unknown feature extractor 'vgg'"),
    (["--features", "inception=/no/such/inception.pt"], "/no/such/inception.pt"),
    (["--features", "inception", "--kid-subsets", "0"], "must be at least 1"),
])
def test_bad_input_is_one_line_and_exit_2(files, tmp_path, capsys, extra, message):
    try:
        code = main(["fidelity", "--generated", str(files["other"]), "--training", str(files["train"]),
                     "--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "out"), *extra])
    except SystemExit as e:  # argparse's own exit for an option it refuses
        code = e.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
