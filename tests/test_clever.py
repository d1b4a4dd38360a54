"""CLEVER against exact values on a linear classifier; repeatability; bad settings."""

import math

import pytest
import torch
from torch import nn

from advfit.errors import ConfigError
from advfit.metrics.clever import Clever, random_ball


class Linear(nn.Module):
    def __init__(self, dims: int, classes: int) -> None:
        super().__init__()
        self.num_classes = classes
        self.fc = nn.Linear(dims, classes)

    def forward(self, x):
        return self.fc(x.flatten(1))


def test_clever_on_a_linear_classifier_equals_the_exact_margin():
    torch.manual_seed(0)
    net = Linear(64, 5)
    x = torch.full((3, 1, 8, 8), 0.5) + 0.05 * torch.randn(3, 1, 8, 8)
    # R small enough that the ball stays inside [0, 1]: no clipping, the gradient is constant.
    radius = 0.4
    scores = Clever(nb_batches=5, batch_size=10, radius=radius, pool_factor=2)(net, x)
    w, b = net.fc.weight.detach().double(), net.fc.bias.detach().double()
    for i in range(3):
        f = w @ x[i].flatten().double() + b
        c = int(f.argmax())
        exact = min(
            min(float((f[c] - f[j]) / (w[c] - w[j]).norm()), radius) for j in range(5) if j != c
        )
        assert scores[i].item() == pytest.approx(exact, rel=0.02)


def test_random_ball_stays_inside_and_fills_it():
    g = torch.Generator().manual_seed(0)
    for norm, measure in (
        (2.0, lambda p: p.norm(dim=1)),
        (math.inf, lambda p: p.abs().amax(1)),
        (1.0, lambda p: p.abs().sum(1)),
    ):
        points = random_ball(4000, 20, 3.0, norm, g)
        radii = measure(points)
        assert radii.max() <= 3.0 * (1 + 1e-6)
        # Uniform in a 20-dimensional ball: P(r < 0.9 R) = 0.9^20 ~ 0.12.
        if norm != math.inf:
            assert (radii < 2.7).float().mean().item() == pytest.approx(0.9**20, abs=0.03)


@pytest.fixture(scope="module")
def small_lenet():
    from advfit.models import LeNet

    torch.manual_seed(0)
    net = LeNet((1, 28, 28), 10).eval()
    x = torch.rand(20, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    return net, x


def test_same_seed_same_clever_another_seed_close(small_lenet):
    net, x = small_lenet
    params = {"nb_batches": 8, "batch_size": 10, "pool_factor": 4}
    a = Clever(**params, seed=1)(net, x[:6])
    b = Clever(**params, seed=1)(net, x[:6])
    c = Clever(**params, seed=2)(net, x[:6])
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert c.mean().item() == pytest.approx(a.mean().item(), rel=0.1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"norm": 3}, "clever.norm=3 is invalid"),
        ({"radius": 0}, "clever.radius=0 is invalid"),
        ({"nb_batches": 0}, "clever.nb_batches=0 is invalid"),
        ({"batch_size": 0}, "clever.batch_size=0 is invalid"),
        ({"outputs": "softmax"}, "clever.outputs='softmax' is invalid"),
    ],
)
def test_bad_clever_settings_name_the_value(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        Clever(**kwargs)


def test_nan_gradients_are_an_error():
    class Broken(Linear):
        def forward(self, x):
            return super().forward(x) * torch.tensor(float("nan"))

    with pytest.raises(ValueError, match="NaN"):
        Clever(nb_batches=2, batch_size=2, pool_factor=1)(Broken(4, 3), torch.rand(1, 1, 2, 2))
