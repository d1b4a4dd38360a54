"""Carlini-Wagner L2 as advertorch computes it, without reading the device every iteration.

advertorch's ``CarliniWagnerL2Attack.perturb`` reads the loss back to the host at every
iteration (``loss.item()``), keeps its best examples through boolean-mask assignments (each
one a device read of the mask), and updates the binary search's constants one image at a
time in Python. On a GPU shared by several jobs each of those reads waits for the queue.
This subclass does the same arithmetic with ``torch.where`` and one vectorised update,
reading the loss only at the iterations where ``abort_early`` looks at it. Same inputs, same
examples: tests compare it with advertorch's bit for bit on the CPU.
"""

from __future__ import annotations

import torch
from torch import nn, optim

from advfit.attacks.advertorch_compat import attacks

# The attack's module, with the constants and advertorch.utils helpers it imports.
_cw = attacks.carlini_wagner


class CarliniWagnerL2Attack(_cw.CarliniWagnerL2Attack):
    """advertorch's Carlini-Wagner L2 attack (same parameters, same examples)."""

    def _forward_and_update_delta(self, optimizer, x_atanh, delta, y_onehot, loss_coeffs):
        optimizer.zero_grad()
        adv = _cw.tanh_rescale(delta + x_atanh, self.clip_min, self.clip_max)
        transimgs_rescale = _cw.tanh_rescale(x_atanh, self.clip_min, self.clip_max)
        output = self.predict(adv)
        l2distsq = _cw.calc_l2distsq(adv, transimgs_rescale)
        loss = self._loss_fn(output, y_onehot, l2distsq, loss_coeffs)
        loss.backward()
        optimizer.step()
        # The loss stays on the device; perturb reads it only where abort_early checks it.
        return loss.detach(), l2distsq.detach(), output.detach(), adv.detach()

    def _succeeded(self, output: torch.Tensor, y_onehot: torch.Tensor, y: torch.Tensor):
        """advertorch's ``_is_successful`` on logits: the true (targeted: the target) class's
        logit moved by the confidence, then the arg-max compared with ``y``. Adding
        ``confidence * one-hot`` changes that one logit by the same float operation and the
        others by an exact zero."""
        if self.targeted:
            moved = output - y_onehot * self.confidence
        else:
            moved = output + y_onehot * self.confidence
        return _cw.is_successful(torch.argmax(moved, dim=1), y, self.targeted)

    def _binary_search(self, y, cur_labels, coeffs, upper, lower):
        """advertorch's ``_update_loss_coeffs`` for every image at once (new tensors)."""
        succeeded = (cur_labels != _cw.INVALID_LABEL) & _cw.is_successful(
            cur_labels, y, self.targeted
        )
        upper = torch.where(succeeded, torch.minimum(upper, coeffs), upper)
        lower = torch.where(succeeded, lower, torch.maximum(lower, coeffs))
        unbounded = torch.where(succeeded, coeffs, coeffs * 10)
        coeffs = torch.where(upper < _cw.UPPER_CHECK, (lower + upper) / 2, unbounded)
        return coeffs, upper, lower

    def perturb(self, x, y=None):
        x, y = self._verify_and_process_inputs(x, y)
        if y is None:
            y = self._get_predicted_label(x)
        x = _cw.replicate_input(x)
        n = len(x)
        lower = x.new_zeros(n)
        upper = x.new_ones(n) * _cw.CARLINI_COEFF_UPPER
        coeffs = torch.ones_like(y).float() * self.initial_const
        final_l2 = torch.full((n,), _cw.CARLINI_L2DIST_UPPER, device=x.device)
        final_advs = x
        x_atanh = self._get_arctanh_x(x)
        y_onehot = _cw.to_one_hot(y, self.num_classes).float()
        per_image = (n,) + (1,) * (x.dim() - 1)
        check_every = self.max_iterations // _cw.NUM_CHECKS or 1

        for outer_step in range(self.binary_search_steps):
            delta = nn.Parameter(torch.zeros_like(x))
            optimizer = optim.Adam([delta], lr=self.learning_rate)
            cur_l2 = torch.full((n,), _cw.CARLINI_L2DIST_UPPER, device=x.device)
            cur_labels = torch.full((n,), _cw.INVALID_LABEL, dtype=torch.long, device=x.device)
            prevloss = _cw.PREV_LOSS_INIT
            if self.repeat and outer_step == self.binary_search_steps - 1:
                coeffs = upper
            for ii in range(self.max_iterations):
                loss, l2distsq, output, adv_img = self._forward_and_update_delta(
                    optimizer, x_atanh, delta, y_onehot, coeffs
                )
                if self.abort_early and ii % check_every == 0:
                    loss = loss.item()
                    if loss > prevloss * _cw.ONE_MINUS_EPS:
                        break
                    prevloss = loss
                succeeded = self._succeeded(output, y_onehot, y)
                output_label = torch.max(output, 1)[1]
                better = (l2distsq < cur_l2) & succeeded
                cur_l2 = torch.where(better, l2distsq, cur_l2)
                cur_labels = torch.where(better, output_label, cur_labels)
                better = (l2distsq < final_l2) & succeeded
                final_l2 = torch.where(better, l2distsq, final_l2)
                final_advs = torch.where(better.view(per_image), adv_img, final_advs)
            coeffs, upper, lower = self._binary_search(y, cur_labels, coeffs, upper, lower)

        return final_advs
