"""Head phantom: realistic anatomy, oblique multi-echo GRE signal, known susceptibility."""

from monitor.phantom.anatomy import DEFAULT_PROPERTIES, TissueProperties
from monitor.phantom.simulate import (
    AIR_KINDS,
    FAST_CONFIG,
    GrownGrid,
    Phantom,
    PhantomConfig,
    forward_field_ppm,
    grown_grid,
    simulate_phantom,
    with_smoothed_air,
    with_structure_chi,
)

__all__ = [
    "AIR_KINDS",
    "DEFAULT_PROPERTIES",
    "FAST_CONFIG",
    "GrownGrid",
    "Phantom",
    "PhantomConfig",
    "TissueProperties",
    "forward_field_ppm",
    "grown_grid",
    "simulate_phantom",
    "with_smoothed_air",
    "with_structure_chi",
]
