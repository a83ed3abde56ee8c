"""The membership AUC of the over-represented members alone (Webster et al.: an over-represented person is the
privacy risk): which training identities count as over-represented, and the AUC against a loop over the
identities' attack scores."""
import numpy as np
import pytest
import torch

from leakguard.audit.audit import OVERREP_FACTOR, AuditSettings, membership_section, overrepresented


def test_over_represented_means_five_times_the_median_person():
    ids = np.repeat([0, 1, 2, 3, 4], [500, 10, 10, 12, 49])
    assert overrepresented(ids).tolist() == [0]
    assert OVERREP_FACTOR == 5
    assert overrepresented(np.repeat([0, 1, 2], [50, 10, 10])).tolist() == [0]       # exactly 5x the median
    assert overrepresented(np.repeat([0, 1, 2], [49, 10, 10])).tolist() == []
    assert overrepresented(np.repeat(np.arange(30), 10)).tolist() == []               # a uniform set has none


def unit(x):
    return torch.nn.functional.normalize(torch.as_tensor(x, dtype=torch.float32), dim=1).numpy()


def attack_score(refs, gen, k):
    """An identity's attack score by loop: the mean of its k best references' nearest generated cosines."""
    nearest = sorted((max(float(r @ g) for g in gen) for r in refs), reverse=True)
    return float(np.mean(nearest[:k]))


def auc_by_loop(pos, neg):
    return float(np.mean([1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg]))


@pytest.mark.parametrize("overrep", [[0], [0, 3]])
def test_the_over_represented_auc_equals_a_loop(overrep):
    rng = np.random.default_rng(0)
    gen = unit(rng.normal(size=(40, 8)))                                    # [G, D]
    members, member_ids = [], []
    for person in range(6):                                                 # person 0 (and 3) drawn by the generator
        refs = gen[person] + 0.2 * rng.normal(size=(5, 8)) if person in overrep else rng.normal(size=(5, 8))
        members.append(unit(refs))
        member_ids += [person] * 5
    nonmembers = unit(rng.normal(size=(30, 8)))
    nonmember_ids = np.repeat(np.arange(100, 110), 3)
    s = AuditSettings(bootstrap=50, top_k=3)
    m = membership_section(np.concatenate(members), np.array(member_ids), nonmembers, nonmember_ids,
                           torch.from_numpy(gen), s, np.array(overrep))
    pos = [attack_score(members[p], gen, 3) for p in overrep]
    neg = [attack_score(nonmembers[nonmember_ids == i], gen, 3) for i in range(100, 110)]
    o = m["overrepresented"]
    assert o["identities"] == overrep and o["auc"] == pytest.approx(auc_by_loop(pos, neg))
    assert o["auc"] > 0.9 and o["auc_ci"][0] <= o["auc"] <= o["auc_ci"][1]
    # the AUC over all members is still the usual one, over every member identity
    every = [attack_score(members[p], gen, 3) for p in range(6)]
    assert m["auc"] == pytest.approx(auc_by_loop(every, neg))
    none = membership_section(np.concatenate(members), np.array(member_ids), nonmembers, nonmember_ids,
                              torch.from_numpy(gen), s)
    assert none["overrepresented"] is None and none["auc"] == m["auc"]
