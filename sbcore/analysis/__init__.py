"""Analysis instruments: spatial-bias maps and attention, Captum attributions, effective
receptive fields and throughput, for any sbcore ResNet."""
from sbcore.analysis.attribution import (
    ATTRIBUTION_METHODS, BASELINES, IG_MAX_STEPS, IG_MORE_STEPS, NOT_CONVERGED_MEANING, SIGNED_METHODS, Attribution, attribute, completeness_warning,
    make_baseline, normalise_heatmap, not_converged,
)
from sbcore.analysis.erf import (
    AREA_THRESHOLDS,
    ERFResult,
    effective_receptive_field,
    noise_images,
    radial_profile,
    theoretical_receptive_field,
)
from sbcore.analysis.faithfulness import FAITHFULNESS_METRICS, Faithfulness, score_attribution, verdict
from sbcore.analysis.maps import BlockMaps, BranchStep, MapsResult, spatial_bias_maps, spatial_bias_steps
from sbcore.analysis.predict import Prediction, predict
from sbcore.analysis.structure import non_local_blocks, spatial_bias_blocks, stage_names
from sbcore.analysis.throughput import DTYPES, ThroughputRow, format_throughput_table, measure_throughput

__all__ = [
    "AREA_THRESHOLDS",
    "ATTRIBUTION_METHODS",
    "Attribution",
    "BASELINES",
    "BlockMaps",
    "BranchStep",
    "DTYPES",
    "ERFResult",
    "FAITHFULNESS_METRICS",
    "Faithfulness",
    "IG_MAX_STEPS",
    "IG_MORE_STEPS",
    "MapsResult",
    "NOT_CONVERGED_MEANING",
    "Prediction",
    "SIGNED_METHODS",
    "ThroughputRow",
    "attribute",
    "completeness_warning",
    "effective_receptive_field",
    "format_throughput_table",
    "make_baseline",
    "measure_throughput",
    "noise_images",
    "non_local_blocks",
    "normalise_heatmap",
    "not_converged",
    "predict",
    "radial_profile",
    "score_attribution",
    "spatial_bias_blocks",
    "spatial_bias_maps",
    "spatial_bias_steps",
    "stage_names",
    "theoretical_receptive_field",
    "verdict",
]
