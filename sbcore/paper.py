"""The paper's cost claims (Go & Ryu, arXiv 2302.12505) and how measurements on this machine compare."""
from __future__ import annotations

from collections.abc import Sequence

from sbcore.analysis.throughput import ThroughputRow, format_ratio
from sbcore.cost import count_parameters
from sbcore.factory import create_model
from sbcore.models.registry import plain_counterpart

ARXIV_URL = "https://arxiv.org/abs/2302.12505"
PAPER_CLAIMS = {
    "source": "Go & Ryu, Spatial Bias for Attention-free Non-local Neural Networks, arXiv 2302.12505",
    "throughput_sb_over_nl": (1.6, 3.3),  # img/s of the SB network over the NL network
    "added_params_nl_over_sb": 10.0,  # "about 10x fewer added parameters"
}


def _added_parameters(architecture: str, in_chans: int) -> tuple[int, int]:
    """(parameters added by spatial bias, by non-local blocks) of an architecture."""
    _, spatial_bias, non_local, _ = count_parameters(create_model(architecture, in_chans=in_chans))
    return spatial_bias, non_local


def _is_spatial_bias_variant(name: str) -> bool:
    return name == f"sb_{plain_counterpart(name)}"


def claim_comparison(rows: Sequence[ThroughputRow], in_chans: int) -> list[dict[str, str]]:
    """One row per claim and measured pair: SB vs NL throughput per batch size, NL vs SB added parameters."""
    low, high = PAPER_CLAIMS["throughput_sb_over_nl"]
    measured = [row for row in rows if not row.error]
    table = [
        {"claim": "SB throughput over NL", "pair": f"{row.model} / nl_{plain_counterpart(row.model)}, batch {row.batch_size}",
         "paper": f"{low}x to {high}x", "measured": format_ratio(row.vs_non_local, row.vs_non_local_ci)}
        for row in measured
        if _is_spatial_bias_variant(row.model) and row.vs_non_local is not None
    ]
    names = {row.model for row in measured}
    families = sorted(plain_counterpart(n) for n in names if _is_spatial_bias_variant(n) and f"nl_{plain_counterpart(n)}" in names)
    for family in families:
        sb_added = _added_parameters(f"sb_{family}", in_chans)[0]
        nl_added = _added_parameters(f"nl_{family}", in_chans)[1]
        table.append({
            "claim": "Parameters added by NL over SB", "pair": f"nl_{family} / sb_{family}",
            "paper": f"about {PAPER_CLAIMS['added_params_nl_over_sb']:.0f}x",
            "measured": f"{nl_added / sb_added:.1f}x ({nl_added / 1e6:.3f}M vs {sb_added / 1e6:.3f}M)",
        })
    return table
