"""SynthFaces: procedurally drawn faces whose identity is known, the embedded default dataset.

identity_params(i, seed) fixes person i; nuisance_params(i, k, seed) fixes image k of them;
render_face draws one; SynthFaces serves them as a torch Dataset (training.data.build.export_zip writes one
as a dataset zip).
"""
from training.synthfaces.dataset import SynthFaces, check_options
from training.synthfaces.params import (BEARDS, GLASSES, HAIR_STYLES, IDENTITY_RANGES, IdentityParams, Nuisance,
                                        identity_params, nuisance_params)
from training.synthfaces.render import MAX_RESOLUTION, MIN_RESOLUTION, render_face

__all__ = ["SynthFaces", "check_options", "identity_params", "nuisance_params", "render_face",
           "IdentityParams", "Nuisance", "HAIR_STYLES", "BEARDS", "GLASSES", "IDENTITY_RANGES",
           "MIN_RESOLUTION", "MAX_RESOLUTION"]
