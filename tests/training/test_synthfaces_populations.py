"""SynthFaces populations: "all" is the dataset as it was, "public" and "private" differ as documented."""
import numpy as np
import pytest

from training.cli import main
from training.synthfaces import SynthFaces, identity_params
from training.synthfaces.params import HAIR_COLORS
from training.synthfaces.populations import POPULATIONS

PEOPLE = 3000
LUMA = np.array([0.2126, 0.7152, 0.0722])


def attributes(population: str) -> dict:
    people = [identity_params(i, 0, population) for i in range(PEOPLE)]
    grey = {6, 7}  # platinum, grey: the HAIR_COLORS entries the "older" private population favours
    hair = [int(np.argmin(np.abs(np.asarray(HAIR_COLORS) - np.asarray(p.hair_color)).sum(1))) for p in people]
    return {"skin_luma": float(np.mean([np.dot(p.skin, LUMA) for p in people])),
            "glasses": float(np.mean([p.glasses > 0 for p in people])),
            "beard": float(np.mean([p.beard > 0 for p in people])),
            "grey_hair": float(np.mean([h in grey for h in hair]))}


def test_all_is_the_default_and_draws_the_same_people():
    for i in (0, 5, 123456):
        assert identity_params(i, 3, "all") == identity_params(i, 3)
    a, b = SynthFaces(32, 3, 2, population="all"), SynthFaces(32, 3, 2)
    assert a.name == b.name and np.array_equal(a.render_all(), b.render_all())


def test_public_and_private_shift_the_documented_attributes():
    """Frequencies within 3 binomial standard errors of the table in populations.py (3,000 people each)."""
    public, private = attributes("public"), attributes("private")
    for pop, got in (("public", public), ("private", private)):
        p = POPULATIONS[pop]
        expect = {"glasses": 1 - p.glasses[0], "beard": 1 - p.beard[0], "grey_hair": p.hair[6] + p.hair[7]}
        for key, value in expect.items():
            assert abs(got[key] - value) <= 3 * np.sqrt(value * (1 - value) / PEOPLE) + 0.01, (pop, key, got[key])
    assert public["skin_luma"] - private["skin_luma"] > 0.2          # lighter vs darker skin, measured
    # ... and the images differ too: the mean pixel of the face region is darker for private people.
    centre = slice(10, 22)
    light = SynthFaces(32, 40, 2, identity_offset=1000000, population="public").render_all()[:, :, centre, centre]
    dark = SynthFaces(32, 40, 2, population="private").render_all()[:, :, centre, centre]
    assert light.mean() - dark.mean() > 20


def test_populations_are_different_people_in_different_datasets():
    pub, priv = SynthFaces(32, 2, 1, population="public"), SynthFaces(32, 2, 1, population="private")
    assert identity_params(0, 0, "public") != identity_params(0, 0, "private")
    assert pub.name.endswith("-public") and priv.name.endswith("-private") and pub.name != priv.name


def test_a_bad_population_is_named(tmp_path, capsys):
    with pytest.raises(ValueError, match="population='older'"):
        SynthFaces(32, 2, 1, population="older")
    with pytest.raises(ValueError, match="population='older': one of all, public, private"):
        identity_params(0, 0, "older")
    assert main(["synthfaces", "--out", str(tmp_path / "x.zip"), "--population", "older"]) == 2
    assert "--population older" in capsys.readouterr().err
    assert not (tmp_path / "x.zip").exists()
    code = main(["train", "--config", "configs/synthfaces32.yaml", "data.synthfaces.population=older", "--dry-run",
                 f"run_dir={tmp_path / 'runs'}"])
    err = capsys.readouterr().err
    assert code == 2 and "population" in err and "older" in err, err
    assert not (tmp_path / "runs").exists()
