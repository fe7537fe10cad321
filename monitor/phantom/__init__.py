"""Head phantom: realistic anatomy, oblique multi-echo GRE signal, known susceptibility."""

from monitor.phantom.anatomy import DEFAULT_PROPERTIES, TissueProperties
from monitor.phantom.simulate import (
    FAST_CONFIG,
    Phantom,
    PhantomConfig,
    forward_field_ppm,
    simulate_phantom,
    with_structure_chi,
)

__all__ = [
    "DEFAULT_PROPERTIES",
    "FAST_CONFIG",
    "Phantom",
    "PhantomConfig",
    "TissueProperties",
    "forward_field_ppm",
    "simulate_phantom",
    "with_structure_chi",
]
