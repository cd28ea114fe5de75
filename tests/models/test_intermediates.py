"""ResNet.forward_intermediates: named maps and attention, equal to the plain forward, and thread-safe."""
from __future__ import annotations

import threading

import pytest
import torch

from sbcore.models.resnet import _query_attention


def test_intermediates_name_every_block_and_match_the_plain_forward(make_model):
    model = make_model("sbnl_resnet38")
    x = torch.randn(2, 1, 28, 28)
    out = model.forward_intermediates(x, query=(0.25, 0.75))
    torch.testing.assert_close(out.logits, model(x))
    assert list(out.stages) == ["layer1", "layer2", "layer3"]
    assert out.stages["layer3"].shape == (2, 256, 7, 7)
    assert sorted(out.spatial_bias) == sorted(f"layer{s}.{b}" for s in (1, 2, 3) for b in range(4))
    assert sorted(out.attention) == ["layer2.1", "layer2.3", "layer3.1", "layer3.3"]
    assert out.attention["layer2.1"].shape == (2, 14, 14)  # CIFAR non-local blocks do not subsample
    torch.testing.assert_close(out.attention["layer3.3"].sum(dim=(1, 2)), torch.ones(2))


def test_attention_is_the_row_of_the_query_position(make_model):
    model = make_model("nl_resnet50", num_classes=4)
    x = torch.randn(1, 3, 64, 64)
    out = model.forward_intermediates(x, query=(0.0, 1.0))  # top-right corner
    block_input = model.layer2[0](model.layer1(model.forward_stem(x)))
    detailed = model.layer2[1].forward_detailed(block_input)
    assert detailed.attention.shape == (1, 64, 16)  # 8x8 queries, 4x4 subsampled keys
    torch.testing.assert_close(out.attention["layer2.1"], detailed.attention[:, 7].reshape(1, 4, 4))


def test_query_outside_the_grid_is_clamped_to_the_last_row_and_column():
    attention = torch.arange(2 * 6 * 4, dtype=torch.float32).reshape(2, 6, 4)  # 2x3 queries, 2x2 keys
    picked = _query_attention(attention, ((2, 3), (2, 2)), (1.0, 1.0))
    torch.testing.assert_close(picked, attention[:, 5].reshape(2, 2, 2))


def test_forward_intermediates_is_safe_from_two_threads(make_model):
    model = make_model("sbnl_resnet38")
    inputs = [torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(seed)) for seed in (1, 2)]
    queries = [(0.1, 0.2), (0.9, 0.6)]
    with torch.no_grad():
        expected = [model.forward_intermediates(x, q) for x, q in zip(inputs, queries)]
    assert not torch.allclose(expected[0].spatial_bias["layer2.0"], expected[1].spatial_bias["layer2.0"])
    failures: list[str] = []
    start = threading.Barrier(2)

    def worker(index: int) -> None:
        start.wait()
        for iteration in range(15):
            with torch.no_grad():
                got = model.forward_intermediates(inputs[index], queries[index])
            want = expected[index]
            pairs = [("logits", got.logits, want.logits)]
            pairs += [(f"sb {k}", got.spatial_bias[k], v) for k, v in want.spatial_bias.items()]
            pairs += [(f"sb up {k}", got.spatial_bias_upsampled[k], v) for k, v in want.spatial_bias_upsampled.items()]
            pairs += [(f"nl {k}", got.attention[k], v) for k, v in want.attention.items()]
            for label, a, b in pairs:
                if a.shape != b.shape or not torch.allclose(a, b, rtol=1e-5, atol=1e-6):
                    failures.append(f"thread {index} iteration {iteration}: {label} differs")

    threads = [threading.Thread(target=worker, args=(i,)) for i in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures[:5]
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


@pytest.mark.parametrize("name", ["resnet38", "resnet18"])
def test_plain_models_return_no_maps(make_model, name):
    size = 28 if name == "resnet38" else 64
    chans = 1 if name == "resnet38" else 3
    out = make_model(name).forward_intermediates(torch.randn(1, chans, size, size))
    assert out.spatial_bias == {} and out.attention == {}
    assert len(out.stages) == (3 if name == "resnet38" else 4)
