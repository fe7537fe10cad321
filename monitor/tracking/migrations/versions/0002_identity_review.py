"""Identity review: who decided that a held visit is (or is not) the patient's, and when.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("visits") as batch:
        batch.add_column(sa.Column("identity_review", sa.String(16), nullable=True))
        batch.add_column(sa.Column("identity_reviewer", sa.String(64), nullable=True))
        batch.add_column(sa.Column("identity_reviewed_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("visits") as batch:
        batch.drop_column("identity_reviewed_at")
        batch.drop_column("identity_reviewer")
        batch.drop_column("identity_review")
