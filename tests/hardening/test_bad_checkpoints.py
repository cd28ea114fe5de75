"""Malformed checkpoints built on the fly: each is refused with a CheckpointError naming the field or
tensor, through the API and through ``sbcore card``, before anything large is built."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bad_inputs import BAD_CHECKPOINTS, tiny_checkpoint, write_bad_checkpoint
from hardening_harness import MEMORY_LIMIT_KB, run_group
from sbcore.checkpoint import file_sha256


def _pickle_renamed(folder: Path, good: Path) -> tuple[Path, str]:
    torch.save({"conv1.weight": torch.zeros(1)}, folder / "pickled.safetensors")
    (folder / "pickled.json").write_text(good.with_suffix(".json").read_text())
    return folder / "pickled.json", "pickled.safetensors is a pickle/torch.save file, not safetensors"


def _truncated(folder: Path, good: Path) -> tuple[Path, str]:
    (folder / "cut.safetensors").write_bytes(good.read_bytes()[:5000])
    document = good.with_suffix(".json").read_text().replace(file_sha256(good), file_sha256(folder / "cut.safetensors"))
    (folder / "cut.json").write_text(document)
    return folder / "cut.json", "cut.safetensors is truncated or not a safetensors file"


def _replaced(folder: Path, good: Path) -> tuple[Path, str]:
    (folder / "swapped.safetensors").write_bytes(good.read_bytes()[:-4] + b"    ")
    (folder / "swapped.json").write_text(good.with_suffix(".json").read_text())
    return folder / "swapped.json", "swapped.safetensors is corrupted or was replaced"


def _no_weights(folder: Path, good: Path) -> tuple[Path, str]:
    (folder / "alone.json").write_text(good.with_suffix(".json").read_text())
    return folder / "alone.json", "alone.safetensors is missing"


FILE_FAULTS = {"pickle-named-safetensors": _pickle_renamed, "weights-truncated": _truncated,
               "weights-replaced": _replaced, "weights-missing": _no_weights}
IDS = [case for case, *_ in BAD_CHECKPOINTS] + list(FILE_FAULTS)


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> list[tuple[Path, str]]:
    """(JSON path, words of the refusal) for every malformed checkpoint."""
    folder = tmp_path_factory.mktemp("checkpoints")
    good = tiny_checkpoint(folder)
    built = [(write_bad_checkpoint(good, folder, case, edit, kind), words) for case, edit, kind, words in BAD_CHECKPOINTS]
    return built + [fault(folder, good) for fault in FILE_FAULTS.values()]


@pytest.fixture(scope="module")
def reports(cases) -> list[tuple[dict, dict]]:
    """(API report, ``sbcore card`` report) per case, then the good checkpoint's, all from one child process."""
    good = cases[0][0].with_name("tiny.json")
    flat = run_group([case for path, _ in cases for case in (("checkpoint", str(path)), ("cli", ["card", str(path)]))]
                     + [("checkpoint", str(good)), ("cli", ["card", str(good)])])
    return list(zip(flat[::2], flat[1::2]))


def test_the_table_has_at_least_twenty_five_cases():
    assert len(IDS) >= 25 and len(set(IDS)) == len(IDS)


@pytest.mark.parametrize("index", range(len(IDS)), ids=IDS)
def test_malformed_checkpoint_is_refused_naming_the_problem(cases, reports, index):
    _, words = cases[index]
    api, cli = reports[index]
    assert "traceback" not in api, api["traceback"]
    assert api["status"] == 2 and words in api["message"], api
    assert "traceback" not in cli, cli["traceback"]
    lines = cli["stderr"].splitlines()
    assert cli["status"] == 2 and len(lines) == 1 and lines[0].startswith("sbcore card: error: ") and words in lines[0], cli
    assert max(api["peak_kb"], cli["peak_kb"]) < MEMORY_LIMIT_KB


def test_the_good_checkpoint_behind_the_cases_loads_and_gets_a_card(reports):
    api, cli = reports[-1]
    assert api["status"] == 0 and cli["status"] == 0 and cli["stderr"] == "", (api, cli)


def test_the_api_refuses_nan_weights_as_the_app_does_and_names_a_torch_save_file_as_one():
    import io
    import os

    import pytest
    import torch

    import sbcore
    from sbcore.checkpoint import load_weights
    from sbcore.convert import read_torch_state_dict
    from sbcore.errors import CheckpointError

    model = sbcore.create_model("resnet38", in_chans=1, num_classes=10)
    state = {key: value.clone() for key, value in model.state_dict().items()}
    state["conv1.weight"][0, 0, 0, 0] = float("nan")
    saved = io.BytesIO()
    torch.save(state, saved)
    with pytest.raises(CheckpointError, match="tensor conv1.weight holds NaN or infinite values"):
        read_torch_state_dict(saved.getvalue())
    with pytest.raises(CheckpointError, match="tensor conv1.weight holds NaN or infinite values"):
        load_weights(model, state)

    class RunsCode:
        def __reduce__(self):
            return (os.system, ("echo this must never run",))

    pickled = io.BytesIO()
    torch.save({"weight": RunsCode()}, pickled)
    with pytest.raises(CheckpointError) as refused:
        read_torch_state_dict(pickled.getvalue())
    assert "torch.save file" in str(refused.value) and "not a torch.save file" not in str(refused.value)
    with pytest.raises(CheckpointError, match=r"not a torch.save file"):
        read_torch_state_dict(b"plain bytes, not a torch file")
