"""One round of StyleGAN2 training, as small steps around a TrainState:

    g_step     non-saturating G loss                      -> opt_G.step()
    pl_step    path-length regularization, every pl_interval rounds   -> opt_G.step()
    leak_step  identity-leakage penalty (leakage_reg), every leakage_reg.interval rounds -> opt_G.step()
    d_step     logistic D loss on fakes and reals         -> opt_D.step()
    r1_step    R1 on reals, every r1_interval rounds      -> opt_D.step()
    dp_d_step  under privacy.unit: DP-SGD on D in place of d_step and r1_step, d_steps_per_g times

Only d_step, r1_step and dp_d_step read real images; G's steps see fakes and D alone, so under DP
G is post-processing of D's privatized gradients (and, with leakage_reg, of the private identity bank,
released once and counted in the ledger: training.leakage).

Each step runs its chunks (gradient accumulation), backpropagates the sum of per-sample losses
divided by the global batch, sums gradients over ranks and steps the optimizer. Random numbers in
a chunk come from a stream seeded by (seed, round, step, chunk), so results do not depend on how
a batch is split over processes or accumulation passes, and resuming at a round is exact.
"""
import os
from contextlib import contextmanager

import numpy as np
import torch

from leakguard.privacy import add_noise, clip_and_accumulate
from leakguard.regularizer import leakage_terms
from training import losses
from training.data import Chunk, UnitChunk
from training.data.sampler import chunk_ids
from training.distributed import sum_gradients
from training.dp.per_unit import per_unit_grads, trainable
from training.dp.setup import MECHANISM
from training.state import TrainState

# A deliberately broken DP step, for the DP audit's own check that it catches a real bug (tools/dp_audit_example.py,
# tests/training/test_dp_audit.py): the noise is skipped while the ledger still records it. The loop warns
# when it is set; never set it otherwise.
BROKEN_SKIP_NOISE = os.environ.get("LEAKGUARD_BROKEN_DP") == "skip-noise"
STREAMS = {"G": 1, "G_pl": 2, "D": 3, "D_r1": 4, "grid": 5, "D_dp_fake": 6, "D_dp_real": 7, "G_leak": 8}
NOISE_STREAM = 3  # under the secret key, beside training.dp.units' SAMPLE and PICK


def stream_seed(seed: int, round_idx: int, stream: str, chunk: int) -> int:
    return int(np.random.SeedSequence([seed, round_idx, STREAMS[stream], chunk]).generate_state(1)[0])


@contextmanager
def chunk_rng(state: TrainState, stream: str, chunk: int, step: int | None = None):
    """Seeds torch's global generators (the networks' noise inputs and the augmentation draw from
    them) for one chunk of one step; private D steps are counted by `step`, not by round."""
    torch.manual_seed(stream_seed(state.cfg.train.seed, state.round if step is None else step, stream, chunk))
    yield


def fake_chunks(state: TrainState) -> list[int]:
    """The chunk indices of this rank's fakes (batch_gpu each), as real chunks are indexed."""
    return chunk_ids(state.dist.rank, state.dist.world, state.accum)


@contextmanager
def grads_for(state: TrainState, module: torch.nn.Module):
    """Only `module` collects gradients; the other network is a fixed function during this step."""
    for m in (state.G, state.D):
        m.requires_grad_(m is module)
    try:
        yield
    finally:
        for m in (state.G, state.D):
            m.requires_grad_(False)


def latents(state: TrainState, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """z ~ N(0, I) [n, z_dim] and labels c [n, c_dim] drawn from the dataset's labels."""
    z = torch.randn([n, state.G.z_dim], device=state.device)
    idx = torch.randint(len(state.labels), [n], device=state.device)
    return z, state.labels[idx]


def run_G(state: TrainState, z: torch.Tensor, c: torch.Tensor):
    """Fake images and their ws, with per-image style mixing: with probability style_mixing an
    image takes the ws of a second latent from a random layer on (Karras et al. 2019, sec. 3.1)."""
    ws = state.G.mapping(z, c, update_emas=False)  # [n, num_ws, w_dim]; w_avg moves in update_w_avg
    p = state.cfg.loss.style_mixing
    if p > 0:
        n, num_ws = ws.shape[:2]
        cutoff = torch.randint(1, num_ws, [n], device=ws.device)
        cutoff = torch.where(torch.rand([n], device=ws.device) < p, cutoff, torch.full_like(cutoff, num_ws))
        ws2 = state.G.mapping(torch.randn_like(z), c, update_emas=False)
        later = torch.arange(num_ws, device=ws.device)[None, :] >= cutoff[:, None]  # [n, num_ws]
        ws = torch.where(later[:, :, None], ws2, ws)
    return state.G.synthesis(ws), ws


def run_D(state: TrainState, img: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    if state.augment is not None:
        img = state.augment(img)
    return state.D(img, c)  # [n, 1]


def backward(state: TrainState, per_sample: torch.Tensor, gain: float = 1.0, batch: int | None = None) -> None:
    """Backpropagates gain * sum(per-sample losses) / global batch: the batch mean however the batch
    is split over ranks and chunks."""
    (per_sample.sum() * (gain / (batch or state.cfg.train.batch))).backward()


def optimizer_step(state: TrainState, opt: torch.optim.Optimizer, module: torch.nn.Module, name: str) -> None:
    """Sums gradients over ranks, then steps unless a gradient is NaN or infinite (train.nan_guard)."""
    params = sum_gradients(module, state.dist)
    if state.cfg.train.nan_guard and params:
        finite = torch.stack([p.grad.isfinite().all() for p in params]).all()
        if not bool(finite):
            state.skipped_steps += 1
            state.reporter.report(f"Progress/skipped_{name}_steps", 1.0)
            opt.zero_grad(set_to_none=True)
            return
    opt.step()
    opt.zero_grad(set_to_none=True)


def g_step(state: TrainState, ids: list[int]) -> None:
    with grads_for(state, state.G):
        for index in ids:
            with chunk_rng(state, "G", index):
                z, c = latents(state, state.batch_gpu)
                img, _ = run_G(state, z, c)
                loss = losses.g_nonsaturating(run_D(state, img, c))  # [n]
            backward(state, loss)
            state.reporter.report("Loss/G/loss", loss)
        optimizer_step(state, state.opt_G, state.G, "G")


def pl_step(state: TrainState, ids: list[int], gain: float) -> None:
    """Path-length regularization on batch / pl_batch_shrink fakes; `gain` is the lazy interval."""
    cfg = state.cfg.loss
    n = max(1, state.batch_gpu // cfg.pl_batch_shrink)
    total = torch.zeros([2], device=state.device)  # [sum of lengths, count]
    with grads_for(state, state.G):
        for index in ids:
            with chunk_rng(state, "G_pl", index):
                z, c = latents(state, n)
                img, ws = run_G(state, z, c)
                lengths = losses.path_lengths(img, ws)  # [n]
            penalty = losses.pl_penalty(lengths, state.pl_mean) * cfg.pl_weight
            backward(state, penalty, gain, batch=n * len(ids) * state.dist.world)
            total += torch.stack([lengths.detach().sum(), torch.tensor(float(n), device=state.device)])
            state.reporter.report("Loss/pl_penalty", penalty)
        optimizer_step(state, state.opt_G, state.G, "G_pl")
    state.dist.all_sum(total)
    state.pl_mean.lerp_(total[0] / total[1], cfg.pl_decay)
    state.reporter.report("Loss/pl_mean", state.pl_mean)


def leak_step(state: TrainState, ids: list[int], gain: float) -> None:
    """The identity-leakage penalty (leakguard.regularizer) on leakage_reg.batch fakes per chunk, summed over
    matchers, times leakage_reg.weight; `gain` is the lazy interval. The fakes are not style-mixed: the
    penalty is about the faces a release shows, which come from one latent each."""
    leak = state.leakage
    above = {p.name: 0.0 for p in leak.penalties}
    with grads_for(state, state.G):
        for index in ids:
            with chunk_rng(state, "G_leak", index):
                z, c = latents(state, leak.batch)
                img = state.G.synthesis(state.G.mapping(z, c, update_emas=False))  # unmixed: as a release renders
                terms = leakage_terms(leak.penalties, img)
            penalty = terms.penalty * leak.weight                                             # [n]
            backward(state, penalty, gain, batch=leak.batch * len(ids) * state.dist.world)
            state.reporter.report("Loss/leak_reg", penalty)
            for name, fraction in terms.above.items():
                above[name] += fraction / len(ids)
        optimizer_step(state, state.opt_G, state.G, "G_leak")
    for name, fraction in above.items():
        state.reporter.report(f"Leakage/{name}/above_threshold", fraction)


def update_w_avg(state: TrainState, w_sum: torch.Tensor) -> None:
    """w_avg <- lerp towards the mean w of this round's fakes, once per round over every rank's chunks
    ([w_dim + 1]: the sum of w and the count), so it moves the same for any process count and
    accumulation (the official network moves it per forward pass)."""
    mapping = state.G.mapping
    if mapping.w_avg_beta is None:
        return
    state.dist.all_sum(w_sum)
    mapping.w_avg.copy_((w_sum[:-1] / w_sum[-1]).lerp(mapping.w_avg, mapping.w_avg_beta))


def fakes_for_D(state: TrainState, n: int, w_sum: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """n fakes and their labels, G fixed; their w are added to w_sum ([sum of w, count]) for w_avg."""
    z, c = latents(state, n)
    with torch.no_grad():
        fake, ws = run_G(state, z, c)
        w_sum[:-1] += ws[:, 0].sum(dim=0)
        w_sum[-1] += len(ws)
    return fake, c


def d_step(state: TrainState, chunks: list[Chunk]) -> None:
    """Logistic D loss on fakes and reals; D(real) signs feed the ADA heuristic; the fakes' w feed w_avg."""
    w_sum = torch.zeros([state.G.w_dim + 1], device=state.device)  # [sum of w, count]
    with grads_for(state, state.D):
        for chunk in chunks:
            with chunk_rng(state, "D", chunk.index):
                fake, c = fakes_for_D(state, len(chunk.img), w_sum)
                fake_logits = run_D(state, fake, c)
                real_logits = run_D(state, chunk.img, chunk.c)
                loss = losses.d_logistic_fake(fake_logits) + losses.d_logistic_real(real_logits)  # [n]
            backward(state, loss)
            if state.ada is not None:
                state.ada.accumulate(real_logits.detach())
            state.reporter.report("Loss/D/loss", loss)
            state.reporter.report("Loss/scores/fake", fake_logits)
            state.reporter.report("Loss/scores/real", real_logits)
            state.reporter.report("Loss/signs/real", real_logits.sign())
        optimizer_step(state, state.opt_D, state.D, "D")
    update_w_avg(state, w_sum)


def r1_step(state: TrainState, chunks: list[Chunk], gain: float) -> None:
    """Lazy R1: gamma/2 |grad D(x)|^2 on reals, weighted by the interval `gain`."""
    gamma = state.cfg.loss.r1_gamma
    with grads_for(state, state.D):
        for chunk in chunks:
            with chunk_rng(state, "D_r1", chunk.index):
                real = chunk.img.detach().requires_grad_(True)
                penalty = losses.r1_penalty(real, run_D(state, real, chunk.c)) * (gamma / 2)  # [n]
            backward(state, penalty, gain)
            state.reporter.report("Loss/r1_penalty", penalty)
        optimizer_step(state, state.opt_D, state.D, "D_r1")


def noise_generator(state: TrainState, t: int) -> torch.Generator:
    """The generator of step t's DP noise, seeded under the run's secret key."""
    seed = int(np.random.SeedSequence([state.privacy.key, NOISE_STREAM, t]).generate_state(1, np.uint64)[0])
    return torch.Generator(device=state.device).manual_seed(seed)


def augment_units(state: TrainState, img: torch.Tensor) -> torch.Tensor:
    """Augments [U, k, C, H, W] image by image (each draw reads one image and public randomness);
    under DP, R1 is taken at D's input, after augmentation (before it otherwise; equal under noaug)."""
    if state.augment is None:
        return img
    return state.augment(img.flatten(0, 1)).view_as(img)


def dp_d_step(state: TrainState, ids: list[int], units: list[UnitChunk]) -> None:
    """DP-SGD on D (Abadi et al. 2016) at the privacy unit, one private D step t:

        per-unit gradients of the real terms (R1 inside, every r1_interval steps) -> clip to C
        -> sum (this rank's units; over ranks in optimizer_step) -> noise N(0, sigma^2 C^2) once (rank 0)
        -> / expected batch -> + the fake term -> Adam step -> ledger

    The fake term reads no private data (fakes from G, scored by D: both post-processing of earlier
    private steps) and is not clipped. Nothing computed from real images is logged."""
    p, loss = state.privacy, state.cfg.loss
    t = p.ledger.steps(MECHANISM)
    r1_weight = loss.r1_gamma / 2 * loss.r1_interval if loss.r1_gamma > 0 and t % loss.r1_interval == 0 else 0.0
    w_sum = torch.zeros([state.G.w_dim + 1], device=state.device)  # [sum of w, count]
    with grads_for(state, state.D):
        for index in ids:
            with chunk_rng(state, "D_dp_fake", index, step=t):
                fake, c = fakes_for_D(state, state.batch_gpu, w_sum)
                fake_logits = run_D(state, fake, c)
                fake_loss = losses.d_logistic_fake(fake_logits)  # [n]
            backward(state, fake_loss)
            state.reporter.report("Loss/D/fake", fake_loss)
            state.reporter.report("Loss/scores/fake", fake_logits)
        params = [param for _, param in trainable(state.D)]
        summed = [torch.zeros_like(param) for param in params]
        for chunk in units:
            with chunk_rng(state, "D_dp_real", chunk.index, step=t):
                img = augment_units(state, chunk.img)
            clip_and_accumulate(per_unit_grads(state.D, img, chunk.c, chunk.weight, r1_weight), p.max_grad_norm,
                                summed)
        if p.canaries is not None:  # a DP audit's white-box canaries: units whose clipped gradient is C e_j
            p.canaries.insert(summed, t)
        if state.dist.is_main and not BROKEN_SKIP_NOISE:
            add_noise(summed, p.sigma, p.max_grad_norm, noise_generator(state, t))
        if p.canaries is not None:  # ... and what the audit sees: the released noisy sum, at their coordinates
            p.canaries.observe(summed)
        for param, g in zip(params, summed):
            g.div_(p.expected_batch)
            param.grad = g if param.grad is None else param.grad.add_(g)
        optimizer_step(state, state.opt_D, state.D, "D")
    p.ledger.record(MECHANISM, p.sigma, p.q)
    update_w_avg(state, w_sum)


def update_ema(state: TrainState) -> None:
    """G_ema <- lerp towards G with half-life ema_kimg (ramped up early in training)."""
    t = state.cfg.train
    ema_nimg = t.ema_kimg * 1000
    if t.ema_rampup is not None:
        ema_nimg = min(ema_nimg, state.nimg * t.ema_rampup)
    beta = 0.5 ** (t.batch / max(ema_nimg, 1e-8))
    with torch.no_grad():
        for p_ema, p in zip(state.G_ema.parameters(), state.G.parameters()):
            p_ema.copy_(p.detach().lerp(p_ema, beta))
        for b_ema, b in zip(state.G_ema.buffers(), state.G.buffers()):
            b_ema.copy_(b)


def train_round(state: TrainState, reals: list[Chunk] | list[list[UnitChunk]]) -> None:
    """One round: G, lazily path length and the leakage penalty, then D — d_step and lazily R1, or under DP d_steps_per_g
    private D steps (`reals` holds one list of UnitChunks per step) — then EMA and the ADA update."""
    cfg = state.cfg.loss
    ids = fake_chunks(state)
    g_step(state, ids)
    if cfg.pl_weight > 0 and state.round % cfg.pl_interval == 0:
        pl_step(state, ids, gain=cfg.pl_interval)
    if state.leakage is not None and state.leakage.due(state.round, state.nimg):
        leak_step(state, ids, gain=state.leakage.interval)
    if state.privacy is None:
        d_step(state, reals)
        if cfg.r1_gamma > 0 and state.round % cfg.r1_interval == 0:
            r1_step(state, reals, gain=cfg.r1_interval)
    else:
        for units in reals:
            dp_d_step(state, ids, units)
    update_ema(state)
    state.nimg += state.cfg.train.batch
    state.round += 1
    if state.ada is not None:
        state.ada.update(state.augment, state.cfg.train.batch, reduce=state.dist.all_sum)
