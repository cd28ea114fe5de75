import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sbcore.analysis import (
    non_local_blocks,
    predict,
    spatial_bias_blocks,
    spatial_bias_maps,
    spatial_bias_steps,
    stage_names,
)
from sbcore.errors import SBCoreError


def test_block_and_stage_names_follow_the_model(sb, sbnl, plain):
    assert stage_names(sb) == ["layer1", "layer2", "layer3"]
    assert spatial_bias_blocks(sb) == [f"layer{s}.{b}" for s in (1, 2, 3) for b in range(4)]
    assert spatial_bias_blocks(plain) == [] and non_local_blocks(plain) == []
    assert non_local_blocks(sbnl) == ["layer2.1", "layer2.3", "layer3.1", "layer3.3"]


def test_maps_of_every_sb_block_have_raw_and_input_size_shapes(sb, image):
    result = spatial_bias_maps(sb, image)
    assert list(result.spatial_bias) == spatial_bias_blocks(sb)
    assert result.attention == {}
    for block in result.spatial_bias.values():
        assert block.raw.shape == (3, 6, 6)
        assert block.upsampled.shape == (3, 28, 28)
        expected = F.interpolate(torch.from_numpy(block.raw)[None], size=(28, 28), mode="bilinear")[0].numpy()
        np.testing.assert_allclose(block.upsampled, expected, rtol=1e-6, atol=1e-6)
        for raw, stats in zip(block.raw, block.stats):
            assert stats == pytest.approx({"min": raw.min(), "max": raw.max(), "mean": raw.mean()}, rel=1e-5, abs=1e-7)


def test_maps_and_predictions_come_from_the_same_forward_as_the_model(sb, image):
    result = spatial_bias_maps(sb, image, top_k=10)
    with torch.no_grad():
        expected = sb.forward_intermediates(image).spatial_bias["layer2.1"][0].numpy()
    np.testing.assert_allclose(result.spatial_bias["layer2.1"].raw, expected, rtol=1e-6, atol=1e-6)
    assert [p.index for p in result.predictions] == [p.index for p in predict(sb, image, top_k=10)]
    probabilities = [p.probability for p in result.predictions]
    assert probabilities == sorted(probabilities, reverse=True)
    assert sum(probabilities) == pytest.approx(1.0, abs=1e-5)
    assert result.predictions[0].label == sb.metadata.class_names[result.predictions[0].index]


def test_attention_maps_are_distributions_over_the_input_that_follow_the_query(sbnl, image):
    top_left = spatial_bias_maps(sbnl, image, query=(0.1, 0.1)).attention
    bottom_right = spatial_bias_maps(sbnl, image, query=(0.9, 0.9)).attention
    assert list(top_left) == non_local_blocks(sbnl)
    for name, attention in top_left.items():
        assert attention.shape == (28, 28)
        assert attention.min() >= 0
        assert attention.sum() == pytest.approx(1.0, abs=1e-5)
        assert not np.allclose(attention, bottom_right[name])


@pytest.mark.parametrize("query", [(-0.1, 0.5), (0.5, 1.5)])
def test_query_outside_the_image_is_refused(sb, image, query):
    with pytest.raises(SBCoreError, match="query"):
        spatial_bias_maps(sb, image, query=query)


def test_maps_need_a_single_image(sb):
    with pytest.raises(SBCoreError, match=r"\(1, C, H, W\)"):
        spatial_bias_maps(sb, torch.zeros(2, 1, 28, 28))


def test_steps_have_the_branch_shapes_and_match_the_maps(sb, image):
    steps = spatial_bias_steps(sb, image, "layer2.0")
    assert [s.shape for s in steps] == [(32, 28, 28), (5, 28, 28), (5, 6, 6), (3, 6, 6), (3, 14, 14)]
    assert all(s.maps.shape == s.shape for s in steps)
    assert all(s.title and s.explanation.endswith(".") for s in steps)
    np.testing.assert_allclose(steps[3].maps, spatial_bias_maps(sb, image).spatial_bias["layer2.0"].raw, atol=1e-6)
    pooled = F.adaptive_avg_pool2d(torch.from_numpy(steps[1].maps), 6).numpy()
    np.testing.assert_allclose(steps[2].maps, pooled, atol=1e-6)


@pytest.mark.parametrize("block", ["layer9.0", "layer1.7"])
def test_steps_of_an_unknown_block_are_refused(sb, image, block):
    with pytest.raises(SBCoreError, match="spatial-bias"):
        spatial_bias_steps(sb, image, block)


def test_steps_of_a_model_without_spatial_bias_are_refused(plain, image):
    with pytest.raises(SBCoreError, match="no spatial bias"):
        spatial_bias_steps(plain, image, "layer1.0")
