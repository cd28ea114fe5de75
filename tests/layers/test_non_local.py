"""NonLocal2d: identity at initialisation, subsampled key grid, attention rows that are distributions."""
from __future__ import annotations

import pytest
import torch

from sbcore.layers import NonLocal2d


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("subsample", [True, False])
def test_non_local_block_is_the_identity_when_new(training, subsample):
    block = NonLocal2d(16, subsample=subsample).train(training)
    x = torch.randn(2, 16, 7, 9)
    assert torch.equal(block(x), x)


def test_non_local_block_changes_its_input_once_its_output_bn_is_trained():
    block = NonLocal2d(16).eval()
    with torch.no_grad():
        block.out_bn.weight.fill_(1.0)
    x = torch.randn(2, 16, 6, 6)
    assert not torch.allclose(block(x), x)


@pytest.mark.parametrize(
    ("subsample", "size", "key_grid"),
    [(True, (8, 8), (4, 4)), (True, (7, 9), (4, 5)), (False, (7, 9), (7, 9)), (True, (1, 1), (1, 1))],
)
def test_non_local_attention_covers_the_subsampled_key_grid(subsample, size, key_grid):
    block = NonLocal2d(8, subsample=subsample)
    x = torch.randn(3, 8, *size)
    out, attention = block.forward_with_attention(x)
    assert out.shape == x.shape
    assert block.key_grid_size(*size) == key_grid
    assert attention.shape == (3, size[0] * size[1], key_grid[0] * key_grid[1])


def test_non_local_attention_rows_sum_to_one():
    block = NonLocal2d(8, inner_channels=4)
    _, attention = block.forward_with_attention(torch.randn(2, 8, 6, 5))
    assert (attention >= 0).all()
    torch.testing.assert_close(attention.sum(-1), torch.ones(2, 30))


def test_non_local_inner_width_defaults_to_half_the_channels():
    block = NonLocal2d(16)
    assert block.theta.out_channels == block.phi.out_channels == block.g.out_channels == 8
    assert NonLocal2d(16, inner_channels=3).theta.out_channels == 3
