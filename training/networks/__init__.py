"""The StyleGAN2 networks under the official module path `training.networks`.

The shared layers live in layers.py, the mapping network in mapping.py, the synthesis network and
Generator in generator.py and the Discriminator in discriminator.py; this package is the one place
users import them from, and NETWORK_CLASSES is the one registry checkpoints and official pickles
build networks from (by the class name they record).
"""
from torch import nn

from training.networks.discriminator import Discriminator, DiscriminatorBlock, DiscriminatorEpilogue
from training.networks.generator import SynthesisBlock, SynthesisLayer, SynthesisNetwork, ToRGBLayer, Generator
from training.networks.layers import (Conv2dLayer, FullyConnectedLayer, MinibatchStdLayer, modulated_conv2d,
                                      normalize_2nd_moment)
from training.networks.mapping import MappingNetwork

NETWORK_CLASSES: dict[str, type[nn.Module]] = {"Generator": Generator, "Discriminator": Discriminator}

__all__ = [
    "Generator", "MappingNetwork", "SynthesisNetwork", "SynthesisBlock", "SynthesisLayer", "ToRGBLayer",
    "Discriminator", "DiscriminatorBlock", "DiscriminatorEpilogue",
    "FullyConnectedLayer", "Conv2dLayer", "MinibatchStdLayer", "modulated_conv2d", "normalize_2nd_moment",
    "NETWORK_CLASSES",
]
