"""The MLP has exactly the structure the quantizer reads: Linear → ReLU → … → Linear."""

import pytest
import torch
from torch import nn

from ctnn.models import MLP


def test_shapes_and_layers():
    net = MLP([64, 32, 16, 10])
    assert isinstance(net.layers, nn.ModuleList)
    assert [type(m) for m in net.layers] == [nn.Linear] * 3
    assert [(m.in_features, m.out_features) for m in net.layers] == [(64, 32), (32, 16), (16, 10)]
    assert net(torch.zeros(7, 64)).shape == (7, 10)
    assert net.get_config() == {"sizes": [64, 32, 16, 10]}


def test_forward_is_relu_between_linears_and_none_after_last():
    torch.manual_seed(0)
    net = MLP([5, 4, 3])
    x = torch.randn(9, 5)
    l0, l1 = net.layers
    expected = l1(torch.relu(l0(x)))
    torch.testing.assert_close(net(x), expected, rtol=0, atol=0)
    assert (net(x) < 0).any()  # logits: no activation after the last layer


@pytest.mark.parametrize("sizes", [[], [3], [3, 0]])
def test_bad_sizes(sizes):
    with pytest.raises(ValueError, match="MLP needs"):
        MLP(sizes)


def test_interval_logits_bound_every_input_of_the_box():
    torch.manual_seed(0)
    net = MLP([8, 16, 12, 5])
    lo = torch.randn(4, 8)
    hi = lo + torch.rand(4, 8) * 0.5
    with torch.no_grad():
        low, up = net.interval_logits(lo, hi)
    assert low.shape == up.shape == (4, 5) and bool((low <= up).all())
    x = lo[:, None] + torch.rand(4, 2000, 8) * (hi - lo)[:, None]
    with torch.no_grad():
        y = net(x)
        point = net.interval_logits(lo, lo)
    assert bool((y >= low[:, None] - 1e-5).all()) and bool((y <= up[:, None] + 1e-5).all())
    # a box of one point bounds exactly its logits
    assert torch.allclose(point[0], net(lo), atol=1e-5) and torch.allclose(point[1], net(lo), atol=1e-5)
