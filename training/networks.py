"""The StyleGAN2 networks under the official module path `training.networks`.

Generator and mapping/synthesis live in generator.py, the discriminator in discriminator.py and
the shared layers in layers.py; this module is the one place users import them from.
"""
from training.discriminator import Discriminator, DiscriminatorBlock, DiscriminatorEpilogue
from training.generator import (MappingNetwork, SynthesisBlock, SynthesisLayer, SynthesisNetwork, ToRGBLayer,
                                Generator)
from training.layers import (Conv2dLayer, FullyConnectedLayer, MinibatchStdLayer, modulated_conv2d,
                             normalize_2nd_moment)

__all__ = [
    "Generator", "MappingNetwork", "SynthesisNetwork", "SynthesisBlock", "SynthesisLayer", "ToRGBLayer",
    "Discriminator", "DiscriminatorBlock", "DiscriminatorEpilogue",
    "FullyConnectedLayer", "Conv2dLayer", "MinibatchStdLayer", "modulated_conv2d", "normalize_2nd_moment",
]
