"""advfit: does generalising better make a network more fragile to adversarial examples?"""

__version__ = "0.1.0"
