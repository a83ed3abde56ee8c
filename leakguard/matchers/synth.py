"""Matchers for the SynthFaces domain: SynthNetA ('synth') and SynthNetB ('synth_b') trained with
ArcFace on SynthFaces people (leakguard.matchers.synth_training). SynthFaces frames are centred
portraits, so by default images are only resized (alignment='none')."""
import logging
from pathlib import Path

import numpy as np
import torch

from leakguard.matchers.nets import weight_file
from leakguard.matchers.nets.weight_file import WeightsMismatch
from leakguard.matchers.nets.synth_nets import ARCHS, FORMAT, build_net
from leakguard.matchers.torch_matcher import TorchMatcher
from leakguard.matchers.weights import require_file
from leakguard.torch_files import load_failure

log = logging.getLogger(__name__)
NET_KWARGS = {"embedding_dim", "input_size", "width"}  # what a checkpoint may pass to build_net

# Eye centres, nose tip and mouth corners of an average SynthFaces person under the neutral nuisance
# in a 64 px frame (face units -> pixels with the renderer's HEAD_Y = 0.05 and ZOOM = 1.12, at the
# middle of each identity range), image-left point first as in align.ARCFACE_112. Used only by the
# 'ffhq' and 'detect' alignments.
SYNTH_TEMPLATE_64 = np.array([[25.19, 33.96], [38.81, 33.96], [32.00, 40.23], [26.44, 43.81], [37.56, 43.81]])


def how_to_train(arch: str) -> str:
    return (f"leakguard matcher train --data ZIP --arch {arch} --out PATH, where ZIP is an identity-labelled "
            "dataset of people the audited generator never saw (e.g. leakguard synthfaces --identity-offset "
            "100000 --out ZIP)")


def load_checkpoint(path: str | Path, arch: str | None = None) -> dict:
    """A synth matcher checkpoint as plain data (torch.load with weights_only=True), checked; `arch`:
    the architecture the caller needs. Errors are WeightsMismatch (a ValueError) naming the file."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for files that are not its checkpoints
        raise WeightsMismatch(f"{path}: not a synth matcher checkpoint ({load_failure(e)})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        found = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise WeightsMismatch(f"{path}: not a synth matcher checkpoint (format {found!r}, expected "
                              f"{FORMAT!r}); make one with {how_to_train(arch or 'synth')}")
    if ckpt.get("arch") not in ARCHS:
        raise WeightsMismatch(f"{path}: arch {ckpt.get('arch')!r}; expected one of {', '.join(ARCHS)}")
    if arch is not None and ckpt["arch"] != arch:
        other = {cls.arch: cls.name for cls in (SynthMatcher, SynthMatcherB)}.get(ckpt["arch"], ckpt["arch"])
        raise WeightsMismatch(f"{path} holds a {ckpt['arch']!r} network, but this matcher needs {arch!r}; "
                              f"use matcher {other!r} for this file, or train one with --arch {arch}")
    state = ckpt.get("state_dict")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsMismatch(f"{path}: 'state_dict' is not a dict of parameter name -> tensor")
    kwargs = ckpt.get("net_kwargs")
    if (not isinstance(kwargs, dict) or not {"embedding_dim", "input_size"} <= set(kwargs) <= NET_KWARGS
            or not all(isinstance(v, int) and v > 0 for v in kwargs.values())):
        raise WeightsMismatch(f"{path}: net_kwargs {str(kwargs)[:120]}; expected positive ints for embedding_dim, "
                              "input_size and optionally width")
    return ckpt


class SynthMatcher(TorchMatcher):
    """SynthNetA (conv-BN-PReLU stages, flatten + fc) trained with ArcFace on SynthFaces."""

    name = "synth"
    arch = "synth"             # the synth_nets.ARCHS key its checkpoints must hold
    input_size = (64, 64)      # the default; a checkpoint sets its own
    template = SYNTH_TEMPLATE_64

    def __init__(self, weights: str | Path | None = None, device="cpu", batch_size: int = 256,
                 alignment: str = "none", detector=None, allow_random: bool = False):
        if weights is None and allow_random:
            log.warning("matcher %s: no weights given; using a randomly initialised network (allow_random=True), "
                        "whose embeddings say nothing about identity", self.name)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                net = build_net(self.arch)
            self.weights, self.summary = None, None
        else:
            path = require_file(self.name, weights, f"a trained {ARCHS[self.arch].__name__} checkpoint (.pt)",
                                how_to_train(self.arch))
            ckpt = load_checkpoint(path, self.arch)
            net = weight_file.build(lambda: build_net(self.arch, **ckpt["net_kwargs"]), ckpt["state_dict"], path,
                                    self.name, hint=f"the checkpoint's net_kwargs are {ckpt['net_kwargs']}")
            self.weights, self.summary = path, ckpt.get("summary")
        self._weights_id = weight_file.fingerprint(self.weights)
        side = net.input_size
        self.input_size = (side, side)
        self.template = SYNTH_TEMPLATE_64 * (side / 64)
        self._dim = net.head[-1].num_features
        super().__init__(net, device=device, batch_size=batch_size, alignment=alignment, detector=detector)

    @property
    def embedding_dim(self) -> int:
        return self._dim

    @property
    def version(self) -> str:
        return f"{self.name}-{self._weights_id}-{self.alignment}"


class SynthMatcherB(SynthMatcher):
    """SynthNetB (inverted residual depthwise blocks, global average pooling) trained with ArcFace on SynthFaces."""

    name = "synth_b"
    arch = "synth_b"
