"""StyleGAN2: networks, official checkpoint import, checkpoints and the command line."""
