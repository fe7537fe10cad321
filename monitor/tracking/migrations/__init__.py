"""Alembic migrations of the patient history tables (applied by `monitor.tracking.schema`)."""
