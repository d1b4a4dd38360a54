import pytest
import torch
import torch.nn.functional as F

from advfit.errors import ConfigError
from advfit.models import LeNet


@pytest.mark.parametrize(
    "shape",
    [(1, 28, 28), (1, 32, 32), (3, 32, 32), (1, 96, 96), (3, 96, 96), (2, 40, 50), (4, 20, 24)],
    ids=["mnist", "cifar10-gray", "cifar10", "stl10-gray", "stl10", "custom", "custom-small"],
)
def test_lenet_output_shape(shape):
    net = LeNet(shape, num_classes=7)
    out = net(torch.rand(5, *shape))
    assert out.shape == (5, 7)
    assert torch.isfinite(out).all()


def test_lenet_keeps_lecun_layer_sizes():
    net = LeNet((1, 32, 32), num_classes=10)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert [c.out_channels for c in convs] == [6, 16]
    assert [c.kernel_size for c in convs] == [(5, 5), (5, 5)]
    assert [(m.in_features, m.out_features) for m in linears] == [(400, 120), (120, 84), (84, 10)]


def test_lenet_rejects_unknown_activation():
    with pytest.raises(ValueError, match="activation='gelu'"):
        LeNet((1, 28, 28), 10, activation="gelu")


def test_the_classifiers_epoch_loss_is_nan_when_a_step_loss_is_nan():
    """The epoch's loss keeps a NaN step instead of dropping it with a warning (as torchmetrics'
    metrics do unless their NaN check is off), and the accuracy takes the labels unchecked."""
    from advfit.models import Classifier

    torch.manual_seed(0)
    model = Classifier(LeNet((1, 28, 28), 10), lambda params: torch.optim.SGD(params, lr=0.1))
    y = torch.arange(8) % 10
    model._step((torch.rand(8, 1, 28, 28), y), "train")
    finite = model._split_metrics("train").compute()["loss"]
    assert torch.isfinite(finite)
    model._step((torch.full((8, 1, 28, 28), float("nan")), y), "train")
    values = model._split_metrics("train").compute()
    assert torch.isnan(values["loss"])
    assert 0.0 <= values["acc"].item() <= 1.0


def test_the_classifiers_epoch_loss_and_accuracy_are_torchmetrics_weighted_ones():
    """With batches of unequal size (32, 32, 7 and 250, 250, 17) the epoch's loss is the mean
    over its images, bit for bit as torchmetrics' weighted MeanMetric computes it, not the
    mean of the batches' losses (what MeanMetric(nan_strategy="disable") gave: it drops the
    weights); the accuracy is torchmetrics' micro MulticlassAccuracy bit for bit."""
    from torchmetrics import MeanMetric
    from torchmetrics.classification import MulticlassAccuracy

    from advfit.models import Classifier

    torch.manual_seed(0)
    model = Classifier(LeNet((1, 28, 28), 10), lambda params: torch.optim.SGD(params, lr=0.1))
    weighted = {"train": MeanMetric(nan_strategy="warn"), "val": MeanMetric(nan_strategy="warn")}
    accuracy = {split: MulticlassAccuracy(num_classes=10, average="micro") for split in weighted}
    unweighted = []
    for split in ("train", "val"):
        for n in (32, 32, 7) if split == "train" else (250, 250, 17):
            x, y = torch.rand(n, 1, 28, 28), torch.randint(0, 10, (n,))
            model._step((x, y), split)
            with torch.no_grad():
                logits = model(x)
            loss = F.cross_entropy(logits, y)
            weighted[split].update(loss, weight=n)
            accuracy[split].update(logits, y)
            unweighted.append(loss)
    for split in ("train", "val"):
        values = model._split_metrics(split).compute()
        assert torch.equal(values["loss"], weighted[split].compute()), split
        assert torch.equal(values["acc"], accuracy[split].compute()), split
        assert values["acc"].dtype == torch.float32
    val_unweighted = torch.stack(unweighted[3:]).mean()
    assert not torch.equal(
        model._split_metrics("val").compute()["loss"], val_unweighted
    )  # told apart
    assert model.train_metrics.images == 71 and model.val_metrics.images == 517
    assert 0 < model.val_metrics.correct < 517  # the accuracy counts some, not all
    with pytest.warns(UserWarning, match="self.log"):  # no Trainer: logging is skipped
        model.on_validation_epoch_end()
    assert model.val_metrics.images == 0 and model.train_metrics.images == 71


def test_the_classifiers_accuracy_counts_the_predicted_classes():
    """Against an oracle: logits whose largest entry is at a chosen class."""
    from advfit.models.classifier import EpochTotals

    totals = EpochTotals()
    y = torch.tensor([0, 1, 2, 3, 4])
    predicted = torch.tensor([0, 1, 0, 3, 0])  # 3 of 5 right
    totals.update(torch.tensor(2.0), F.one_hot(predicted, 10).float(), y)
    totals.update(torch.tensor(4.0), F.one_hot(torch.tensor([7, 8, 9]), 10).float(), y[:3])
    values = totals.compute()
    assert values["acc"].item() == pytest.approx(3 / 8)
    assert values["loss"].item() == pytest.approx((2.0 * 5 + 4.0 * 3) / 8)


def test_the_epoch_metrics_cost_seven_operations_a_step():
    """On a GPU each operation is a kernel, and LeNet's step is a few dozen small ones: the
    metrics' update adds seven (torchmetrics' SumMetric and MulticlassAccuracy added 18)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    from advfit.models.classifier import EpochTotals

    views = {"view", "detach", "alias", "_reshape_alias", "unsqueeze", "squeeze", "expand"}
    made = []

    class Watch(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func.overloadpacket.__name__ not in views:
                made.append(func.overloadpacket.__name__)
            return func(*args, **(kwargs or {}))

    totals = EpochTotals()
    loss, logits, y = torch.tensor(2.3), torch.randn(32, 10), torch.randint(0, 10, (32,))
    with Watch():
        totals.update(loss, logits, y)
    assert len(made) == 7, made


def test_a_training_step_makes_no_tensor_from_host_data():
    """On a GPU a tensor made from a Python number is copied to the device and the step waits
    for it (a synchronous copy). The step's metric updates take device tensors only: no
    tensor is made from host data (``lift_fresh``) in a step."""
    from torch.utils._python_dispatch import TorchDispatchMode

    from advfit.models import Classifier

    made = []

    class Watch(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            made.append(func.overloadpacket.__name__)
            return func(*args, **(kwargs or {}))

    model = Classifier(LeNet((1, 28, 28), 10), lambda params: torch.optim.SGD(params, lr=0.1))
    x, y = torch.rand(32, 1, 28, 28), torch.randint(0, 10, (32,))
    with Watch():
        model._step((x, y), "train").backward()
    assert "convolution" in made and "lift_fresh" not in made, sorted(set(made))


def _classifier(optimizer, **kwargs):
    from advfit.models import Classifier

    return Classifier(LeNet((1, 28, 28), 10), optimizer, **kwargs)


def test_the_optimizer_is_fused_on_a_gpu_only_and_never_against_the_config():
    """The decision configure_optimizers takes: fused on CUDA when the optimizer has a fused
    implementation and the config does not choose; the CPU's optimizer stays the default."""
    from functools import partial

    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    adam = partial(torch.optim.Adam, lr=1e-3)
    assert _classifier(adam)._fuse_on(cuda)
    assert not _classifier(adam)._fuse_on(cpu)
    assert not _classifier(adam, fused_on_gpu=False)._fuse_on(cuda)
    assert not _classifier(partial(torch.optim.Adam, lr=1e-3, fused=False))._fuse_on(cuda)
    assert not _classifier(partial(torch.optim.RMSprop, lr=1e-3))._fuse_on(cuda)  # none fused
    assert not _classifier(lambda params: torch.optim.Adam(params))._fuse_on(cuda)  # no 'fused'
    optimizer = _classifier(adam).configure_optimizers()  # on the CPU
    assert isinstance(optimizer, torch.optim.Adam) and not optimizer.defaults["fused"]


def test_the_configs_adam_is_fused_unless_overridden(tmp_path):
    """Fused on a GPU by default, without a config key (a run directory of an earlier version
    must still match the config: no new key in the resolved model config)."""
    from hydra.utils import instantiate

    from tests.test_configs import compose_cfg

    cuda = torch.device("cuda")
    for overrides, fused in (
        ([], True),
        (["+model.fused_on_gpu=false"], False),
        (["+model.optimizer.fused=false"], False),
    ):
        cfg = compose_cfg(overrides, tmp_path)
        if not overrides:
            assert "fused_on_gpu" not in cfg.model and "fused" not in cfg.model.optimizer
        net = instantiate(cfg.model.net, input_shape=[1, 28, 28], num_classes=10)
        assert instantiate(cfg.model, net=net)._fuse_on(cuda) is fused, overrides


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_a_gpu_the_optimizer_is_fused_and_steps_like_the_default():
    from functools import partial

    torch.manual_seed(0)
    model = _classifier(partial(torch.optim.Adam, lr=1e-3)).cuda()
    reference = _classifier(partial(torch.optim.Adam, lr=1e-3)).cuda()
    reference.load_state_dict(model.state_dict())
    fused = model.configure_optimizers()
    assert fused.defaults["fused"] is True
    default = torch.optim.Adam(reference.parameters(), lr=1e-3)
    x, y = torch.rand(32, 1, 28, 28, device="cuda"), torch.arange(32, device="cuda") % 10
    for m, opt in ((model, fused), (reference, default)):
        for _ in range(3):
            opt.zero_grad()
            m._step((x, y), "train").backward()
            opt.step()
    for a, b in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_a_gpu_a_training_step_never_waits_for_the_device():
    """With ten jobs sharing a GPU, a step that reads a value back waits for the other jobs'
    kernels too. After the first step (the epoch's order is copied to the device and the
    optimizer's state made then), a training step -- the batch's gather and conversion,
    forward, loss, epoch totals, backward, fused Adam -- makes no synchronising call (CUDA's
    sync debug mode raises on one), and the epoch's totals agree with the steps' losses."""
    from functools import partial

    from advfit.data import TensorBatches

    torch.manual_seed(0)
    model = _classifier(partial(torch.optim.Adam, lr=1e-3)).cuda()
    optimizer = model.configure_optimizers()
    x = torch.randint(0, 256, (128, 1, 28, 28), dtype=torch.uint8, device="cuda")
    y = torch.randint(0, 10, (128,), device="cuda")
    batches = iter(TensorBatches(x, y, 32, shuffle=True))
    losses = []
    for i in range(4):
        torch.cuda.set_sync_debug_mode("error" if i else "default")
        try:
            optimizer.zero_grad()
            loss = model._step(next(batches), "train")
            loss.backward()
            optimizer.step()
        finally:
            torch.cuda.set_sync_debug_mode("default")
        losses.append(loss.item())
    values = model._split_metrics("train").compute()
    assert values["loss"].item() == pytest.approx(sum(losses) / len(losses), rel=1e-6)
    assert model.train_metrics.images.item() == 128
    assert 0.0 <= values["acc"].item() <= 1.0


def test_the_keras_initialisation_is_glorot_uniform_with_zero_biases():
    torch.manual_seed(0)
    net = LeNet((1, 32, 32), 10, init="keras")
    layers = [m for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert len(layers) == 5
    for layer in layers:
        w = layer.weight.detach()
        receptive = w[0, 0].numel() if w.ndim == 4 else 1
        fan_in, fan_out = w.shape[1] * receptive, w.shape[0] * receptive
        expected = 2 / (fan_in + fan_out)  # Glorot: U(-a, a), a = sqrt(6 / (in + out))
        # The sample variance of n uniform draws has a relative standard error of about
        # sqrt(0.8 / n) (kurtosis 1.8): within 5 of them.
        tolerance = 5 * (0.8 / w.numel()) ** 0.5
        assert abs(w.var().item() / expected - 1) < tolerance, (layer, w.var().item(), expected)
        assert w.abs().max() <= (3 * expected) ** 0.5 + 1e-7
        assert torch.count_nonzero(layer.bias) == 0
    # PyTorch's own: Kaiming-uniform (a = sqrt(5)), variance 1 / (3 fan_in), biases nonzero.
    torch.manual_seed(0)
    default = LeNet((1, 32, 32), 10)
    first = default.classifier[0]
    assert torch.count_nonzero(first.bias) > 0
    assert abs(first.weight.var().item() * 3 * first.in_features - 1) < 0.05
    with pytest.raises(ConfigError, match="model.net.init='glorot' is invalid: accepted are"):
        LeNet((1, 32, 32), 10, init="glorot")
