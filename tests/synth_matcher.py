"""A synth matcher trained once per test session on SynthFaces people that no audited generator
sees (ids from 100000), for the tests that need a matcher which tells people apart. The fixtures are
registered for every test folder in tests/conftest.py."""
import dataclasses

import pytest
import torch

from leakguard.identity_data import read_identity_images
from leakguard.matchers.synth_training import TrainSettings, save_checkpoint, train_matcher
from training.data.build import export_zip
from training.synthfaces import SynthFaces

RES = 32
MATCHER_PEOPLE = dict(num_identities=60, images_per_identity=10, identity_offset=100000)
MATCHER_SETTINGS = TrainSettings(arch="synth", input_size=RES, width=16, epochs=15, batch=32)


def _train(root, settings: TrainSettings):
    images, ids = read_identity_images(export_zip(root / "people.zip", SynthFaces(RES, seed=0, **MATCHER_PEOPLE)))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # reproducible reductions, and faster than 2 threads on 2 busy cores
    try:
        net, summary = train_matcher(images, ids, settings, data_name="synthfaces matcher people", log=None)
    finally:
        torch.set_num_threads(threads)
    return save_checkpoint(root / f"{settings.arch}.pt", net, summary), net


@pytest.fixture(scope="session")
def synth_matcher_trained(tmp_path_factory):
    """(checkpoint path, the trained network)."""
    return _train(tmp_path_factory.mktemp("session_synth_matcher"), MATCHER_SETTINGS)


@pytest.fixture(scope="session")
def synth_matcher_weights(synth_matcher_trained):
    return synth_matcher_trained[0]


@pytest.fixture(scope="session")
def synth_b_matcher_weights(tmp_path_factory):
    """A second matcher of another architecture (SynthNetB) on the same people: the held-out matcher
    of tests that must judge a method by a matcher it never used."""
    settings = dataclasses.replace(MATCHER_SETTINGS, arch="synth_b")
    return _train(tmp_path_factory.mktemp("session_synth_b_matcher"), settings)[0]
