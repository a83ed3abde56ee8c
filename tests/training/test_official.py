"""load_official_pkl on pickles in the official format, and on pickles that try to run code."""
import io
import os
import pickle
import re
import subprocess

import pytest
import torch

from tests.conftest import load_fixture, rel_err
from tests.training.official_pickles import official_modules, official_snapshot, Persistent, storage_tensor
from training.checkpoint import load_networks
from training.cli import main
from training.official import OfficialPickleError, UnsafePickleError, load_official_pkl


@pytest.fixture(scope="module")
def g32c():
    return load_fixture("g32c")


@pytest.mark.parametrize("protocol", [2, 4])
@pytest.mark.parametrize("name", ["g32", "g32c"])
def test_loads_official_snapshot_exactly(tmp_path, name, protocol):
    meta, d = load_fixture(name)
    path = tmp_path / "network-snapshot-000000.pkl"
    path.write_bytes(official_snapshot(meta, d, protocol=protocol))
    nets = load_official_pkl(path)
    assert set(nets) == {"G", "D", "G_ema", "training_set_kwargs"}
    assert nets["training_set_kwargs"] == dict(class_name="training.data.dataset.ImageFolderDataset", path="ffhq.zip",
                                               resolution=32, use_labels=False, xflip=True)
    assert type(nets["training_set_kwargs"]) is dict
    for key, prefix in [("G", "G/"), ("G_ema", "G/"), ("D", "D/")]:
        state = nets[key].state_dict()
        assert set(state) == {k[len(prefix):] for k in d.files if k.startswith(prefix)}
        assert all(torch.equal(state[k[len(prefix):]], torch.from_numpy(d[k])) for k in d.files if k.startswith(prefix))
    assert not any(m.training for key in ("G", "D", "G_ema") for m in nets[key].modules())
    z, c = torch.from_numpy(d["z"]), torch.from_numpy(d["c"])
    with torch.no_grad():
        assert rel_err(nets["G"](z, c, noise_mode="const"), d["img"]) <= 1e-5
        img = nets["G_ema"](z, c, truncation_psi=meta["truncation_psi"], noise_mode="const")
        assert rel_err(img, d["img_trunc"]) <= 1e-5
        assert rel_err(nets["D"](torch.from_numpy(d["real"]), torch.from_numpy(d["c"])), d["logits_real"]) <= 1e-5
    # A file object works as well as a path.
    assert set(load_official_pkl(io.BytesIO(path.read_bytes()))) == set(nets)


@pytest.mark.parametrize("protocol", [2, 4])
@pytest.mark.parametrize("zip_format", [False, True])
def test_legacy_and_zip_format_storages(g32c, zip_format, protocol):
    meta, d = g32c
    blob = official_snapshot(meta, d, protocol=protocol, tensor=storage_tensor(zip_format))
    assert (b"PK\x03\x04" in blob) == zip_format  # the storages really are in the format under test
    nets = load_official_pkl(io.BytesIO(blob))
    for key, prefix in [("G", "G/"), ("D", "D/")]:
        state = nets[key].state_dict()
        assert all(torch.equal(state[k[len(prefix):]], torch.from_numpy(d[k])) for k in d.files if k.startswith(prefix))


def test_stylegan3_repository_flat_synthesis_kwargs(g32c):
    # The StyleGAN3 repository's StyleGAN2 Generator records synthesis options next to z_dim & co.
    meta, d = g32c
    G_kwargs = {k: v for k, v in meta["G_kwargs"].items() if k != "synthesis_kwargs"}
    G_kwargs.update(meta["G_kwargs"]["synthesis_kwargs"])
    nets = load_official_pkl(io.BytesIO(official_snapshot({**meta, "G_kwargs": G_kwargs}, d)))
    with torch.no_grad():
        img = nets["G"](torch.from_numpy(d["z"]), torch.from_numpy(d["c"]), noise_mode="const")
    assert rel_err(img, d["img"]) <= 1e-5


def test_alias_free_stylegan3_generator_gets_a_clear_error(tmp_path):
    with official_modules() as (persistence, util):
        def rec(class_name, modules=None, params=None):
            return Persistent(persistence, class_name, {"_parameters": params or {}, "_buffers": {},
                                                        "_modules": modules or {}, "_init_args": (),
                                                        "_init_kwargs": util.EasyDict(z_dim=4)})
        freqs = torch.zeros([4, 2])
        G = rec("Generator", {"synthesis": rec("SynthesisNetwork", {"input": rec("SynthesisInput",
                                                                                 params={"freqs": freqs})})})
        path = tmp_path / "stylegan3-t-ffhq.pkl"
        path.write_bytes(pickle.dumps({"G_ema": G}, protocol=4))
    with pytest.raises(OfficialPickleError, match=r"stylegan3-t-ffhq.pkl: G_ema: an alias-free StyleGAN3"):
        load_official_pkl(path)


def test_module_src_is_never_executed(g32c, tmp_path):
    meta, d = g32c
    marker = tmp_path / "module_src_ran"
    src = f"open({str(marker)!r}, 'w').write('pwned')\n"
    path = tmp_path / "src.pkl"
    path.write_bytes(official_snapshot(meta, d, module_src=src))
    assert "G" in load_official_pkl(path)
    assert not marker.exists()


def _payloads(marker):
    cmd = f"touch {marker}"

    class System:
        def __reduce__(self):
            return os.system, (cmd,)

    class Exec:
        def __reduce__(self):
            return exec, (f"open({str(marker)!r}, 'w')",)

    class Popen:
        def __reduce__(self):
            return subprocess.Popen, (["touch", str(marker)],)

    class GetAttr:
        def __reduce__(self):
            return getattr, ("", "join")

    class HugeTensor:  # torch.Tensor(n) would allocate n floats
        def __reduce__(self):
            return torch.Tensor, (1 << 40,)

    return {"posix.system": System(), "builtins.exec": Exec(), "subprocess.Popen": Popen(),
            "builtins.getattr": GetAttr(), "torch.nn.modules.linear.Linear": torch.nn.Linear(1, 1),
            "torch.Tensor": HugeTensor()}


@pytest.mark.parametrize("name", ["posix.system", "builtins.exec", "subprocess.Popen", "builtins.getattr",
                                  "torch.nn.modules.linear.Linear", "torch.Tensor"])
def test_malicious_pickles_are_refused_with_no_side_effect(g32c, tmp_path, name):
    meta, d = g32c
    marker = tmp_path / "pwned"
    evil = _payloads(marker)[name]
    # Once at the top level, once hidden inside a network's parameters.
    top = tmp_path / "top.pkl"
    top.write_bytes(pickle.dumps({"G": evil}, protocol=4))
    with official_modules() as (persistence, util):
        nested = Persistent(persistence, "Generator", {"_parameters": {"weight": evil}, "_buffers": {},
                                                       "_modules": {}, "_init_kwargs": util.EasyDict()})
        inner = tmp_path / "nested.pkl"
        inner.write_bytes(pickle.dumps({"G": nested}, protocol=2))
    for path in [top, inner]:
        with pytest.raises(UnsafePickleError, match=rf"{path.name}: .*refusing to (load global|call) {re.escape(name)}\b"):
            load_official_pkl(path)
        assert not marker.exists()
    # The command line says the same in one line and exits 2.
    assert main(["convert", str(top), str(tmp_path / "out.pt")]) == 2
    assert not marker.exists() and not (tmp_path / "out.pt").exists()


def test_refused_for_unknown_class_missing_tensor_and_wrong_files(g32c, tmp_path):
    meta, d = g32c
    with official_modules() as (persistence, util):
        aug = Persistent(persistence, "AugmentPipe", {"_parameters": {}, "_buffers": {}, "_modules": {}})
        path = tmp_path / "aug.pkl"
        path.write_bytes(pickle.dumps({"G": aug}, protocol=4))
    with pytest.raises(OfficialPickleError, match=r"aug.pkl: G: class 'AugmentPipe' is not a supported network"):
        load_official_pkl(path)

    missing = {k: d[k] for k in d.files if k != "G/mapping.fc1.weight"}
    arrays = type("A", (), {"files": list(missing), "__getitem__": lambda self, k: missing[k]})()
    path = tmp_path / "missing.pkl"
    path.write_bytes(official_snapshot(meta, arrays))
    with pytest.raises(ValueError, match=r"missing.pkl: G: .*missing \['mapping.fc1.weight'\]"):
        load_official_pkl(path)

    zipped = tmp_path / "ours.pt"
    torch.save({"a": 1}, zipped)
    with pytest.raises(OfficialPickleError, match="ours.pt: a zip file"):
        load_official_pkl(zipped)
    garbage = tmp_path / "garbage.pkl"
    garbage.write_bytes(b"not a pickle at all")
    with pytest.raises(OfficialPickleError, match="garbage.pkl: not a pickle"):
        load_official_pkl(garbage)
    truncated = tmp_path / "truncated.pkl"
    truncated.write_bytes(official_snapshot(meta, d)[:5000])
    with pytest.raises(OfficialPickleError, match="truncated.pkl: cannot read the pickle"):
        load_official_pkl(truncated)
    with pytest.raises(FileNotFoundError, match="nope.pkl"):
        load_official_pkl(tmp_path / "nope.pkl")


def test_malformed_record_trees_get_clear_errors(tmp_path):
    with official_modules() as (persistence, util):
        def rec(modules=None, init_kwargs=None, class_name="Generator"):
            return Persistent(persistence, class_name, {"_parameters": {}, "_buffers": {}, "_modules": modules or {},
                                                        "_init_args": (), "_init_kwargs": init_kwargs or {}})
        deep = rec()
        for _ in range(40):  # what a record made its own submodule through the memo would look like
            deep = rec({"b": deep}, class_name="SubModule")
        blobs = {"deep.pkl": {"G": rec({"a": deep})},
                 "notrecord.pkl": {"D": rec({"a": [1, 2]}, class_name="Discriminator")},
                 "kwargs.pkl": {"G": rec(init_kwargs=util.EasyDict(z_dim={1, 2}))}}
        for name, data in blobs.items():
            (tmp_path / name).write_bytes(pickle.dumps(data, protocol=4))
    with pytest.raises(OfficialPickleError, match=r"deep.pkl: G: submodules nest deeper than 32"):
        load_official_pkl(tmp_path / "deep.pkl")
    with pytest.raises(OfficialPickleError, match=r"notrecord.pkl: D: submodule a is a list"):
        load_official_pkl(tmp_path / "notrecord.pkl")
    with pytest.raises(ValueError, match=r"kwargs.pkl: G _init_kwargs.z_dim: set"):
        load_official_pkl(tmp_path / "kwargs.pkl")


def test_tensorflow_pickles_get_a_clear_error(tmp_path):
    class TFNetwork:
        def __reduce__(self):
            return TFNetwork, ()
    TFNetwork.__module__, TFNetwork.__qualname__ = "dnnlib.tflib.network", "Network"
    import sys
    import types
    mods = {"dnnlib": types.ModuleType("dnnlib"), "dnnlib.tflib": types.ModuleType("dnnlib.tflib"),
            "dnnlib.tflib.network": types.ModuleType("dnnlib.tflib.network")}
    mods["dnnlib.tflib.network"].Network = TFNetwork
    saved = {k: sys.modules.get(k) for k in mods}
    sys.modules.update(mods)
    try:
        blob = pickle.dumps((TFNetwork(), TFNetwork(), TFNetwork()), protocol=4)
    finally:
        for k, v in saved.items():
            sys.modules.pop(k) if v is None else sys.modules.__setitem__(k, v)
    path = tmp_path / "karras2019stylegan-ffhq.pkl"
    path.write_bytes(blob)
    with pytest.raises(OfficialPickleError, match="TensorFlow StyleGAN2 pickle"):
        load_official_pkl(path)


def test_convert_then_generate(g32c, tmp_path):
    meta, d = g32c
    src, dst = tmp_path / "snap.pkl", tmp_path / "snap.pt"
    src.write_bytes(official_snapshot(meta, d))
    assert main(["convert", str(src), str(dst)]) == 0
    raw = torch.load(dst, weights_only=True)                # loadable without running code
    assert set(raw["networks"]) == {"G", "D", "G_ema"}
    assert raw["extra"]["training_set_kwargs"]["path"] == "ffhq.zip"
    nets = load_networks(dst)
    with torch.no_grad():
        img = nets["G_ema"].synthesis(torch.from_numpy(d["ws"]), noise_mode="const")
    assert rel_err(img, d["img"]) <= 1e-5
    for network in [src, dst]:                             # generate reads both formats
        out = tmp_path / f"out_{network.suffix[1:]}"
        assert main(["generate", "--network", str(network), "--seeds", "0-1", "--class", "1",
                     "--outdir", str(out)]) == 0
        assert sorted(p.name for p in out.iterdir()) == ["seed0000.png", "seed0001.png"]
    assert (tmp_path / "out_pkl" / "seed0001.png").read_bytes() == (tmp_path / "out_pt" / "seed0001.png").read_bytes()
