"""Shared test setup: fixed seeds, no network, and the path of the official StyleGAN2 fixtures beside the repo."""
import ipaddress
import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.synth_matcher import (synth_b_matcher_weights, synth_matcher_trained,  # noqa: F401 (fixtures)
                                 synth_matcher_weights)

REPO = Path(__file__).resolve().parents[1]
# LEAKGUARD_FIXTURES points elsewhere, e.g. on a GPU machine that gets the repo without ../shared.
FIXTURES = Path(os.environ.get("LEAKGUARD_FIXTURES", REPO.parent / "shared" / "fixtures")) / "stylegan2"


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)


def load_fixture(name: str):
    """(meta from NAME.json, arrays from NAME.npz); skips when ../shared/fixtures is not there."""
    if not (FIXTURES / f"{name}.npz").exists():
        pytest.skip(f"official fixtures not found at {FIXTURES} (expected ../shared beside the repo)")
    meta = json.loads((FIXTURES / f"{name}.json").read_text()) if (FIXTURES / f"{name}.json").exists() else None
    return meta, np.load(FIXTURES / f"{name}.npz")


def rel_err(a: torch.Tensor, b) -> float:
    """max |a - b| / max |b|: the relative error the parity acceptance is stated in."""
    b = torch.as_tensor(np.asarray(b), dtype=a.dtype)
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


class NetworkBlocked(RuntimeError):
    """A test tried to reach a non-loopback address. Not an OSError, so no retry or offline fallback
    swallows it."""


def _is_loopback(address) -> bool:
    if not isinstance(address, tuple):        # AF_UNIX paths and the like stay on this machine
        return True
    host = str(address[0]).split("%")[0]
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:                        # a host name: never resolved here
        return False


@pytest.fixture(autouse=True, scope="session")
def _no_network():
    """No test touches the network: connecting a socket to anything but loopback raises NetworkBlocked
    (a download that a test sets off by mistake fails loudly instead of hanging or passing offline)."""
    def guard(original):
        def connect(sock, address, *args):
            if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address):
                raise NetworkBlocked(f"test tried to connect to {address!r}; tests must not use the network")
            return original(sock, address, *args)
        return connect

    with pytest.MonkeyPatch.context() as mp:
        for name in ("connect", "connect_ex"):
            mp.setattr(socket.socket, name, guard(getattr(socket.socket, name)))
        yield
