"""Reusable building blocks: the spatial-bias branch and the non-local block."""
from sbcore.layers.non_local import NonLocal2d
from sbcore.layers.spatial_bias import SpatialBias, SpatialBiasSteps, upsample_maps

__all__ = ["NonLocal2d", "SpatialBias", "SpatialBiasSteps", "upsample_maps"]
