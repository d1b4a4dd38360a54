"""Attacks: advertorch's untargeted attacks, and the authors' APGD and AutoAttack (pyautoattack)
(:mod:`advfit.attacks.autoattack`), behind one ``(model, x, y) -> x_adv`` contract."""

from advfit.attacks.base import Attack, frozen

__all__ = ["Attack", "frozen"]
