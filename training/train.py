"""`python -m training.train ...` = `leakguard train ...`; the entry point for torchrun:

    torchrun --nproc_per_node=K -m training.train --config configs/ffhq256.yaml data.path=...
"""
import sys

from training.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
