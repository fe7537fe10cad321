"""Patient history: patients, visits, acquisitions (protocol fingerprint), measurements,
assessments.

Revision ID: 0001
Revises: none (databases of qsm-monitor 0.1 have only the node's queue tables)
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "patients",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("identifier", sa.String(64), nullable=False),
        sa.Column("issuer", sa.String(64), nullable=False),
        sa.Column("birth_date", sa.Date(), nullable=True),
        sa.Column("sex", sa.String(1), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_patients"),
        sa.UniqueConstraint("identifier", "issuer", name="uq_patients_identifier"),
    )
    op.create_table(
        "visits",
        sa.Column("id", sa.Integer(), autoincrement=True),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("study_uid", sa.String(64), nullable=False),
        sa.Column("study_datetime", sa.DateTime(), nullable=True),
        sa.Column("age_years", sa.Float(), nullable=True),
        sa.Column("birth_date", sa.Date(), nullable=True),
        sa.Column("sex", sa.String(1), nullable=True),
        sa.Column("identity_status", sa.String(16), nullable=False),
        sa.Column("identity_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_visits"),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name="fk_visits_patient_id_patients"
        ),
        sa.UniqueConstraint("study_uid", name="uq_visits_study_uid"),
    )
    op.create_index("ix_visits_patient_id", "visits", ["patient_id"])
    op.create_table(
        "acquisitions",
        sa.Column("id", sa.Integer(), autoincrement=True),
        sa.Column("visit_id", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(128), nullable=False),
        sa.Column("series_uids", sa.JSON(), nullable=False),
        sa.Column("field_strength_t", sa.Float(), nullable=False),
        sa.Column("echo_times_ms", sa.JSON(), nullable=False),
        sa.Column("voxel_mm", sa.JSON(), nullable=False),
        sa.Column("vendor", sa.String(64), nullable=False),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("pipeline_version", sa.String(32), nullable=False),
        sa.Column("pipeline_params", sa.JSON(), nullable=False),
        sa.Column("reference_region", sa.String(16), nullable=False),
        sa.Column("input_paths", sa.JSON(), nullable=False),
        sa.Column("reportable", sa.Boolean(), nullable=False),
        sa.Column("qc_reason", sa.Text(), nullable=True),
        sa.Column("processed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_acquisitions"),
        sa.ForeignKeyConstraint(
            ["visit_id"], ["visits.id"], name="fk_acquisitions_visit_id_visits"
        ),
        sa.UniqueConstraint("idempotency_key", name="uq_acquisitions_idempotency_key"),
    )
    op.create_index("ix_acquisitions_visit_id", "acquisitions", ["visit_id"])
    op.create_table(
        "measurements",
        sa.Column("id", sa.Integer(), autoincrement=True),
        sa.Column("acquisition_id", sa.Integer(), nullable=False),
        sa.Column("structure", sa.String(32), nullable=False),
        sa.Column("side", sa.String(16), nullable=False),
        sa.Column("mean_ppb", sa.Float(), nullable=True),
        sa.Column("median_ppb", sa.Float(), nullable=True),
        sa.Column("sd_ppb", sa.Float(), nullable=True),
        sa.Column("volume_ml", sa.Float(), nullable=True),
        sa.Column("voxel_count", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_measurements"),
        sa.ForeignKeyConstraint(
            ["acquisition_id"],
            ["acquisitions.id"],
            name="fk_measurements_acquisition_id_acquisitions",
        ),
        sa.UniqueConstraint(
            "acquisition_id", "structure", "side", name="uq_measurements_acquisition_id"
        ),
    )
    op.create_index("ix_measurements_acquisition_id", "measurements", ["acquisition_id"])
    op.create_table(
        "assessments",
        sa.Column("id", sa.Integer(), autoincrement=True),
        sa.Column("acquisition_id", sa.Integer(), nullable=False),
        sa.Column("risk_level", sa.String(16), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("comparable", sa.Boolean(), nullable=False),
        sa.Column("not_comparable_reason", sa.Text(), nullable=True),
        sa.Column("previous_study_uid", sa.String(64), nullable=True),
        sa.Column("baseline_study_uid", sa.String(64), nullable=True),
        sa.Column("structures", sa.JSON(), nullable=False),
        sa.Column("norms", sa.JSON(), nullable=False),
        sa.Column("assessed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_assessments"),
        sa.ForeignKeyConstraint(
            ["acquisition_id"],
            ["acquisitions.id"],
            name="fk_assessments_acquisition_id_acquisitions",
        ),
        sa.UniqueConstraint("acquisition_id", name="uq_assessments_acquisition_id"),
    )


def downgrade() -> None:
    for table in ("assessments", "measurements", "acquisitions", "visits", "patients"):
        op.drop_table(table)
