"""Models page: model cards, and loading the user's own checkpoints into the session."""
from __future__ import annotations

import io

import pytest
import torch

import sbcore


def test_default_card_shows_cost_and_the_model_card(open_page):
    at = open_page("models")
    assert not at.exception, at.exception
    assert at.selectbox(key="models_model").value == "sb_resnet38.fmnist"
    tiles = {m.label: m.value for m in at.metric}
    report = sbcore.cost.cost_report(sbcore.create_model("sb_resnet38.fmnist", pretrained=True))
    assert tiles["Parameters"] == f"{report.params / 1e6:.3f} M"
    assert tiles["By non-local"] == "0.000 M"
    assert tiles["Test top-5"].endswith("%")  # ten classes: top-5 means something
    assert all(len(label) <= 15 for label in tiles)  # short labels: none cut off in a third of the page
    assert any(m.value.startswith("# sb_resnet38.fmnist") for m in at.markdown)


def test_a_two_class_lab_model_has_no_top5_tile_and_the_summary_reads_well(open_page):
    at = open_page("models", models_model="sb_lab_resnet14.samediff")
    assert not at.exception, at.exception
    assert "Test top-5" not in {m.label for m in at.metric}
    at = open_page("models", models_model="nl_resnet38")
    summary = next(m.value for m in at.markdown if m.value.startswith("**nl_resnet38**"))
    assert summary.endswith("and has random weights (untrained).")


def test_untrained_architecture_says_so(open_page):
    at = open_page("models", models_model="nl_resnet38")
    assert not at.exception, at.exception
    assert any(c.value.startswith("Untrained") for c in at.caption)
    assert {m.label: m.value for m in at.metric}["Test top-1"] == "n/a"


@pytest.fixture
def checkpoint_files(tmp_path):
    model = sbcore.create_model("sb_resnet38", num_classes=10, in_chans=1)
    path = sbcore.save_checkpoint(model, tmp_path / "my_sb")
    return path.read_bytes(), path.with_suffix(".json").read_bytes()


def test_uploaded_checkpoint_joins_the_pickers_of_other_pages(open_page, checkpoint_files):
    weights, metadata = checkpoint_files
    at = open_page("models")
    at.file_uploader(key="models_weights").set_value(("my_sb.safetensors", weights, "application/octet-stream"))
    at.file_uploader(key="models_metadata").set_value(("my_sb.json", metadata, "application/json")).run()
    at.button(key="models_load").click().run()
    assert not at.exception, at.exception
    name = at.selectbox(key="models_model").value
    assert name.startswith("my_sb.safetensors [") and "Loaded" in at.success[0].value
    at.switch_page("views/explore.py").run()
    assert name in at.selectbox(key="explore_model").options
    at.selectbox(key="explore_model").set_value(name).run()
    assert not at.exception, at.exception
    assert any(m.value.startswith("Predicted:") for m in at.markdown)


def test_checkpoint_with_foreign_metadata_is_refused(open_page, checkpoint_files, tmp_path):
    weights, _ = checkpoint_files
    other = sbcore.save_checkpoint(sbcore.create_model("resnet38", num_classes=10, in_chans=1), tmp_path / "other")
    at = open_page("models")
    at.file_uploader(key="models_weights").set_value(("my_sb.safetensors", weights, "application/octet-stream"))
    at.file_uploader(key="models_metadata").set_value(
        ("other.json", other.with_suffix(".json").read_bytes(), "application/json")
    ).run()
    at.button(key="models_load").click().run()
    assert not at.exception, at.exception
    assert len(at.error) == 1 and "sha256" in at.error[0].value
    assert at.selectbox(key="models_model").value == "sb_resnet38.fmnist"


def _torch_bytes(state_dict: dict) -> bytes:
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    return buffer.getvalue()


def test_reference_state_dict_loads_into_the_chosen_architecture_or_says_why_not(open_page):
    state_dict = sbcore.create_model("resnet38", num_classes=10, in_chans=1).state_dict()
    at = open_page("models", models_architecture="resnet38", models_in_chans=1)
    uploads = [
        ("garbage.pth", b"definitely not a checkpoint", 10, "Not a readable PyTorch state dict"),
        ("resnet38.pth", _torch_bytes(state_dict), 1000, "does not fit resnet38"),
    ]
    for file_name, data, classes, message in uploads:
        at.number_input(key="models_classes").set_value(classes)
        at.file_uploader(key="models_state_dict").set_value((file_name, data, "application/octet-stream")).run()
        at.button(key="models_load_reference").click().run()
        assert not at.exception, at.exception
        assert len(at.error) == 1 and message in at.error[0].value
    at.number_input(key="models_classes").set_value(10)
    at.button(key="models_load_reference").click().run()
    assert not at.error and at.selectbox(key="models_model").value.startswith("resnet38.pth [")
