"""The Throughput page run twice in a row at its defaults, as a user would: do the two runs agree?

    python benchmarks/throughput_page_twice.py

Drives the real page (``app/main.py`` through Streamlit's AppTest, no browser) with no control touched:
the paper's setting, the ResNet-50 family at 224x224, batch 1. Prints both runs' ratios with their 95%
intervals, whether each pair of intervals overlaps, the page's warnings, the lowest latency bound shown
(a latency bar may never reach below zero), and each run's time beside the page's estimate of it.
"""
from __future__ import annotations

import re
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

MAIN = Path(__file__).resolve().parents[1] / "app" / "main.py"
RATIO = re.compile(r"(\d+\.\d+)x \[(\d+\.\d+)-(\d+\.\d+)\]")
COLUMNS = ("vs plain (95% CI)", "vs non-local (95% CI)")


def one_run(at: AppTest) -> tuple[dict[tuple[str, str], str], list[str], float]:
    """Click Run benchmark; the ratio cells by (model, column), the warnings, the lowest latency bound."""
    start = time.perf_counter()
    at.button(key="speed_run").click().run()
    assert not at.exception, at.exception
    frame = at.dataframe[0].value
    cells = {(model, column): frame[column].iloc[i] for i, model in enumerate(frame["Model"]) for column in COLUMNS
             if isinstance(frame[column].iloc[i], str) and RATIO.fullmatch(frame[column].iloc[i])}
    lows = [float(text.split(" to ")[0]) for text in frame["Latency 25th-75th percentile (ms)"] if text]
    took = time.perf_counter() - start
    estimate = next(float(c.value.split()[1]) for c in at.caption if c.value.startswith("Estimated "))
    print(f"  took {took:.0f} s, estimated {estimate:.0f} s ({took / estimate:.2f}x the estimate); "
          + "; ".join(f"{m} {c.split(' (')[0]} {v}" for (m, c), v in cells.items()))
    return cells, [w.value for w in at.warning], min(lows)


def main() -> None:
    at = AppTest.from_file(str(MAIN), default_timeout=600)
    at.run()
    at.switch_page("views/throughput.py").run()
    print(f"Throughput page at its defaults: {at.multiselect(key='speed_models').value} at "
          f"{at.number_input(key='speed_side').value} px, batch {at.multiselect(key='speed_batches').value}, "
          f"{at.slider(key='speed_rounds').value} rounds, {at.slider(key='speed_time').value} s per model")
    first, first_warnings, first_low = one_run(at)
    second, second_warnings, second_low = one_run(at)
    print("Overlap of the two runs' 95% intervals:")
    for key in first.keys() & second.keys():
        (_, lo1, hi1), (_, lo2, hi2) = (map(float, RATIO.fullmatch(run[key]).groups()) for run in (first, second))
        verdict = "overlap" if lo1 <= hi2 and lo2 <= hi1 else "DO NOT OVERLAP"
        print(f"  {key[0]:<14} {key[1]:<22} {first[key]:>22}  {second[key]:>22}  {verdict}")
    print(f"Warnings: first run {first_warnings or 'none'}; second run {second_warnings or 'none'}")
    print(f"Lowest latency bound shown: {min(first_low, second_low):.1f} ms (never below zero: "
          f"{min(first_low, second_low) >= 0})")


if __name__ == "__main__":
    main()
