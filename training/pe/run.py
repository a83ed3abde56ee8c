"""One Private Evolution run, iteration by iteration, resumable (Lin et al. 2024, Algorithm 1, with a person
as the unit and W latents as the samples):

    S_0 = RANDOM_API(M)
    for t = 1..T:  h = one vote per person for the nearest member of S_{t-1}     (leakguard.pe.histogram)
                   h~ = h + N(0, sigma^2); below threshold x sigma -> 0         (noise under the secret key; ledger)
                   S'_t = M draws from S_{t-1} by h~ (the last: --count)
                   S_t = VARIATION_API(S'_t, s_t), s_t shrinking                (training.pe.latents)
    release S_T

After each iteration its state (population, ledger, secret key) goes to checkpoints/iter-NNNN.pt and a line to
pe.jsonl; a rerun with the same settings continues from the newest one. With judges, every iteration's
population (and the initial one) is scored against the private images into eval.jsonl: the data holder's view.
"""
import json
import logging
import secrets
from pathlib import Path

import numpy as np
import torch

from leakguard.atomic import atomic_open, finite_or_null, strict_json, write_json, write_text
from leakguard.audit.audit import AuditSettings
from leakguard.audit.evaluation import score_fakes
from leakguard.audit.images import ImageTensor
from leakguard.pe import MECHANISM, histogram, noisy_votes, resample, survivor_weights, voters
from leakguard.privacy import PrivacyLedger
from training.checkpoint import save_networks
from training.data.images import make_grid, save_png
from training.data.zip_format import DatasetZipWriter, Record
from training.dp.keys import PE_NOISE, secret_generator
from training.dp.setup import key_from_words, key_words
from training.pe.inputs import PEInputs, open_inputs, pick_device
from training.pe.latents import INIT, RESAMPLE, VARY, public_generator, random_latents, render, variation_steps, vary
from training.pe.record import pe_record
from training.pe.settings import PESettings, plain

log = logging.getLogger("leakguard.pe")
FORMAT = "leakguard.pe-state/1"
SETTINGS, LOG, EVAL, CHECKPOINTS = "settings.json", "pe.jsonl", "eval.jsonl", "checkpoints"
OUTSIDE_DP = ("these numbers read the private images: the data holder's view, outside the (epsilon, delta) "
              "guarantee of the release")


def embed(extractor, images: torch.Tensor) -> torch.Tensor:
    return torch.cat([extractor.embed(b) for b in images.split(extractor.batch_size)])


def start_state(s: PESettings, inp: PEInputs) -> dict:
    key = s.secret_seed if s.secret_seed is not None else secrets.randbits(128)
    z = random_latents(inp.G, s.population, public_generator(s.seed, 0, INIT))
    ledger = PrivacyLedger(inp.delta, s.accountant)
    return {"format": FORMAT, "iteration": 0, "z": z, "ledger": ledger.state_dict(), "key": key_words(key),
            "known_key": s.secret_seed is not None, "settings": s.identity(), "history": []}


def latest_state(out: Path, s: PESettings) -> dict | None:
    """The newest readable checkpoint of this run, or None; another run's settings are refused by key."""
    for path in sorted((out / CHECKPOINTS).glob("iter-*.pt"), reverse=True):
        try:
            state = torch.load(path, weights_only=True)
        except Exception as e:  # noqa: BLE001 - a damaged file: fall back to the one before
            log.warning("%s: unreadable (%s), trying the previous iteration", path, type(e).__name__)
            continue
        if state.get("format") != FORMAT:
            continue
        diffs = [f"{k}: {state['settings'].get(k)!r} -> {v!r}" for k, v in s.identity().items()
                 if state["settings"].get(k) != v]
        if diffs:
            raise ValueError(f"{out}: holds a Private Evolution run with other settings ({'; '.join(diffs)}); "
                             "rerun it with its own settings to continue it, or choose another --out")
        return state
    return None


def iterate(state: dict, s: PESettings, inp: PEInputs, voting: tuple) -> dict:
    """One iteration: the noisy histogram of the votes of `voting` (leakguard.pe.voters) over state's population,
    resampling, variation."""
    t, z = state["iteration"], state["z"]
    last = t == s.iterations - 1
    candidates = embed(inp.extractor, render(inp.G, z, s.truncation_psi, inp.device, s.batch))          # [M, D]
    hist = histogram(*voting, candidates)                                               # [M], sums to the people
    noisy = noisy_votes(hist, inp.sigma, secret_generator(key_from_words(state["key"]), PE_NOISE, t))
    del hist                                                                            # only the release goes on
    ledger = ledger_of(state, inp, s)
    ledger.record(MECHANISM, sigma=inp.sigma, q=1.0)
    weights = survivor_weights(noisy, s.threshold * inp.sigma)
    # nothing survived the threshold: every candidate stays as likely as any other
    odds = weights if float(weights.sum()) > 0 else torch.ones(len(z), dtype=torch.float64)
    picks = resample(odds, s.final_count() if last else s.population, public_generator(s.seed, t + 1, RESAMPLE))
    step = variation_steps(*s.variation, s.iterations)[t]
    z = vary(z[picks], step, public_generator(s.seed, t + 1, VARY))
    line = {"iteration": t + 1, "epsilon": ledger.epsilon(), "delta": inp.delta, "sigma": inp.sigma,
            "survivors": int((weights > 0).sum()), "kept_noisy_votes": float(weights.sum()), "variation": step,
            "population": len(z)}   # no timing: the exact search's time depends on the private embeddings
    return {**state, "iteration": t + 1, "z": z, "ledger": ledger.state_dict(), "history": state["history"] + [line]}


def evaluate(state: dict, s: PESettings, inp: PEInputs, out: Path) -> None:
    fakes = ImageTensor(render(inp.G, state["z"], s.truncation_psi, inp.device, s.batch), name=f"PE iteration {state['iteration']}")
    numbers, _ = score_fakes(fakes, inp.private, inp.judges, AuditSettings(fmrs=tuple(s.eval_fmrs)),
                             generated_info={"iteration": state["iteration"]})
    line = {"iteration": state["iteration"], "num_fakes": len(fakes), **numbers,
            "privacy": {"epsilon": ledger_of(state, inp, s).epsilon(), "delta": inp.delta, "note": OUTSIDE_DP}}
    with open(out / EVAL, "a") as f:
        f.write(strict_json(finite_or_null(line), indent=None) + "\n")


def ledger_of(state: dict, inp: PEInputs, s: PESettings) -> PrivacyLedger:
    ledger = PrivacyLedger(inp.delta, s.accountant)
    ledger.load_state_dict(state["ledger"], f"PE state at iteration {state['iteration']}")
    return ledger


def save_state(state: dict, out: Path) -> None:
    """The iteration's checkpoint, then pe.jsonl rewritten from its history (so the two always agree)."""
    with atomic_open(out / CHECKPOINTS / f"iter-{state['iteration']:04d}.pt", "wb") as f:
        torch.save(state, f)
    write_text(out / LOG, "".join(strict_json(finite_or_null(line), indent=None) + "\n" for line in state["history"]))


def release(state: dict, s: PESettings, inp: PEInputs, out: Path) -> dict:
    """release.pt (public G_ema, final latents, privacy record), latents.pt, images.zip and grid.png."""
    record = pe_record(ledger_of(state, inp, s), inp.sigma, inp.people, state["known_key"], inp.generator_record, s.vote)
    z = state["z"]                                                                      # [n, z_dim]
    save_networks(out / "release.pt", {"G_ema": inp.G.cpu()},
                  {"privacy": record, "private_evolution": {"settings": s.identity(), "z": z.tolist(),
                                                            "truncation_psi": s.truncation_psi}})
    inp.G.to(inp.device)
    with atomic_open(out / "latents.pt", "wb") as f:
        torch.save(z, f)
    images = render(inp.G, z, s.truncation_psi, inp.device, s.batch)                    # [n, 3, H, W]
    with DatasetZipWriter(out / "images.zip", privacy=record) as writer:   # training on it carries the record
        for img in images.permute(0, 2, 3, 1).numpy():
            writer.add(Record(pixels=np.ascontiguousarray(img)))
    save_png(make_grid(images[:64].permute(0, 2, 3, 1).numpy()), out / "grid.png")
    write_json(out / "record.json", record)
    return record


def run_pe(s: PESettings, out: Path, inputs: PEInputs | None = None, foreign: tuple = ()) -> dict:
    """Runs (or continues) Private Evolution into `out`; returns the privacy record of release.pt. `foreign`: names
    of files another owner keeps in `out` (a sweep trial's record), which do not make it someone else's folder."""
    inp = inputs if inputs is not None else open_inputs(s, pick_device(s.device))
    out = Path(out)
    if out.exists() and not (out / SETTINGS).is_file() and any(p.name not in foreign for p in out.iterdir()):
        raise FileExistsError(f"--out {out}: holds files but no {SETTINGS}; choose an empty or new folder")
    state = latest_state(out, s) if out.exists() else None
    voting = voters(np.asarray(inp.store.embeddings(inp.private, inp.extractor)), inp.ids, s.vote)  # once per run
    (out / CHECKPOINTS).mkdir(parents=True, exist_ok=True)
    write_json(out / SETTINGS, {**plain(s), "sigma": inp.sigma, "delta": inp.delta, "planned_epsilon": inp.epsilon,
                                "people": inp.people})
    if state is None:
        state = start_state(s, inp)
        save_state(state, out)
        if inp.judges is not None:
            evaluate(state, s, inp, out)
    else:
        log.info("continuing %s from iteration %d of %d", out, state["iteration"], s.iterations)
    while state["iteration"] < s.iterations:
        state = iterate(state, s, inp, voting)
        save_state(state, out)
        log.info("iteration %d/%d: epsilon %.3f, %d survivors", state["iteration"], s.iterations,
                 state["history"][-1]["epsilon"], state["history"][-1]["survivors"])
        if inp.judges is not None:
            evaluate(state, s, inp, out)
    return release(state, s, inp, out)


def read_log(out: Path) -> list[dict]:
    path = Path(out) / LOG
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []
