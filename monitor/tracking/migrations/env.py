"""Alembic environment: runs on the connection `monitor.tracking.schema` hands over.

Migrations are applied by the application itself (service start, `process`, the tracking
step), never by a separate `alembic` command, so there is no offline (SQL script) mode.
"""

from alembic import context

from monitor.tracking.tables import TrackingBase

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through monitor.tracking.schema.upgrade_schema")
context.configure(
    connection=connection,
    target_metadata=TrackingBase.metadata,
    render_as_batch=True,  # SQLite alters tables by copy-and-move
)
with context.begin_transaction():
    context.run_migrations()
