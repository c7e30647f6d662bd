"""Training methods: small classes on the shared loop (see ``base.py`` for the contract)."""

from cotdistill.training.methods.base import METHOD_REGISTRY, Method, register_method

__all__ = ["METHOD_REGISTRY", "Method", "register_method"]
