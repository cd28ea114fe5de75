"""Bad command lines: each gets exactly one line on stderr naming the problem, status 2, no traceback,
and no process grows past 1.5 GB. Most cases share one child process (child.py); a few run as
real ``python -m sbcore`` processes."""
from __future__ import annotations

import pickle

import pytest
from PIL import Image

from sbcore.cli import main

from hardening_harness import MEMORY_LIMIT_KB, SHIRT, run_group, run_sbcore
from bad_inputs import BAD_CHECKPOINTS, encode, huge_input_checkpoint, strip_png, tiny_checkpoint, write_bad_checkpoint

M = "sb_resnet38.fmnist"
LAB = "sb_lab_resnet14.samediff"
OUT = ["--out", "{tmp}/out"]

# (argv with {placeholders}, words the one stderr line contains)
CASES: list[tuple[list[str], str]] = [
    # top level
    ([], "the following arguments are required: COMMAND"),
    (["bogus"], "invalid choice: 'bogus'"),
    # info
    (["info", "resnet38", "--input-size", "-1"], "argument --input-size: must be an integer from 8 to 1,024, got '-1'"),
    (["info", "resnet38", "--input-size", "0"], "argument --input-size: must be an integer from 8 to 1,024, got '0'"),
    (["info", "resnet38", "--input-size", "100000"], "argument --input-size: must be an integer from 8 to 1,024"),
    (["info", "resnet38", "--input-size", "big"], "argument --input-size: must be an integer from 8 to 1,024, got 'big'"),
    (["info", "resnet38", "--num-classes", "-1"], "argument --num-classes: must be an integer from 1 to 25,000"),
    (["info", "resnet38", "--num-classes", "0"], "argument --num-classes: must be an integer from 1 to 25,000"),
    (["info", "resnet38", "--num-classes", "1000000000"], "argument --num-classes: must be an integer from 1 to 25,000"),
    (["info", "resnet38", "--in-chans", "-2"], "argument --in-chans: must be an integer from 1 to 16"),
    (["info", "resnet38", "--in-chans", "0"], "argument --in-chans: must be an integer from 1 to 16"),
    (["info", "nl_resnet38", "--input-size", "512"], "nl_resnet38 at 3x512x512 with batch 1 would hold a 16,384 MB tensor"),
    (["info", "sb_resnet99"], "Unknown model 'sb_resnet99'"),
    (["info", M, "--num-classes", "5"], "--num-classes and --in-chans apply to registered architectures"),
    (["info", "sb_resnet38.nope"], "No shipped weights named 'sb_resnet38.nope'"),
    (["info"], "the following arguments are required: model"),
    (["info", "resnet38", "--bogus"], "unrecognized arguments: --bogus"),
    # card
    (["card", M, "--out", "/proc/x/card.md"], "argument --out: cannot write to /proc/x/card.md"),
    (["card", M, "--out", "{tmp}"], "is a folder; name a file"),
    (["card", "{tmp}/missing.json"], "missing.json is missing"),
    (["card", "{grid100}"], "model_kwargs.spatial_bias.grid_size must be an integer from 1 to 16, got 100"),
    (["card", "{nan_weights}"], "tensor conv1.weight holds NaN or infinite values"),
    (["card", "{deep}"], "nested too deeply"),
    (["card", "{huge_input}"], "nl_resnet38 at 1x512x512 with batch 1 would hold a 16,384 MB tensor, over the 128 MB budget"),
    # eval
    (["eval", M, "--limit", "-1"], "argument --limit: must be an integer of at least 1, got '-1'"),
    (["eval", M, "--limit", "0"], "argument --limit: must be an integer of at least 1, got '0'"),
    (["eval", M, "--workers", "-1"], "argument --workers: must be an integer from 0 to 64"),
    (["eval", M, "--workers", "1000"], "argument --workers: must be an integer from 0 to 64"),
    (["eval", M, "--dataset", "bogus"], "argument --dataset: invalid choice: 'bogus'"),
    (["eval", "{tmp}/missing.safetensors"], "missing.json is missing"),
    # maps
    (["maps", M, "{shirt}", "--out", "/proc/x"], "argument --out: cannot write to /proc/x"),
    (["maps", M, "{shirt}", "--out", "{shirt}"], "is a file, not a folder"),
    (["maps", M, "{shirt}", *OUT, "--device", "cuda:99"], "argument --device: 'cuda:99'"),
    (["maps", M, "{shirt}", *OUT, "--device", "tpu"], "argument --device: 'tpu' is not a torch device"),
    (["maps", M, "{shirt}", *OUT, "--top-k", "0"], "argument --top-k: must be an integer from 1 to 100, got '0'"),
    (["maps", M, "{shirt}", *OUT, "--top-k", "-3"], "argument --top-k: must be an integer from 1 to 100, got '-3'"),
    (["maps", M, "{shirt}", *OUT, "--query", "2", "0.5"], "argument --query: must be a number in [0, 1], got '2'"),
    (["maps", M, "{shirt}", *OUT, "--query", "nan", "0.5"], "argument --query: must be a number in [0, 1], got 'nan'"),
    (["maps", M, "{text}", *OUT], "text.png is not an image in a supported format"),
    (["maps", M, "{eps}", *OUT], "eps.png is not an image in a supported format"),
    (["maps", M, "{wide}", *OUT], "wide.png is 1600000x1 pixels; sides over 16,384 pixels are not accepted"),
    (["maps", M, "{shirt}", "{tmp}/none.png", *OUT], "none.png does not exist or is not a file"),
    (["maps", M, "{shirt}", *OUT, "--steps", "layer9.0"], "no spatial-bias branch"),
    # explain
    (["explain", M, "{shirt}", *OUT, "--steps", "0"], "argument --steps: must be an integer from 1 to 1,000, got '0'"),
    (["explain", M, "{shirt}", *OUT, "--steps", "-5"], "argument --steps: must be an integer from 1 to 1,000"),
    (["explain", M, "{shirt}", *OUT, "--smoothgrad-samples", "0"], "argument --smoothgrad-samples: must be an integer from 1 to 256"),
    (["explain", M, "{shirt}", *OUT, "--internal-batch-size", "0"], "argument --internal-batch-size: must be an integer from 1"),
    (["explain", M, "{shirt}", *OUT, "--noise-std", "-1"], "argument --noise-std: must be a number in [0, 10], got '-1'"),
    (["explain", M, "{shirt}", *OUT, "--noise-std", "inf"], "argument --noise-std: must be a number in [0, 10], got 'inf'"),
    (["explain", M, "{shirt}", *OUT, "--target", "-1"], "argument --target: must be an integer from 0 to 24,999"),
    (["explain", M, "{shirt}", *OUT, "--target", "12"], "Target class 12 does not exist"),
    (["explain", M, "{shirt}", *OUT, "--method", "bogus"], "argument --method: invalid choice: 'bogus'"),
    (["explain", M, "{shirt}", "--out", "/proc/x"], "argument --out: cannot write to /proc/x"),
    # erf
    (["erf", M, "--stage", "layer1", *OUT, "--count", "-1"], "argument --count: must be an integer from 1 to 1,024, got '-1'"),
    (["erf", M, "--stage", "layer1", *OUT, "--count", "0"], "argument --count: must be an integer from 1 to 1,024, got '0'"),
    (["erf", M, "--stage", "layer1", *OUT, "--batch-size", "0"], "argument --batch-size: must be an integer from 1 to 256"),
    (["erf", M, "--stage", "layer1", *OUT, "--input-size", "5000"], "argument --input-size: must be an integer from 8 to 1,024"),
    (["erf", M, "--stage", "layer1", *OUT, "--seed", "-1"], "argument --seed: must be an integer from 0 to 4,294,967,295"),
    (["erf", M, "--stage", "layer1", "--out", "/proc/x"], "argument --out: cannot write to /proc/x"),
    (["erf", M, *OUT], "the following arguments are required: --stage"),
    (["erf", M, "--stage", "layer7", *OUT], "Unknown stage 'layer7'"),
    (["erf", M, "--stage", "layer1", *OUT, "--count", "1024", "--input-size", "1024"], "over the 128 MB budget"),
    # bench
    (["bench", M, *OUT, "--batch-sizes", "1000000000"], "argument --batch-sizes: must be an integer from 1 to 4,096"),
    (["bench", M, *OUT, "--batch-sizes", "1", "0"], "argument --batch-sizes: must be an integer from 1 to 4,096, got '0'"),
    (["bench", M, *OUT, "--rounds", "0"], "argument --rounds: must be an integer from 1 to 100, got '0'"),
    (["bench", M, *OUT, "--min-run-time", "0"], "argument --min-run-time: must be a number in (0, 60], got '0'"),
    (["bench", M, *OUT, "--min-run-time", "nan"], "argument --min-run-time: must be a number in (0, 60], got 'nan'"),
    (["bench", M, *OUT, "--input-size", "0"], "argument --input-size: must be an integer from 8 to 1,024, got '0'"),
    (["bench", M, *OUT, "--dtype", "fp8"], "argument --dtype: invalid choice: 'fp8'"),
    (["bench", M, *OUT, "--batch-sizes", "4096", "--input-size", "1024"], "with batch 4096 would hold a"),
    (["bench", M, "--out", "/proc/x"], "argument --out: cannot write to /proc/x"),
    # ablate
    (["ablate", LAB, *OUT, "--blocks", "layer9.0"], "there is no block 'layer9.0'. Its global-context components are layer1.0"),
    (["ablate", LAB, *OUT, "--blocks", "layer1.0.non_local"], "block layer1.0 has spatial bias but no non-local block"),
    (["ablate", "nl_lab_resnet14.samediff", *OUT, "--blocks", "layer2.0"],
     "block layer2.0 has no spatial-bias branch; its non-local block is layer2.0.non_local"),
    (["ablate", "lab_resnet14.samediff", *OUT], "has no spatial-bias or non-local blocks: there is no global context"),
    (["ablate", "lab_resnet14.samediff", *OUT, "--mode", "zero", "--blocks", "layer1.0"], "no global context to switch off"),
    (["ablate", "nl_lab_resnet14.samediff", *OUT, "--stages", "1"], "has no global context in stage 1"),
    (["ablate", LAB, *OUT, "--mode", "half"], "argument --mode: invalid choice: 'half'"),
    (["ablate", LAB, *OUT, "--mode", "patch"], "argument --mode: invalid choice: 'patch'"),
    (["ablate", LAB, *OUT, "--limit", "0"], "argument --limit: must be an integer from 10 to 100,000, got '0'"),
    (["ablate", LAB, *OUT, "--blocks", "layer1.0", "--stages", "1"], "argument --stages: not allowed with argument --blocks"),
    (["ablate", LAB, *OUT, "--patch-distance", "108-94"], "argument --patch-distance: expected LOW-HIGH with 0 <= LOW <= HIGH"),
    (["ablate", LAB, *OUT, "--patch-distance", "far"], "argument --patch-distance: expected a distance range such as 94-108"),
    (["ablate", "sb_resnet38", *OUT], "sb_resnet38 records no training dataset"),
    (["ablate", M, *OUT, "--patch", "--blocks", "layer1.0", "--limit", "10"], "--patch needs the same-different lab task"),
    (["ablate", LAB, "--out", "/proc/x"], "argument --out: cannot write to /proc/x"),
    # train
    (["train", "--epochs", "-1"], "argument --epochs: must be an integer from 1 to 10,000, got '-1'"),
    (["train", "--epochs", "0"], "argument --epochs: must be an integer from 1 to 10,000, got '0'"),
    (["train", "--lr", "nan"], "argument --lr: must be a number in (0, 10], got 'nan'"),
    (["train", "--lr", "-0.1"], "argument --lr: must be a number in (0, 10], got '-0.1'"),
    (["train", "--batch-size", "0"], "argument --batch-size: must be an integer from 1 to 4,096, got '0'"),
    (["train", "--val-size", "-1"], "argument --val-size: must be an integer of at least 1, got '-1'"),
    (["train", "--limit-train", "0"], "argument --limit-train: must be an integer of at least 1, got '0'"),
    (["train", "--limit-test", "0"], "argument --limit-test: must be an integer of at least 1, got '0'"),
    (["train", "--workers", "-1"], "argument --workers: must be an integer from 0 to 64, got '-1'"),
    (["train", "--momentum", "2"], "argument --momentum: must be a number in [0, 1], got '2'"),
    (["train", "--weight-decay", "-1"], "argument --weight-decay: must be a number in [0, 1], got '-1'"),
    (["train", "--warmup-epochs", "-1"], "argument --warmup-epochs: must be a number in [0, 10000], got '-1'"),
    (["train", "--label-smoothing", "1.5"], "argument --label-smoothing: must be a number in [0, 1], got '1.5'"),
    (["train", "--image-size", "0"], "argument --image-size: must be an integer from 8 to 1,024, got '0'"),
    (["train", "--seed", "-3"], "argument --seed: must be an integer from 0 to 4,294,967,295"),
    (["train", "--dataset", "bogus"], "argument --dataset: invalid choice: 'bogus'"),
    (["train", "--output", "/proc/x"], "argument --output: cannot write to /proc/x"),
    (["train", "--model", "resnet38", "--epochs", "1", "--limit-train", "64", "--val-size", "64", "--output", "{tmp}/t1"],
     "The training split holds 64 images, fewer than one batch of 128 per process"),
    (["train", "--model", "resnet38", "--val-size", "100000000", "--output", "{tmp}/t2"],
     "--val-size 100,000,000 holds out every one of the 60,000 training images"),
    (["train", "--model", "../../etc/passwd", "--output", "{tmp}/t3"], "Unknown model '../../etc/passwd'"),
    (["train", "--model", "resnet38", "--limit-train", "200", "--val-size", "64", "--batch-size", "32", "--resume",
      "--output", "{corrupt_state}"], "train_state.pt cannot be resumed: it is not a state this trainer saved"),
    (["train", "--model", "resnet38", "--limit-train", "200", "--val-size", "64", "--batch-size", "32", "--resume",
      "--output", "{pickle_state}"], "train_state.pt cannot be resumed: it is not a state this trainer saved"),
    (["train", "--output", "{tmp}/" + "n" * 5000], "paths are limited to 4,096 bytes"),
    # output paths
    (["card", M, "--out", "/dev/full"], "cannot write /dev/full: No space left on device"),
    (["card", M, "--out", "{tmp}/" + "c" * 300 + ".md"], "each file or folder name is limited to 255 bytes"),
    (["maps", M, "{shirt}", "--out", "{tmp}/" + "m" * 300], "each file or folder name is limited to 255 bytes"),
]
IDS = [" ".join(argv).replace("{", "").replace("}", "") or "(nothing)" for argv, _ in CASES]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    """The paths the placeholders stand for: a scratch folder, bad images and bad checkpoints."""
    tmp = tmp_path_factory.mktemp("cli")
    (tmp / "text.png").write_text("not pixels")
    (tmp / "eps.png").write_bytes(encode(Image.new("L", (8, 8)), "EPS"))
    (tmp / "wide.png").write_bytes(strip_png(1_600_000, 1))
    good = tiny_checkpoint(tmp)
    broken = {case: (edit, kind) for case, edit, kind, _ in BAD_CHECKPOINTS}
    paths = {name: write_bad_checkpoint(good, tmp, case, *broken[case])
             for name, case in (("grid100", "grid_size-100"), ("nan_weights", "weights-nan"), ("deep", "json-nested-100000"))}
    paths["huge_input"] = huge_input_checkpoint(tmp)
    for name, payload in (("corrupt_state", b"not a torch file"), ("pickle_state", pickle.dumps(_RunsCode()))):
        (tmp / name).mkdir()
        (tmp / name / "train_state.pt").write_bytes(payload)
        paths[name] = tmp / name
    return {"tmp": str(tmp), "shirt": str(SHIRT), **{k: str(tmp / f"{k}.png") for k in ("text", "eps", "wide")},
            **{k: str(v) for k, v in paths.items()}}


class _RunsCode:
    """A pickle that would run a command when loaded: the trainer must refuse it without loading it."""

    def __reduce__(self):
        return (print, ("a resumed state ran code",))


def _argv(argv: list[str], files: dict[str, str]) -> list[str]:
    return [a.format(**files) for a in argv]


@pytest.fixture(scope="module")
def reports(files) -> list[dict]:
    """Every case of the table, run in one child process."""
    return run_group([("cli", _argv(argv, files)) for argv, _ in CASES])


def test_the_table_has_at_least_sixty_cases():
    assert len(CASES) >= 60 and len(set(IDS)) == len(IDS)


@pytest.mark.parametrize("index", range(len(CASES)), ids=IDS)
def test_bad_invocation_gets_one_line_and_status_2(reports, index):
    argv, words = CASES[index]
    report = reports[index]
    assert "traceback" not in report, report["traceback"]
    lines = report["stderr"].splitlines()
    assert report["status"] == 2 and len(lines) == 1, report
    command = f"sbcore {argv[0]}" if argv and argv[0] != "bogus" and "unrecognized" not in words else "sbcore"
    assert lines[0].startswith(f"{command}: error: ") and words in lines[0], lines[0]
    assert "Traceback" not in lines[0] and report["peak_kb"] < MEMORY_LIMIT_KB


def test_a_real_python_m_sbcore_process_prints_one_line_and_exits_2():
    finished = run_sbcore("info", "resnet38", "--input-size", "-1")
    assert finished.status == 2 and finished.stdout == ""
    assert finished.stderr.splitlines() == [
        "sbcore info: error: argument --input-size: must be an integer from 8 to 1,024, got '-1' (see sbcore info --help)"
    ]
    assert finished.peak_kb < MEMORY_LIMIT_KB


def test_maps_refuses_the_1x1600000_png_in_a_real_process_within_the_memory_bound(files):
    finished = run_sbcore("maps", M, files["wide"], "--out", f"{files['tmp']}/out")
    assert finished.status == 2, finished.stderr
    assert finished.stderr.splitlines() == [
        "sbcore maps: error: wide.png is 1600000x1 pixels; sides over 16,384 pixels are not accepted."
    ]
    assert finished.peak_kb < MEMORY_LIMIT_KB
    print(f"\nmaps on a 1 x 1,600,000 px PNG: peak RSS {finished.peak_kb / 1024:.0f} MB")


def test_card_refuses_a_grid_size_100_checkpoint_in_a_real_process_within_the_memory_bound(files):
    finished = run_sbcore("card", files["grid100"])
    assert finished.status == 2, finished.stderr
    assert len(finished.stderr.splitlines()) == 1
    assert "model_kwargs.spatial_bias.grid_size must be an integer from 1 to 16, got 100" in finished.stderr
    assert finished.peak_kb < MEMORY_LIMIT_KB
    print(f"\ncard on a grid_size 100 checkpoint: peak RSS {finished.peak_kb / 1024:.0f} MB")


def test_info_describes_shipped_weights_by_their_name(capsys):
    assert main(["info", "sb_resnet38.fmnist"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("sb_resnet38 at 1x28x28") and "vs resnet38: +0.055 M params" in out
