"""The loop's moving average of the weights (``jpegfix train --ema``)."""

import pytest
import torch
from torch import nn

from jpegfix.train.averaging import WeightAverage
from jpegfix.train.loop import CHECKPOINT, train
from jpegfix.train.recipes import make_recipe

from conftest import TINY_QGCN_RUN


def _net() -> nn.Module:
    return nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))


def test_the_average_follows_the_weights_with_a_ramped_decay():
    net = _net()
    start = net[0].weight.detach().clone()
    average = WeightAverage(net, decay=0.5)
    with torch.no_grad():
        net[0].weight.add_(1.0)
    net[1].num_batches_tracked.fill_(7)
    average.update(net)
    # First update: decay min(0.5, 2/11), so the average moves 9/11 of the way.
    assert torch.allclose(average.shadow["0.weight"], start + 9 / 11)
    assert average.shadow["1.num_batches_tracked"].item() == 7
    for _ in range(20):
        average.update(net)
    assert average.current_decay() == 0.5
    assert torch.allclose(average.shadow["0.weight"], start + 1.0, atol=1e-5)


def test_swapping_the_average_in_is_undone_after_the_block():
    net = _net()
    average = WeightAverage(net, decay=0.9)
    with torch.no_grad():
        net[0].weight.mul_(3.0)
    own = net[0].weight.detach().clone()
    with average.swapped_into(net):
        assert torch.equal(net[0].weight, average.shadow["0.weight"])
    assert torch.equal(net[0].weight, own)


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.5])
def test_a_decay_outside_zero_to_one_is_refused(decay):
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(_net(), decay)


def _interrupted_after(steps: int):
    calls = []

    def progress(report):
        calls.append(report)
        if len(calls) == steps:
            raise KeyboardInterrupt

    return progress


def test_the_loop_validates_and_hands_on_the_average_and_resumes_it(tmp_path, folders, tiny_qgcn):
    def recipe(run):
        return make_recipe("qgcn", TINY_QGCN_RUN, [folders[0]], [folders[1]], tmp_path / run / "cache")

    whole = train(recipe("whole"), tmp_path / "whole", val_every=3, ema=0.9)
    assert all("raw_psnr_gain" in point for point in whole.curve)
    assert whole.history[-1]["weight_average"] == 0.9
    saved = torch.load(tmp_path / "whole" / CHECKPOINT, weights_only=False)
    # The last stage ended by giving the network its average.
    average = saved["averages"]["net"]["shadow"]
    assert all(torch.equal(value, average[key]) for key, value in saved["modules"]["net"].items())

    with pytest.raises(KeyboardInterrupt):
        train(recipe("parts"), tmp_path / "parts", val_every=3, checkpoint_every=2, ema=0.9,
              on_progress=_interrupted_after(4))
    parts = train(recipe("parts"), tmp_path / "parts", resume=True, val_every=3, ema=0.9)
    resumed = torch.load(tmp_path / "parts" / CHECKPOINT, weights_only=False)
    assert [p["psnr_gain"] for p in parts.curve] == [p["psnr_gain"] for p in whole.curve]
    for key, value in saved["modules"]["net"].items():
        assert torch.allclose(value.float(), resumed["modules"]["net"][key].float(), atol=1e-6), key


def test_without_an_average_the_loop_keeps_the_raw_weights(tmp_path, folders, tiny_qgcn):
    state = train(make_recipe("qgcn", TINY_QGCN_RUN, [folders[0]], [folders[1]], tmp_path / "run" / "cache"),
                  tmp_path / "run", val_every=3)
    assert not any("raw_psnr_gain" in point for point in state.curve)
    assert torch.load(tmp_path / "run" / CHECKPOINT, weights_only=False)["averages"] == {}
