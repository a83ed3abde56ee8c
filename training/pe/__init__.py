"""Private Evolution over a public StyleGAN2 generator (Lin et al., ICLR 2024), one vote per person:
a population of latents in W, voted on by the private people through leakguard.pe's noisy histogram,
resampled by the votes and varied, T times. Nothing is trained on the private data.

    settings = PESettings(generator="public.pt", data="private.zip", embedding="synth", ...)
    result = run_pe(settings, Path("runs/pe"))     # resumes from the folder's last iteration
"""
from training.pe.run import run_pe
from training.pe.settings import PESettings

__all__ = ["PESettings", "run_pe"]
