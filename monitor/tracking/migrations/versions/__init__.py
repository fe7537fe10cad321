"""Migration scripts, oldest first; Alembic orders them by their down_revision links."""
