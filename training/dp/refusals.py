"""What differential privacy refuses in a training config, and why: a layer or statistic that mixes units
(minibatch-stddev across images, ADA's sign(D(real)) outside the DP step, mirrored copies as extra units)
would void the guarantee without a sound. The config's check calls check_privacy; every refusal names the
key and what to set instead."""
from leakguard.privacy.accountants import ACCOUNTANTS
from training.errors import ConfigError, require

PRIVACY_UNITS = ("none", "image", "identity")
MAX_D_STEPS_PER_G = 1000  # Bie et al. 2023 find the best FID at a few to tens of D steps per G step


def check_privacy(cfg) -> None:
    """What DP-SGD needs of the training config (training.config.Config, which calls this from its check),
    and what it forbids: each refusal names the key and what to set."""
    p = cfg.privacy
    require(p.unit in PRIVACY_UNITS, "privacy.unit", p.unit, " | ".join(PRIVACY_UNITS))
    if p.unit == "none":
        return
    require(p.accountant in ACCOUNTANTS, "privacy.accountant", p.accountant, " | ".join(ACCOUNTANTS))
    if (p.noise_multiplier is None) == (p.target_epsilon is None):
        raise ConfigError(f"privacy.unit={p.unit!r} needs exactly one of privacy.noise_multiplier (sigma) and "
                          f"privacy.target_epsilon; got noise_multiplier={p.noise_multiplier!r}, "
                          f"target_epsilon={p.target_epsilon!r}")
    for key in ("noise_multiplier", "target_epsilon"):
        value = getattr(p, key)
        require(value is None or (value > 0 and value != float("inf")), f"privacy.{key}", value,
                "a positive finite number")
    require(0 < p.max_grad_norm < float("inf"), "privacy.max_grad_norm", p.max_grad_norm, "a positive finite norm")
    require(p.delta is None or 0 < p.delta < 1, "privacy.delta", p.delta, "null or a probability in (0, 1)")
    require(p.expected_batch is None or p.expected_batch >= 1, "privacy.expected_batch", p.expected_batch,
            "null (= train.batch) or a positive number of units")
    require(p.max_images_per_identity >= 1, "privacy.max_images_per_identity", p.max_images_per_identity,
            "a positive number of images")
    require(1 <= p.d_steps_per_g <= MAX_D_STEPS_PER_G, "privacy.d_steps_per_g", p.d_steps_per_g,
            f"a number of private D steps per G step from 1 to {MAX_D_STEPS_PER_G}")
    require(p.secret_seed is None or 0 <= p.secret_seed < 2 ** 128, "privacy.secret_seed", p.secret_seed,
            "null (drawn from the OS) or an integer in [0, 2^128)")
    if cfg.augment.mode == "ada":
        raise ConfigError(f"augment.mode='ada' with privacy.unit={p.unit!r}: ADA moves p by sign(D(real)), a "
                          "statistic of the private images outside the DP step; set augment.mode=fixed (with "
                          "augment.p) or augment.mode=noaug")
    m = cfg.model
    if m.mbstd_channels > 0 and p.unit == "image":
        raise ConfigError(f"model.mbstd_channels={m.mbstd_channels} with privacy.unit='image': minibatch-stddev "
                          "makes one image's D output depend on the others in its group, so one image's effect is "
                          "unbounded; set model.mbstd_channels=0")
    k = p.max_images_per_identity
    if m.mbstd_channels > 0 and p.unit == "identity" and (m.mbstd_group < 1 or k % m.mbstd_group):
        raise ConfigError(f"model.mbstd_group={m.mbstd_group} with privacy.unit='identity' and "
                          f"privacy.max_images_per_identity={k}: minibatch-stddev groups must form within one "
                          f"person's images, so k must be a multiple of the group; set "
                          f"privacy.max_images_per_identity to a multiple of {max(m.mbstd_group, 1)} or "
                          "model.mbstd_channels=0")
    if cfg.data.xflip and p.unit == "image":
        raise ConfigError("data.xflip=true with privacy.unit='image': a mirrored copy is a second unit made of "
                          "the same private image, which doubles its effect; set data.xflip=false (augment.pipe "
                          "can flip), or use privacy.unit='identity' (a person's copies stay in one unit)")
