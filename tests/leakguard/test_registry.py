"""Matchers by name: every registered class builds from a MatcherConfig, unknown names list the valid
ones, and a missing weights file says which file is needed."""
import pytest

from leakguard.matchers.base import Matcher
from leakguard.matchers.registry import MATCHERS, MatcherConfig, build_matcher
from leakguard.matchers.weights import WeightsMissing


def test_names_match_classes():
    for name, cls in MATCHERS.items():
        assert issubclass(cls, Matcher) and cls.name == name


def test_unknown_matcher_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown matcher 'vgg'; valid matchers: arcface, arcface_torch, dlib"):
        build_matcher(MatcherConfig(name="vgg"))


@pytest.mark.parametrize("name, needle", [("arcface_torch", "backbone"), ("facenet", "facenet-pytorch"),
                                          ("sphereface", "sphere"), ("synth", "leakguard matcher train"),
                                          ("synth_b", "leakguard matcher train"), ("arcface", "buffalo_l")])
def test_missing_weights_name_the_file_needed(name, needle, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # no InsightFace model packs under ~/.insightface
    with pytest.raises(WeightsMissing, match=needle):
        build_matcher(MatcherConfig(name=name, weights=None if name == "arcface" else str(tmp_path / "w.pth")))


def test_dlib_builds_from_config_with_its_shipped_weights():
    m = build_matcher(MatcherConfig(name="dlib", batch_size=2, alignment="none"))
    assert m.embedding_dim == 128 and m.batch_size == 2 and not m.differentiable
