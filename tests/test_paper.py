"""The paper's claims beside measured ratios."""
from __future__ import annotations

from sbcore import paper
from sbcore.analysis import ThroughputRow


def _row(model: str, batch: int, img_per_s: float, vs_non_local: float | None) -> ThroughputRow:
    return ThroughputRow(model, batch, "cpu", "fp32", False, False, img_per_s, 1.0, 0.1, None, 0.5, 0.1,
                         None, vs_non_local)


def test_claims_put_measured_sb_over_nl_ratios_beside_the_paper():
    rows = [_row("sb_resnet38", 8, 30.0, 1.5), _row("nl_resnet38", 8, 20.0, 1.0), _row("resnet38", 8, 40.0, None)]
    table = paper.claim_comparison(rows, in_chans=3)
    assert table[0] == {"claim": "SB throughput over NL", "pair": "sb_resnet38 / nl_resnet38, batch 8",
                        "paper": "1.6x to 3.3x", "measured": "1.50x"}
    assert table[1]["claim"] == "Parameters added by NL over SB" and table[1]["paper"] == "about 10x"
    ratio = float(table[1]["measured"].split("x")[0])
    assert ratio > 1  # a non-local block adds more parameters than a spatial-bias branch
    assert paper.claim_comparison([_row("resnet38", 8, 40.0, None)], in_chans=3) == []
