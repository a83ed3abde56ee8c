"""Moving code does not change what training computes: the runs of tests/fixtures/seams (plain with ADA; DP
per identity with the regularizer's private bank; evaluation during training; the DP run resumed from a
snapshot the old code wrote) give today the weights, stats.jsonl, eval.jsonl and epsilon that commit
95a743e gave. On a CPU like the one that wrote the fixture (same vector width and torch) every digest
is equal bit for bit; elsewhere floating-point reductions may round differently, and the networks'
outputs and every logged number are compared within 1e-5 instead. The DP runs are compared that way
everywhere since their per-unit gradients are taken per layer (training.dp.per_layer), not by torch.func
as in 95a743e: the same gradients (both equal the batch-of-one loop in float64), summed in another order."""
import json

import pytest
import torch

from tests.fixtures.seams.make_fixture import HERE, run_all


@pytest.fixture(scope="module")
def today(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the fixture was written
    try:
        return run_all(tmp_path_factory.mktemp("seams"))
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def then():
    digests = json.loads((HERE / "expected.json").read_text())
    return digests, torch.load(HERE / "expected.pt", weights_only=True)


def same_machine(digests: dict) -> bool:
    return (digests["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
            and digests["torch"] == torch.__version__)


def assert_lines_close(ours: list[dict], theirs: list[dict], what: str) -> None:
    assert len(ours) == len(theirs), what
    for a, b in zip(ours, theirs):
        assert set(a) == set(b), what
        flat_a, flat_b = json.dumps(a, sort_keys=True), json.dumps(b, sort_keys=True)
        if flat_a != flat_b:
            assert a == pytest.approx(b, rel=1e-5, abs=1e-6), what


ROUNDED_OTHERWISE = ("dp", "dp_resumed")  # per-layer per-unit gradients since 95a743e (module doc)


@pytest.mark.parametrize("run", ["plain", "dp", "eval", "dp_resumed"])
def test_a_run_computes_what_the_old_code_computed(today, then, run):
    (digests_now, probes_now), (digests, probes) = today, then
    ours, theirs = digests_now[run], digests[run]
    assert ours["nimg"] == theirs["nimg"]
    assert ours.get("ledger_steps") == theirs.get("ledger_steps")
    assert ("epsilon" in ours) == ("epsilon" in theirs)
    if "epsilon" in theirs:
        assert ours["epsilon"] == pytest.approx(theirs["epsilon"], rel=1e-12)
    if same_machine(digests) and run not in ROUNDED_OTHERWISE:
        assert ours["networks"] == theirs["networks"]
        assert ours["stats"] == theirs["stats"], "stats.jsonl differs"
        assert ours["eval"] == theirs["eval"], "eval.jsonl differs"
        assert ours.get("epsilon") == theirs.get("epsilon")
    else:
        for key in ("img", "logits"):
            torch.testing.assert_close(probes_now[run][key], probes[run][key], rtol=1e-5, atol=1e-5, msg=key)
        assert_lines_close(ours["stats_lines"], theirs["stats_lines"], "stats.jsonl")
        assert_lines_close(ours["eval_lines"], theirs["eval_lines"], "eval.jsonl")


def test_the_fixture_covers_what_it_says(then):
    digests, _ = then
    assert digests["dp"]["ledger_steps"] == {"dp_d_step": 4, "identity_bank": 1}
    assert any("Loss/leak_reg" in line for line in digests["dp"]["stats_lines"])
    assert any("Progress/ada_rt" in line for line in digests["plain"]["stats_lines"])
    assert [line["nimg"] for line in digests["eval"]["eval_lines"]] == [8, 16]
    # the resume continues the old snapshot to the same networks as the run that never stopped
    assert digests["dp_resumed"]["networks"] == digests["dp"]["networks"]
