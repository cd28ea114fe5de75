"""Links a user can craft: each opens its page in a fresh AppTest session of one child process, ends correctly or
with one notice, never an exception, and keeps the process under 1.5 GB (the memory of the case alone)."""
from __future__ import annotations

import pytest

import sbcore
from hardening_harness import MEMORY_LIMIT_KB, run_group

LARGE = ["sbnl_resnet101", "nl_resnet101", "sb_resnet101", "resnet101"]
EVERY_MODEL = sbcore.list_models() + sbcore.list_models(pretrained=True)
CASES = {
    "tour-superscript-two": {"page": "explore", "query": {"tour": "²"}, "read": ["explore_model"]},
    "compare-one-model-three-times": {"page": "compare", "read": ["compare_models"],
                                      "query": {"models": ",".join(["sb_resnet38.fmnist"] * 3)}},
    "erf-every-model-name": {"page": "receptive_field", "read": ["erf_models"],
                             "query": {"models": ",".join(EVERY_MODEL), "stage": "layer1", "source": "noise"}},
    # the second link at 2 images instead of 32: a pass holds one image either way
    "erf-four-resnet101s-compute": {"page": "receptive_field", "click": "erf_run", "read": ["erf_models", "erf_stage"],
                                    "query": {"models": ",".join(LARGE), "stage": "layer4", "source": "noise", "count": "2"}},
}


@pytest.fixture(scope="module")
def reports() -> dict[str, dict]:
    return dict(zip(CASES, run_group([("link", case) for case in CASES.values()])))


@pytest.mark.parametrize("case", list(CASES))
def test_a_crafted_link_raises_nothing_and_stays_within_the_memory_bound(reports, case):
    report = reports[case]
    assert "traceback" not in report, report.get("traceback")
    assert not report["exceptions"] and not report["errors"], report
    assert report["peak_kb"] < MEMORY_LIMIT_KB, f"{case}: {report['peak_kb'] / 1024:.0f} MB"


def test_a_tour_number_that_is_no_stop_is_dropped_with_one_notice(reports):
    report = reports["tour-superscript-two"]
    assert report["toasts"] == ["Left out of the link: tour=² (not a tour stop 1-6)"]
    assert report["values"]["explore_model"] == "sb_resnet38.fmnist"  # the page itself opened as usual


def test_a_model_named_three_times_counts_once_and_says_so(reports):
    report = reports["compare-one-model-three-times"]
    assert report["values"]["compare_models"] == ["sb_resnet38.fmnist"]
    (toast,) = report["toasts"]
    assert "models: sb_resnet38.fmnist again (each counts once)" in toast


def test_a_link_naming_every_model_keeps_the_first_four_and_names_the_rest(reports):
    report = reports["erf-every-model-name"]
    assert len(report["values"]["erf_models"]) == 4
    (toast,) = report["toasts"]
    assert "(at most 4)" in toast


def test_four_resnet101_receptive_fields_are_computed_one_model_at_a_time_within_the_bound(reports):
    report = reports["erf-four-resnet101s-compute"]
    assert report["values"] == {"erf_models": LARGE, "erf_stage": "layer4"}
    assert "Log-scaled ERF" in report["headers"]
