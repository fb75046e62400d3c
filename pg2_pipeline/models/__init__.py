"""PG² networks (G1, G2, D) and losses, with factories that fail loudly on unknown names.

g1 = build_generator("g1", height=128, width=64, base_channels=128)
g2 = build_generator("g2", height=128, width=64, base_channels=128)
d = build_discriminator("dcgan", height=128, width=64)
"""

from __future__ import annotations

from torch import nn

from pg2_pipeline.models.discriminator import Discriminator, PatchDiscriminator
from pg2_pipeline.models.g1 import G1
from pg2_pipeline.models.g2 import G2

GENERATORS: dict[str, type[nn.Module]] = {"g1": G1, "g2": G2}
DISCRIMINATORS: dict[str, type[nn.Module]] = {"dcgan": Discriminator, "patch": PatchDiscriminator}


def build_generator(name: str, **kwargs) -> nn.Module:
    """``"g1"`` (pose integration) or ``"g2"`` (refinement); kwargs go to the constructor
    (height, width, base_channels, and z_dim for G1 or first_level_skip for G2)."""
    return _build("generator", GENERATORS, name, kwargs)


def build_discriminator(name: str, **kwargs) -> nn.Module:
    """``"dcgan"`` (the paper) or ``"patch"`` (PatchGAN); kwargs go to the constructor (height,
    width, base_channels, in_channels, spectral_norm)."""
    return _build("discriminator", DISCRIMINATORS, name, kwargs)


def _build(kind: str, registry: dict[str, type[nn.Module]], name: str, kwargs: dict) -> nn.Module:
    if name not in registry:
        raise ValueError(f"unknown {kind} {name!r}; known: {', '.join(sorted(registry))}")
    return registry[name](**kwargs)


def count_parameters(module: nn.Module) -> int:
    """Trainable parameters (BatchNorm running statistics are buffers, not counted)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


__all__ = [
    "DISCRIMINATORS",
    "GENERATORS",
    "G1",
    "G2",
    "Discriminator",
    "PatchDiscriminator",
    "build_discriminator",
    "build_generator",
    "count_parameters",
]
