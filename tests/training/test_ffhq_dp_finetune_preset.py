"""configs/ffhq256-dp-finetune.yaml: NVIDIA's FFHQ 256 px model fine-tuned with DP-SGD on D per person.

At full size, on a pickle in the official format with StyleGAN2-ADA's paper256 architecture (random weights,
~300 MB, written in a few seconds): the preset's networks take every tensor of it, D trains the 11,541,505
parameters its header states, and `--dry-run` passes, while the preset's placeholder paths fail naming the
file. The header's privacy numbers are recomputed (sigma, q, T, delta's range, the noise-to-signal ratio).
At tiny shapes the preset trains to the end and its release.pt names the public init and what D trained."""
import hashlib
import math

import numpy as np
import pytest
import torch
from scipy.optimize import brentq
from scipy.stats import norm

from tests.conftest import REPO
from tests.training.dp.test_dp_training import oracle_epsilon
from tests.training.official_pickles import official_snapshot
from training import loop
from training.checkpoint import load_networks
from training.cli import main
from training.config import load_config
from training.data.build import export_zip
from training.data.zip_format import DatasetZipWriter, Record
from training.distributed import Dist
from training.dp.setup import plan_privacy
from training.networks import Discriminator, Generator
from training.official import load_official_pkl
from training.state import frozen_parameters
from training.synthfaces import SynthFaces

PRESET = REPO / "configs" / "ffhq256-dp-finetune.yaml"
PKL_NAME = "ffhq-res256-mirror-paper256-noaug.pkl"   # the preset's placeholder for train.init
TRAINED_D = 11_541_505                                # the header's d: D's 8 px block and its 4 px epilogue
ALL_D = 24_001_089


def official_kwargs(resolution: int, z_dim: int, channel_base: int, channel_max: int, mbstd_group: int) -> dict:
    """G_kwargs and D_kwargs as StyleGAN2-ADA's train.py records them in a pickle (the layout of the g32
    fixture), for its fixed choices: 8 mapping layers, fp16 in the top 4 resolutions, conv_clamp 256."""
    return {"G_kwargs": dict(z_dim=z_dim, c_dim=0, w_dim=z_dim, img_resolution=resolution, img_channels=3,
                             mapping_kwargs=dict(num_layers=8),
                             synthesis_kwargs=dict(channel_base=channel_base, channel_max=channel_max, num_fp16_res=4,
                                                   conv_clamp=256, architecture="skip")),
            "D_kwargs": dict(c_dim=0, img_resolution=resolution, img_channels=3, architecture="resnet",
                             channel_base=channel_base, channel_max=channel_max, num_fp16_res=4, conv_clamp=256,
                             mapping_kwargs={}, epilogue_kwargs=dict(mbstd_group_size=mbstd_group))}


# train.py's paper256 spec: fmaps 0.5 (channel_base 0.5 x 32768), map 8, mbstd 8; z and w 512.
PAPER256 = official_kwargs(256, z_dim=512, channel_base=16384, channel_max=512, mbstd_group=8)
# The same layout at 32 px with 16 channels, for a run that finishes in seconds on a CPU.
TINY32 = official_kwargs(32, z_dim=16, channel_base=128, channel_max=16, mbstd_group=8)
TINY_SHAPE = ["data.resolution=32", "data.workers=0", "model.z_dim=16", "model.w_dim=16", "model.channel_base=128",
              "model.channel_max=16", "train.freeze_d=2",          # all but the 8 px block, as freeze_d=5 at 256 px
              "train.kimg=0.016", "train.batch=8", "train.tick_kimg=0.008", "train.snapshot_kimg=1000",
              "train.image_kimg=1000", "train.grid_images=4", "train.device=cpu", "train.progress=false",
              "privacy.expected_batch=3"]


class Arrays(dict):
    """{'G/name' or 'D/name': tensor} with the `files` of an npz, as official_snapshot reads its arrays."""

    @property
    def files(self) -> list[str]:
        return list(self)


def write_official_pkl(path, meta: dict, resolution: int):
    """A pickle in the official format holding networks of `meta`'s architecture with seeded random weights
    (w_avg too), so that a run which takes them can be told from one that built its own."""
    torch.manual_seed(1)
    G, D = Generator(**meta["G_kwargs"]), Discriminator(**meta["D_kwargs"])
    G.mapping.w_avg.normal_()
    arrays = Arrays({**{f"G/{k}": v for k, v in G.state_dict().items()},
                     **{f"D/{k}": v for k, v in D.state_dict().items()}})
    path.write_bytes(official_snapshot(meta, arrays, extra={"training_set_kwargs": dict(
        class_name="training.dataset.ImageFolderDataset", path="ffhq.zip", resolution=resolution, use_labels=False,
        xflip=True)}))
    return path


def write_people(path, people: int, images: int, resolution: int):
    """A dataset zip with identities: `images` flat-coloured images of each of `people` people."""
    rng = np.random.default_rng(0)
    with DatasetZipWriter(path) as writer:
        for person in range(people):
            for _ in range(images):
                pixels = np.broadcast_to(rng.integers(0, 256, 3, dtype=np.uint8), (resolution, resolution, 3))
                writer.add(Record(pixels=np.ascontiguousarray(pixels), identity=person))
    return path


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def same(a: torch.nn.Module, b: torch.nn.Module, names=None) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    names = sa.keys() if names is None else names
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in names)


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if "error:" in line]


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """A paper256 pickle and 300 people at 256 px (at least the preset's 256 expected per D step)."""
    root = tmp_path_factory.mktemp("ffhq256")
    pkl = write_official_pkl(root / PKL_NAME, PAPER256, 256)
    yield root, pkl, write_people(root / "faces256.zip", people=300, images=2, resolution=256)
    pkl.unlink()                                          # 295 MB: not left in pytest's kept temp folders


def test_the_preset_takes_every_tensor_of_an_official_paper256_pickle(full):
    root, pkl, data = full
    cfg = load_config(PRESET, [f"data.path={data}", f"train.init={pkl}", f"run_dir={root / 'runs'}",
                               "train.device=cpu"])
    state = loop.build_run(cfg, Dist(), None).state         # refuses a key or shape that differs from the pickle's
    official = load_official_pkl(pkl)
    assert same(state.G, official["G"]) and same(state.G_ema, official["G_ema"]) and same(state.D, official["D"])
    assert torch.equal(state.G.mapping.w_avg, official["G"].mapping.w_avg)
    assert state.init == {"path": str(pkl), "sha256": sha256(pkl)} and state.privacy.init == state.init
    frozen = frozen_parameters(state.D, cfg.train.freeze_d)
    assert {name.split(".")[0] for name in frozen} == {"b256", "b128", "b64", "b32", "b16"}
    assert sum(p.numel() for p in state.D.parameters()) == ALL_D
    assert state.privacy.trained_parameters == TRAINED_D == sum(
        p.numel() for name, p in state.D.named_parameters() if name.startswith(("b8.", "b4.")))
    assert state.privacy.k == 4 and state.privacy.unit == "identity"


def test_the_dry_run_passes_with_both_files_and_names_a_missing_one(full, tmp_path, monkeypatch, capsys):
    root, pkl, data = full
    runs = tmp_path / "runs"
    assert main(["train", "--config", str(PRESET), "--dry-run", f"data.path={data}", f"train.init={pkl}",
                 f"run_dir={runs}"]) == 0
    ok = [line for line in capsys.readouterr().out.splitlines() if line.startswith("# ok:")]
    assert any(line.startswith(f"# ok: init: {pkl} (sha256 {sha256(pkl)[:16]}") for line in ok), ok
    assert any("300 units (identity), q 0.8533, delta 1e-05" in line and "15626 private D steps" in line
               for line in ok), ok

    monkeypatch.chdir(tmp_path)                              # where neither placeholder exists
    cases = [([], "dataset not found: faces256.zip"),
             ([f"data.path={data}"], f"train.init={PKL_NAME}: no such file")]
    for overrides, message in cases:
        assert main(["train", "--config", str(PRESET), "--dry-run", f"run_dir={runs}", *overrides]) == 2
        lines = error_lines(capsys.readouterr().err)
        assert len(lines) == 1 and message in lines[0], lines
    assert not runs.exists()


class People:
    """What plan_privacy reads of a dataset: its size and each image's person."""

    def __init__(self, people: int, images: int):
        self.identities = np.repeat(np.arange(people), images)

    def __len__(self) -> int:
        return len(self.identities)


def gdp_mu(epsilon: float, delta: float) -> float:
    """The mu of mu-Gaussian DP that is (epsilon, delta)-DP (Dong, Roth & Su 2022, corollary 2.13)."""
    def delta_of(mu):
        return norm.cdf(-epsilon / mu + mu / 2) - math.exp(epsilon) * norm.cdf(-epsilon / mu - mu / 2)
    return brentq(lambda mu: delta_of(mu) - delta, 0.1, 10)


def noise_to_signal(cfg, people: int, d: int) -> float:
    """sigma sqrt(d) / (q N sqrt(T)): the norm of a run's noise over the most its clipped gradients add up to."""
    plan = plan_privacy(cfg, People(people, 20), f"{people} people")
    return plan.sigma * math.sqrt(d) / (plan.q * people * math.sqrt(plan.steps))


def test_the_headers_privacy_numbers():
    cfg = load_config(PRESET)
    plan = plan_privacy(cfg, People(10_000, 20), "10,000 people")
    assert (plan.q, plan.steps, plan.delta, plan.k) == (0.0256, 15_626, 1e-5, 4)
    assert plan.sigma == pytest.approx(2.168, abs=5e-4)
    assert oracle_epsilon(plan.sigma, plan.q, plan.steps, plan.delta) == pytest.approx(8, abs=0.01)
    with pytest.raises(ValueError, match=r"privacy.delta=1e-05 is not below 1/units = 1/100000"):
        plan_privacy(cfg, People(100_000, 1), "100,000 people")

    mu = gdp_mu(8, 1e-5)
    assert mu == pytest.approx(1.67, abs=0.005)
    assert math.sqrt(TRAINED_D) / mu == pytest.approx(2040, rel=0.005)          # the rule of thumb: 2,040 / N
    assert noise_to_signal(cfg, 10_000, TRAINED_D) == pytest.approx(0.23, abs=0.005)
    assert noise_to_signal(cfg, 20_000, TRAINED_D) == pytest.approx(0.13, abs=0.005)
    # Where noise overtakes the signal: about 2,200 people as the preset is, 3,200 with all of D trained.
    assert noise_to_signal(cfg, 2_100, TRAINED_D) > 1 > noise_to_signal(cfg, 2_200, TRAINED_D)
    assert noise_to_signal(cfg, 3_100, ALL_D) > 1 > noise_to_signal(cfg, 3_200, ALL_D)


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return (write_official_pkl(root / "ffhq-tiny32.pkl", TINY32, 32),
            export_zip(root / "faces32.zip", SynthFaces(32, num_identities=8, images_per_identity=4)))


def test_at_tiny_shapes_the_preset_trains_and_its_release_names_the_public_init(tiny_files, tmp_path, capsys):
    pkl, data = tiny_files
    runs = tmp_path / "runs"
    assert main(["train", "--config", str(PRESET), *TINY_SHAPE, f"data.path={data}", f"train.init={pkl}",
                 f"run_dir={runs}"]) == 0, capsys.readouterr().err[-2000:]
    run_dir = runs / "ffhq256-dp-finetune-0"
    release = load_networks(run_dir / "release.pt")
    extra, record = release["extra"], release["extra"]["privacy"]
    assert extra["nimg"] == 16 and extra["init"] == {"path": str(pkl), "sha256": sha256(pkl)}
    assert record["init"]["path"] == str(pkl) and record["init"]["sha256"] == sha256(pkl)
    assert "never saw the private data" in record["init"]["assumption"]
    assert (run_dir / "config.yaml").read_text().startswith(f"# train.init {pkl} sha256 {sha256(pkl)}\n")

    official = load_official_pkl(pkl)["D"]
    trained = [name for name, _ in official.named_parameters() if name.startswith(("b8.", "b4."))]
    assert record["trained_parameters"] == sum(official.get_parameter(n).numel() for n in trained)
    assert record["trained_parameters"] < sum(p.numel() for p in official.parameters())
    D = release["D"]
    frozen = frozen_parameters(D, 2)
    assert frozen and same(D, official, frozen)                             # b32 and b16: bit for bit the init's
    assert not any(torch.equal(D.get_parameter(n), official.get_parameter(n)) for n in trained)

    assert (record["unit"], record["units"], record["max_images_per_identity"], record["delta"]) == (
        "identity", 8, 4, 1e-5)
    assert record["steps"] == 4                                              # 2 rounds x 2 private D steps
    assert record["epsilon"] <= 8
    assert record["epsilon"] == pytest.approx(oracle_epsilon(record["sigma"], record["q"], 4, 1e-5), rel=1e-3)
