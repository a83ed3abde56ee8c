"""The DP presets load and earn what their comments state: sigma, q, steps and delta."""
from pathlib import Path

import pytest

from training.config import load_config
from training.dp.setup import build_privacy, planned_rounds

CONFIGS = Path(__file__).resolve().parents[3] / "configs"


class Units:
    """A stand-in dataset: only the number of images and their people matter to the privacy setup."""

    def __init__(self, n, identities=None):
        self.n, self.identities = n, identities

    def __len__(self):
        return self.n


@pytest.mark.parametrize("preset, units, sigma, q, steps, delta", [
    ("synthfaces32-dp.yaml", 2000, 1.271, 0.064, 625, 1e-5),
    ("synthfaces32-dp-scratch.yaml", 100, 2.35, 0.08, 1875, 1e-5),
    ("ffhq256-dp-finetune.yaml", 10000, 2.168, 0.0256, 15626, 1e-5),
    ("ffhq256-dp.yaml", 70000, 1.34, 512 / 70000, 78126, 0.1 / 70000),
])
def test_dp_presets_earn_the_epsilon_their_comments_state(preset, units, sigma, q, steps, delta):
    import numpy as np
    cfg = load_config(CONFIGS / preset)
    ids = np.repeat(np.arange(units), 20) if cfg.privacy.unit == "identity" else None
    data = Units(units * 20 if ids is not None else units, ids)
    p = build_privacy(cfg, data, cfg.train.batch_gpu or cfg.train.batch, lambda key: key, preset)
    assert p.sigma == pytest.approx(sigma, abs=0.01)
    assert p.q == pytest.approx(q) and p.ledger.delta == pytest.approx(delta)
    assert planned_rounds(cfg) * cfg.privacy.d_steps_per_g == steps == p.steps_allowed()
    assert p.ledger.epsilon_after(p.sigma, p.q, steps) <= cfg.privacy.target_epsilon
