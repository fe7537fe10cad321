"""JAX QSM reconstruction: mask, field map, background removal, dipole inversion, referencing."""
