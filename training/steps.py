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
a batch is split over processes or accumulation passes, and resuming at a round is exact. `indices`
below are always chunk indices (which seed those streams), never identities.
"""
import dataclasses
from contextlib import contextmanager

import numpy as np
import torch

from leakguard.privacy import add_noise, clip_and_accumulate
from leakguard.regularizer import leakage_terms
from training import losses
from training.data import Chunk, UnitChunk
from training.data.sampler import chunk_ids
from training.distributed import sum_gradients, sum_tensors
from training.dp.keys import D_STEP, NOISE, secret_generator
from training.dp.per_unit import per_unit_grads, trainable
from training.dp.stream import joined
from training.state import TrainState

# Public random streams (train.seed); the secret ones of a private run are in training.dp.keys.
STREAMS = {"G": 1, "G_pl": 2, "D": 3, "D_r1": 4, "grid": 5, "D_dp_fake": 6, "D_dp_real": 7, "G_leak": 8}


def stream_seed(seed: int, round_idx: int, stream: str, chunk: int) -> int:
    return int(np.random.SeedSequence([seed, round_idx, STREAMS[stream], chunk]).generate_state(1)[0])


@contextmanager
def chunk_rng(state: TrainState, stream: str, chunk: int, step: int | None = None):
    """Seeds torch's global generators (the networks' noise inputs and the augmentation draw from
    them) for one chunk of one step; private D steps are counted by `step`, not by round. The global
    state is left as the chunk leaves it, not restored: every draw of a step comes from its own
    stream, so nothing in training reads what was there before (a snapshot saves it for what runs
    outside the steps)."""
    torch.manual_seed(stream_seed(state.cfg.train.seed, state.round if step is None else step, stream, chunk))
    yield


def fake_chunks(state: TrainState) -> list[int]:
    """The chunk indices of this rank's fakes (batch_gpu each), as real chunks are indexed."""
    return chunk_ids(state.dist.rank, state.dist.world, state.accum)


@contextmanager
def grads_for(state: TrainState, module: torch.nn.Module):
    """Only `module` collects gradients, but for D's frozen blocks (train.freeze_d); the other network is a
    fixed function during this step."""
    for m in (state.G, state.D):
        m.requires_grad_(m is module)
    if module is state.D:
        for name, param in state.D.named_parameters():
            if name in state.d_frozen:
                param.requires_grad_(False)
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


def optimizer_step(state: TrainState, opt: torch.optim.Optimizer, params: list[torch.nn.Parameter], name: str) -> None:
    """Steps on `params`' gradients, already summed over ranks, unless one is NaN or infinite (train.nan_guard)."""
    if state.cfg.train.nan_guard and params:
        finite = torch.stack([p.grad.isfinite().all() for p in params]).all()
        if not bool(finite):
            state.skipped_steps += 1
            state.reporter.report(f"Progress/skipped_{name}_steps", 1.0)
            opt.zero_grad(set_to_none=True)
            return
    opt.step()
    opt.zero_grad(set_to_none=True)


def g_step(state: TrainState, indices: list[int]) -> None:
    with grads_for(state, state.G):
        for index in indices:
            with chunk_rng(state, "G", index):
                z, c = latents(state, state.batch_gpu)
                img, _ = run_G(state, z, c)
                loss = losses.g_nonsaturating(run_D(state, img, c))  # [n]
            backward(state, loss)
            state.reporter.report("Loss/G/loss", loss)
        optimizer_step(state, state.opt_G, sum_gradients(state.G, state.dist), "G")


def pl_step(state: TrainState, indices: list[int], gain: float) -> None:
    """Path-length regularization on batch / pl_batch_shrink fakes; `gain` is the lazy interval."""
    loss_cfg = state.cfg.loss
    n = max(1, state.batch_gpu // loss_cfg.pl_batch_shrink)
    total = torch.zeros([2], device=state.device)  # [sum of lengths, count]
    with grads_for(state, state.G):
        for index in indices:
            with chunk_rng(state, "G_pl", index):
                z, c = latents(state, n)
                img, ws = run_G(state, z, c)
                lengths = losses.path_lengths(img, ws)  # [n]
            penalty = losses.pl_penalty(lengths, state.pl_mean) * loss_cfg.pl_weight
            backward(state, penalty, gain, batch=n * len(indices) * state.dist.world)
            total += torch.stack([lengths.detach().sum(), torch.tensor(float(n), device=state.device)])
            state.reporter.report("Loss/pl_penalty", penalty)
        optimizer_step(state, state.opt_G, sum_gradients(state.G, state.dist), "G_pl")
    state.dist.all_sum(total)
    state.pl_mean.lerp_(total[0] / total[1], loss_cfg.pl_decay)
    state.reporter.report("Loss/pl_mean", state.pl_mean)


def leak_step(state: TrainState, indices: list[int], gain: float) -> None:
    """The identity-leakage penalty (leakguard.regularizer) on leakage_reg.batch fakes per chunk, summed over
    matchers, times leakage_reg.weight; `gain` is the lazy interval. The fakes are not style-mixed: the
    penalty is about the faces a release shows, which come from one latent each."""
    leak = state.leakage
    above = {p.name: 0.0 for p in leak.penalties}
    with grads_for(state, state.G):
        for index in indices:
            with chunk_rng(state, "G_leak", index):
                z, c = latents(state, leak.batch)
                img = state.G.synthesis(state.G.mapping(z, c, update_emas=False))  # unmixed: as a release renders
                terms = leakage_terms(leak.penalties, img)
            penalty = terms.penalty * leak.weight                                             # [n]
            backward(state, penalty, gain, batch=leak.batch * len(indices) * state.dist.world)
            state.reporter.report("Loss/leak_reg", penalty)
            for name, fraction in terms.above.items():
                above[name] += fraction / len(indices)
        optimizer_step(state, state.opt_G, sum_gradients(state.G, state.dist), "G_leak")
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
        optimizer_step(state, state.opt_D, sum_gradients(state.D, state.dist), "D")
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
        optimizer_step(state, state.opt_D, sum_gradients(state.D, state.dist), "D_r1")


def noise_generator(state: TrainState, t: int) -> torch.Generator:
    """The generator of step t's DP noise, seeded under the run's secret key: the same on every rank."""
    return secret_generator(state.privacy.key, NOISE, t, device=state.device)


def augment_units(state: TrainState, img: torch.Tensor) -> torch.Tensor:
    """Augments [U, k, C, H, W] image by image (each draw reads one image and public randomness);
    under DP, R1 is taken at D's input, after augmentation (before it otherwise; equal under noaug)."""
    if state.augment is None:
        return img
    return state.augment(img.flatten(0, 1)).view_as(img)


def fake_term(state: TrainState, indices: list[int], t: int, w_sum: torch.Tensor) -> None:
    """softplus(D(G(z))) on fakes into D's .grad: it reads no private data (G and D are post-processing of
    earlier private steps), so it is neither clipped nor noised."""
    for index in indices:
        with chunk_rng(state, "D_dp_fake", index, step=t):
            fake, c = fakes_for_D(state, state.batch_gpu, w_sum)
            fake_logits = run_D(state, fake, c)
            fake_loss = losses.d_logistic_fake(fake_logits)  # [n]
        backward(state, fake_loss)
        state.reporter.report("Loss/D/fake", fake_loss)
        state.reporter.report("Loss/scores/fake", fake_logits)


def clipped_sum(state: TrainState, params: list[torch.nn.Parameter], units: list[UnitChunk], t: int,
                r1_weight: float) -> list[torch.Tensor]:
    """Per-unit gradients of the real terms, each clipped to C, summed over this rank's units (one tensor
    per parameter). Each chunk is augmented under its own random stream. Without R1 two chunks go through D
    per pass: the plain D step holds batch_gpu fakes and batch_gpu reals at once, and the fake term's graph is
    gone by now. With R1, torch.func's second-order pass holds more per image: one chunk, as the plain R1 step."""
    summed = [torch.zeros_like(param) for param in params]
    augmented = []
    for chunk in units:
        with chunk_rng(state, "D_dp_real", chunk.index, step=t):
            augmented.append(dataclasses.replace(chunk, img=augment_units(state, chunk.img)))
    for chunk in joined(augmented, 1 if r1_weight else 2):
        clip_and_accumulate(per_unit_grads(state.D, chunk.img, chunk.c, chunk.weight, r1_weight),
                            state.privacy.max_grad_norm, summed)
    return summed


def dp_d_step(state: TrainState, indices: list[int], units: list[UnitChunk]) -> None:
    """DP-SGD on D (Abadi et al. 2016) at the privacy unit, private D step t, in its stages:

        fake term       softplus(D(G(z))) into D's .grad (no private data: not clipped)
        per-unit grads  of each unit's real terms (R1 inside, every r1_interval steps), clipped to C, summed
        sum over ranks  the clipped sums and the fake term's gradients
        noise once      N(0, sigma^2 C^2) on the global sum (every rank draws the same noise from the key)
        scale           / expected batch, + the fake term
        step            Adam, then the ledger records the step

    A DP audit's hooks (training.dp.audit_hooks) act around the noise. Nothing computed from real
    images is logged."""
    p, loss_cfg = state.privacy, state.cfg.loss
    t = p.ledger.steps(D_STEP)
    r1_on = loss_cfg.r1_gamma > 0 and t % loss_cfg.r1_interval == 0
    r1_weight = loss_cfg.r1_gamma / 2 * loss_cfg.r1_interval if r1_on else 0.0
    w_sum = torch.zeros([state.G.w_dim + 1], device=state.device)  # [sum of w, count]
    with grads_for(state, state.D):
        fake_term(state, indices, t, w_sum)
        params = [param for _, param in trainable(state.D)]
        summed = clipped_sum(state, params, units, t, r1_weight)
        if p.audit is not None:
            p.audit.insert(summed, t)
        sum_gradients(state.D, state.dist)
        sum_tensors(summed, state.dist)
        if p.audit is None or not p.audit.skip_noise:
            add_noise(summed, p.sigma, p.max_grad_norm, noise_generator(state, t))
        if p.audit is not None:
            p.audit.observe(summed)
        for param, g in zip(params, summed):
            g.div_(p.expected_batch)
            param.grad = g if param.grad is None else param.grad.add_(g)
        optimizer_step(state, state.opt_D, params, "D")
    p.ledger.record(D_STEP, p.sigma, p.q)
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


def train_round(state: TrainState, reals: list[Chunk] | None = None,
                private: list[list[UnitChunk]] | None = None) -> None:
    """One round: G, lazily path length and the leakage penalty, then D — d_step and lazily R1 on the round's
    `reals`, or under DP d_steps_per_g private D steps (`private`: one list of UnitChunks per step) — then EMA
    and the ADA update."""
    loss_cfg = state.cfg.loss
    indices = fake_chunks(state)
    g_step(state, indices)
    if loss_cfg.pl_weight > 0 and state.round % loss_cfg.pl_interval == 0:
        pl_step(state, indices, gain=loss_cfg.pl_interval)
    if state.leakage is not None and state.leakage.due(state.round, state.nimg):
        leak_step(state, indices, gain=state.leakage.interval)
    if state.privacy is None:
        d_step(state, reals)
        if loss_cfg.r1_gamma > 0 and state.round % loss_cfg.r1_interval == 0:
            r1_step(state, reals, gain=loss_cfg.r1_interval)
    else:
        for units in private:
            dp_d_step(state, indices, units)
    update_ema(state)
    state.nimg += state.cfg.train.batch
    state.round += 1
    if state.ada is not None:
        state.ada.update(state.augment, state.cfg.train.batch, reduce=state.dist.all_sum)
