"""Head phantom: realistic anatomy, oblique multi-echo GRE signal, known susceptibility."""

from monitor.phantom.anatomy import DEFAULT_PROPERTIES, TissueProperties
from monitor.phantom.simulate import (
    FAST_CONFIG,
    GrownGrid,
    Phantom,
    PhantomConfig,
    air_only,
    forward_field_ppm,
    grown_grid,
    simulate_phantom,
    with_smoothed_air,
    with_structure_chi,
)

__all__ = [
    "DEFAULT_PROPERTIES",
    "FAST_CONFIG",
    "GrownGrid",
    "Phantom",
    "PhantomConfig",
    "TissueProperties",
    "air_only",
    "forward_field_ppm",
    "grown_grid",
    "simulate_phantom",
    "with_smoothed_air",
    "with_structure_chi",
]
