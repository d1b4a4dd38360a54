"""The attack layer: advertorch's import fix, the (model, x, y) -> x_adv contract, distances."""

import pytest
import torch

from advfit.attacks import Attack, frozen
from advfit.attacks.advertorch_compat import zero_gradients
from advfit.errors import ConfigError
from advfit.metrics import perturbation_norms, summarize_norms
from advfit.models import LeNet


def test_advertorch_imports_and_zero_gradients_behaves_like_torchs_old_one():
    from advfit.attacks.advertorch_compat import attacks

    assert hasattr(attacks, "FABAttack")  # the module whose import used to fail
    a, b = torch.ones(3, requires_grad=True), torch.ones(2, requires_grad=True)
    (a.sum() * 2 + b.sum()).backward()
    zero_gradients([a, b])
    assert torch.equal(a.grad, torch.zeros(3)) and torch.equal(b.grad, torch.zeros(2))


@pytest.fixture
def net():
    torch.manual_seed(0)
    return LeNet((1, 28, 28), 10)


def fgsm(**kw):
    return Attack(
        "fgsm",
        "advertorch.attacks.GradientSignAttack",
        eps=kw.pop("eps", 0.3),
        clip_min=0.0,
        clip_max=1.0,
        **kw,
    )


def pgd(**kw):
    return Attack(
        "pgd",
        "advertorch.attacks.LinfPGDAttack",
        eps=0.3,
        eps_iter=0.1,
        nb_iter=10,
        rand_init=True,
        clip_min=0.0,
        clip_max=1.0,
        **kw,
    )


@pytest.mark.parametrize("make", [fgsm, pgd], ids=["fgsm", "pgd"])
def test_linf_attacks_stay_in_the_ball_and_the_pixel_range(net, make):
    torch.manual_seed(1)
    x, y = torch.rand(64, 1, 28, 28), torch.randint(0, 10, (64,))
    x_adv = make(batch_size=20)(net, x, y)
    assert x_adv.shape == x.shape
    assert (x_adv - x).abs().max() <= 0.3 + 1e-6
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert (x_adv != x).any()


@pytest.mark.parametrize("make", [fgsm, pgd], ids=["fgsm", "pgd"])
def test_fgsm_and_pgd_do_not_depend_on_the_batch_size(net, make):
    """Why their batch sizes are result-neutral (config.RESULT_NEUTRAL); PGD with its
    random start drawn from the seed."""
    x, y = torch.rand(64, 1, 28, 28), torch.randint(0, 10, (64,))
    crafted = []
    for batch_size in (64, 20, 7):
        torch.manual_seed(3)
        crafted.append(make(batch_size=batch_size)(net.eval(), x, y))
    for other in crafted[1:]:
        assert torch.allclose(other, crafted[0], atol=1e-6)


def test_attacks_freeze_parameters_and_restore_the_models_state(net):
    net.train()
    net.features[0].weight.requires_grad_(False)  # a mixed state must come back as it was
    x, y = torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))
    seen = []
    net.register_forward_hook(
        lambda m, i, o: seen.append((m.training, [p.requires_grad for p in m.parameters()]))
    )
    fgsm()(net, x, y)
    assert seen and all(not training and not any(flags) for training, flags in seen)
    assert net.training
    assert [p.requires_grad for p in net.parameters()] == [False] + [True] * 9
    assert all(p.grad is None for p in net.parameters())


def test_frozen_restores_on_error(net):
    with pytest.raises(RuntimeError), frozen(net):
        raise RuntimeError
    assert net.training and all(p.requires_grad for p in net.parameters())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"eps": -0.1}, r"attack.fgsm.eps=-0.1 is invalid"),
        ({"nb_iter": 3}, r"nb_iter not accepted"),
        ({"images_per_pass": 0}, r"attack.fgsm.images_per_pass=0 is invalid"),
    ],
)
def test_bad_attack_parameters_name_the_value(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        fgsm(**kwargs)


def test_unknown_attack_class():
    with pytest.raises(ConfigError, match="advertorch.attacks.Nope"):
        Attack("x", "advertorch.attacks.Nope")


def test_distances_on_hand_built_perturbations():
    x = torch.zeros(3, 3, 4, 4)
    adv = x.clone()
    adv[0, 0, 0, 0] = 0.5  # one element of one pixel
    adv[0, 1, 0, 0] = -0.5  # the same pixel, another channel
    adv[0, 2, 1, 1] = 0.1  # another pixel
    adv[1] = 0.2  # every element
    norms = perturbation_norms(x, adv)
    assert norms["l0"].tolist() == [2, 16, 0]
    assert norms["l0_elements"].tolist() == [3, 48, 0]
    assert torch.allclose(
        norms["l2"], torch.tensor([(0.25 + 0.25 + 0.01) ** 0.5, (48 * 0.04) ** 0.5, 0.0])
    )
    assert torch.allclose(norms["linf"], torch.tensor([0.5, 0.2, 0.0]))
    summary = summarize_norms(norms, torch.tensor([True, True, False]))
    assert summary["l0_mean"] == 9 and summary["l0_std"] == 7  # population std of (2, 16)
    assert summary["linf_mean"] == pytest.approx(0.35)
    assert all(v != v for v in summarize_norms(norms, torch.zeros(3, dtype=torch.bool)).values())


class _Counting(torch.nn.Module):
    """A network that counts its forward passes (one per Carlini-Wagner iteration)."""

    def __init__(self, net):
        super().__init__()
        self.net, self.calls = net, 0
        self.num_classes = net.num_classes

    def forward(self, x):
        self.calls += 1
        return self.net(x)


def _briefly_trained(net) -> tuple[torch.Tensor, torch.Tensor]:
    """48 images from ten noisy prototypes and ``net`` trained on them for a few steps (some
    images lie near a boundary, others far from it); the images and their logits."""
    torch.manual_seed(2)
    prototypes = torch.rand(10, 1, 28, 28)
    labels = torch.arange(48) % 10
    x = (prototypes[labels] + 0.3 * torch.randn(48, 1, 28, 28)).clamp(0, 1)
    optimizer = torch.optim.Adam(net.parameters(), lr=0.01)
    for _ in range(30):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(net.train()(x), labels).backward()
        optimizer.step()
    with torch.no_grad():
        logits = net.eval()(x)
    return x, logits


@pytest.mark.parametrize(
    "params",
    [
        dict(binary_search_steps=3, max_iterations=20, initial_const=0.001),
        # 10 steps: advertorch's last step repeats with the upper bounds as constants.
        dict(
            binary_search_steps=10,
            max_iterations=10,
            initial_const=1e-4,
            confidence=0.5,
            learning_rate=0.01,
        ),
        dict(binary_search_steps=2, max_iterations=30, initial_const=0.01, targeted=True),
    ],
    ids=["untargeted", "repeat-confidence", "targeted"],
)
def test_carlini_wagner_equals_advertorchs_bit_for_bit(net, params):
    """advfit's Carlini-Wagner (no device read per iteration) crafts advertorch's examples:
    same iterations (early aborts included), same images, on a mix of images it fools and
    images it cannot fool at these sizes."""
    from advfit.attacks.advertorch_compat import attacks
    from advfit.attacks.cw import CarliniWagnerL2Attack

    x, logits = _briefly_trained(net)
    y = torch.randint(0, 10, (48,)) if params.get("targeted") else logits.argmax(1)
    crafted, calls = [], []
    for cls in (attacks.CarliniWagnerL2Attack, CarliniWagnerL2Attack):
        counting = _Counting(net)
        with frozen(counting):
            adv = cls(counting, num_classes=10, **{"learning_rate": 0.05, **params}).perturb(x, y)
        crafted.append(adv)
        calls.append(counting.calls)
    assert calls[0] == calls[1]
    assert calls[0] < params["binary_search_steps"] * params["max_iterations"]  # aborts early
    assert torch.equal(crafted[0], crafted[1])
    changed = (crafted[1] != x).flatten(1).any(1).float().mean()
    assert 0 < changed < 1, changed


def test_carlini_wagner_in_passes_crafts_the_same_examples(net):
    """images_per_pass splits the network's passes, not the attack's batch: the loss whose
    early abort watches all 48 sources is the same, so are the examples, bit for bit (for
    passes of at least 16 images: see advfit.attacks.base.InPasses)."""
    x, logits = _briefly_trained(net)
    y = logits.argmax(1)
    settings = dict(
        binary_search_steps=3, max_iterations=20, initial_const=0.001, learning_rate=0.05
    )
    crafted, calls = [], []
    for images_per_pass in (None, 16):
        attack = Attack(
            "cw",
            "advfit.attacks.cw.CarliniWagnerL2Attack",
            batch_size=48,
            images_per_pass=images_per_pass,
            **settings,
        )
        counting = _Counting(net)
        crafted.append(attack(counting, x, y))
        calls.append(counting.calls)
    # Passes of 16 images: three network calls where the whole batch took one.
    assert calls[1] == 3 * calls[0]
    assert calls[0] < 3 * 20  # aborts early
    assert torch.equal(crafted[0], crafted[1])
    assert 0 < (crafted[1] != x).flatten(1).any(1).float().mean() < 1


def test_passes_split_only_on_the_cpu():
    """On a GPU one pass of a whole Carlini-Wagner batch costs about what a pass of 100 does:
    the network gets the whole batch there (a meta-device tensor stands in for a GPU's)."""
    from advfit.attacks.base import InPasses

    seen = []

    class Sizes(torch.nn.Module):
        def forward(self, x):
            seen.append(len(x))
            return x.flatten(1)[:, :2]

    InPasses(Sizes(), 16)(torch.zeros(40, 1, 2, 2))
    assert seen == [14, 13, 13]
    seen.clear()
    InPasses(Sizes(), 16)(torch.zeros(40, 1, 2, 2, device="meta"))
    assert seen == [40]
