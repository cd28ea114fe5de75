"""Reusable building blocks: the spatial-bias branch and the non-local block."""
from sbcore.layers.non_local import NonLocal2d
from sbcore.layers.resampling import upsample_maps
from sbcore.layers.spatial_bias import SpatialBias, SpatialBiasSteps, reference_formulation

__all__ = ["NonLocal2d", "SpatialBias", "SpatialBiasSteps", "reference_formulation", "upsample_maps"]
