"""Robustness scores against IBM ART's implementations as independent oracles."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from advfit.data import FashionMNISTDataModule, to_unit_range
from advfit.errors import ConfigError
from advfit.metrics.robustness import empirical_robustness, loss_sensitivity, parse_norm
from advfit.models import LeNet


@pytest.fixture(scope="module")
def trained(fmnist_dir):
    """A LeNet trained briefly on real Fashion-MNIST, and 40 test images."""
    data = FashionMNISTDataModule(data_dir=str(fmnist_dir), download=False, train_subset=3000)
    data.setup()
    torch.manual_seed(0)
    net = LeNet((1, 28, 28), 10)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    for _ in range(2):
        for x, y in data.train_dataloader():
            opt.zero_grad()
            F.cross_entropy(net(x), y).backward()
            opt.step()
    net.eval()
    return net, to_unit_range(data.x_test[:40]), data.y_test[:40]


def art_classifier(net):
    from art.estimators.classification import PyTorchClassifier

    return PyTorchClassifier(
        model=net,
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=(1, 28, 28),
        nb_classes=10,
        clip_values=(0.0, 1.0),
    )


def test_loss_sensitivity_equals_art_one_image_at_a_time(trained):
    from art.metrics import loss_sensitivity as art_loss_sensitivity

    net, x, y = trained
    classifier = art_classifier(net)
    onehot = np.eye(10)[y.numpy()]
    oracle = np.mean(
        [
            art_loss_sensitivity(classifier, x[i : i + 1].numpy(), onehot[i : i + 1])
            for i in range(len(x))
        ]
    )
    for batch_size in (1, 7, 40):
        assert loss_sensitivity(net, x, y, batch_size=batch_size) == pytest.approx(oracle, rel=1e-5)


def test_empirical_robustness_equals_art(trained):
    from art.metrics import empirical_robustness as art_empirical_robustness

    net, x, _ = trained
    # ART adds eps_step until the float sum exceeds eps: with step 0.1 and eps 0.35 it tries
    # 0.1, 0.2 and 0.1+0.1+0.1, the same grid as ours up to eps_max 0.3.
    oracle = art_empirical_robustness(
        art_classifier(net),
        x.numpy(),
        "fgsm",
        attack_params={"eps_step": 0.1, "eps": 0.35, "norm": np.inf},
    )
    ours = empirical_robustness(net, x, norm="inf", eps_step=0.1, eps_max=0.3, batch_size=16)
    assert oracle > 0
    assert ours == pytest.approx(oracle, rel=1e-5)


@pytest.mark.parametrize("norm", ["3", "l2", 0])
def test_bad_norms_name_the_value(norm):
    with pytest.raises(ConfigError, match="accepted are 1, 2 and inf"):
        parse_norm(norm)


def test_empirical_robustness_classifies_only_the_images_not_flipped_yet(trained):
    """One forward pass gives the prediction and the gradient; each eps then classifies only
    the images that earlier eps did not flip (ART classifies the whole batch every time)."""
    net, x, _ = trained
    # Which images each eps flips, computed on the whole batch every time (ART's way).
    xg = x.clone().requires_grad_(True)
    logits = net(xg)
    pred = logits.argmax(1)
    (grad,) = torch.autograd.grad(F.cross_entropy(logits, pred, reduction="sum"), xg)
    with torch.no_grad():
        flipped_by = [
            net((x + eps * grad.sign()).clamp(0, 1)).argmax(1) != pred for eps in (0.1, 0.2, 0.3)
        ]
    unflipped = torch.ones(len(x), dtype=torch.bool)
    expected = [len(x)]  # the forward pass of the gradient
    for flips in flipped_by:
        if not unflipped.any():
            break
        expected.append(int(unflipped.sum()))
        unflipped &= ~flips
    assert len(x) > expected[-1] > 0  # some flip at 0.1, some survive: the test can tell

    sizes = []
    hook = net.register_forward_hook(lambda module, args, out: sizes.append(len(args[0])))
    try:
        value = empirical_robustness(net, x, eps_step=0.1, eps_max=0.3, batch_size=len(x))
    finally:
        hook.remove()
    assert sizes == expected
    assert value == pytest.approx(
        empirical_robustness(net, x, eps_step=0.1, eps_max=0.3, batch_size=7), rel=1e-6
    )
