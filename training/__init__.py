"""StyleGAN2 training: the step's spine as flat modules (config, state, steps, losses, loop, report,
distributed, snapshot, rundir), network files (checkpoint, records, official, inference), and the
networks/, augment/, data/, synthfaces/ and cli/ sub-packages."""
