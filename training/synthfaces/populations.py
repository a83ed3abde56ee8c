"""Populations of SynthFaces people: the same generative model of a face with shifted attribute
frequencies, for a public pretraining set and a private set that differs from it measurably.

    identity_params(i, seed, population="private")

"all" is SynthFaces as it always was (every image of every earlier dataset is unchanged). "public" and
"private" split the skin-tone axis with a small overlap and shift age-like and accessory frequencies,
as a public face dataset and the private faces a user fine-tunes on can differ (other demographics,
an older cohort, more glasses):

| | all | public | private |
|---|---|---|---|
| skin tone (SKIN_TONES index, uniform) | 0 .. 6 | 0 .. 3.5 (lighter) | 2.5 .. 6 (darker) |
| grey or platinum hair | 16% | 8% | 60% |
| beard of any kind | 45% | 30% | 70% |
| glasses | 35% | 15% | 70% |

A population changes only probabilities and ranges, never the number or order of the draws, so person i
of a population is as much a pure function of (seed, i) as before. Ids of a public and a private set
should still be disjoint (identity_offset): the same id in two populations is two different people who
share their nuisance draws.
"""
from dataclasses import dataclass


@dataclass(frozen=True)
class Population:
    name: str
    skin: tuple[float, float]    # uniform range over the SKIN_TONES palette index (0 lightest .. 6 darkest)
    hair: tuple[float, ...]      # frequencies over HAIR_COLORS (black, dark brown, brown, auburn, ginger, blond,
    #                              platinum, grey)
    beard: tuple[float, ...]     # frequencies over BEARDS (none, moustache, goatee, full)
    glasses: tuple[float, ...]   # frequencies over GLASSES (none, round, square)


POPULATIONS = {
    "all": Population("all", skin=(0.0, 6.0), hair=(0.22, 0.20, 0.16, 0.08, 0.06, 0.12, 0.06, 0.10),
                      beard=(0.55, 0.15, 0.15, 0.15), glasses=(0.65, 0.175, 0.175)),
    "public": Population("public", skin=(0.0, 3.5), hair=(0.26, 0.24, 0.18, 0.08, 0.06, 0.10, 0.03, 0.05),
                         beard=(0.70, 0.10, 0.10, 0.10), glasses=(0.85, 0.075, 0.075)),
    "private": Population("private", skin=(2.5, 6.0), hair=(0.10, 0.08, 0.08, 0.04, 0.04, 0.06, 0.20, 0.40),
                          beard=(0.30, 0.20, 0.20, 0.30), glasses=(0.30, 0.35, 0.35)),
}


def population(name: str, key: str = "population") -> Population:
    """The population called `name`, or a ValueError naming `key` and the accepted names."""
    if name not in POPULATIONS:
        raise ValueError(f"{key}={name!r}: one of {', '.join(POPULATIONS)}")
    return POPULATIONS[name]
