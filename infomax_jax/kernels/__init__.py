"""Fused Pallas kernels (Triton / Mosaic GPU lowering; ``interpret=True`` on CPU)."""

from infomax_jax.kernels.pairwise_lse import pairwise_lse

__all__ = ['pairwise_lse']
