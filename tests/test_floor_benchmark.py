"""benchmarks.floor's accounting: the passes it counts are the passes an attack or a metric
makes, so each floor is the same arithmetic as the stage it stands under."""

import torch

from advfit.attacks import Attack
from advfit.models import LeNet
from benchmarks import floor


def test_the_floor_counts_each_forward_and_backward_pass():
    torch.manual_seed(0)
    net = LeNet((1, 28, 28), 10).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    x, y = torch.rand(12, 1, 28, 28), torch.arange(12) % 10
    fgsm = Attack("fgsm", "advertorch.attacks.GradientSignAttack", batch_size=5, eps=0.1)
    assert floor.counted(net, lambda: fgsm(net, x, y)) == ([5, 5, 2], [5, 5, 2])
    pgd = Attack(
        "pgd", "advertorch.attacks.LinfPGDAttack", batch_size=12, eps=0.1, nb_iter=7,
        eps_iter=0.01, rand_init=False,
    )  # fmt: skip
    assert floor.counted(net, lambda: pgd(net, x, y)) == ([12] * 7, [12] * 7)

    def twice_differentiated():  # one forward, differentiated once per class (as CLEVER)
        xi = x.clone().requires_grad_()
        out = net(xi)
        for j in range(3):
            torch.autograd.grad(out[:, j].sum(), xi, retain_graph=True)

    assert floor.counted(net, twice_differentiated) == ([12], [12, 12, 12])
    # The FLOPs of those passes: a forward per image, and a backward as the difference.
    forward = floor.step_flops(net, x[:1], y[:1], backward=False)
    both = floor.step_flops(net, x[:1].clone().requires_grad_(), y[:1])
    assert forward > 0 and both > forward
    assert floor.pass_flops(net, x, y, ([12], [12, 12])) == forward * 12 + (both - forward) * 24
    # The floor of no passes is no time; of some, the bare passes' time.
    assert floor.floor_of(net, (1, 28, 28), ([], []), 1) == 0
    assert floor.floor_of(net, (1, 28, 28), ([12], [12]), 1) > 0


def test_a_whole_run_and_the_demos_sweep_add_up_the_stages_as_often_as_a_run_does_them():
    start = floor.stage_row("start", [4.0, 5.0, 6.0], [1.0, 1.5, 2.0], None)
    epoch = floor.stage_row("epoch", [0.2], [0.1], 1e9)
    cw = floor.stage_row("cw", [8.0], [6.0], 1e9)
    metric = floor.stage_row("metric", [0.5], [0.25], 1e9)
    run = floor.run_row("demo", [(epoch, 35), (cw, 1), (metric, 4)])
    assert run[floor.MEDIANS] == (0.2 * 35 + 8.0 + 0.5 * 4, 0.1 * 35 + 6.0 + 0.25 * 4)
    assert run["ratio"] == f"{17.0 / 10.5:.2f}"
    # The demo's 10 runs on 2 workers: each worker starts once (the median start), then
    # trains its 5 runs one after another.
    sweep = floor.sweep_row(start, run)
    assert sweep[floor.MEDIANS] == (5.0 + 5 * 17.0, 1.5 + 5 * 10.5)


def test_the_sweeps_run_count_is_the_demos():
    assert floor.demo_runs() == 10  # 2 regimes x 5 folds
