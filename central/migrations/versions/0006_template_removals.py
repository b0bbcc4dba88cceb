"""Templates removed on site (`up/template_removal`): withdrawn from the fleet, remembered once.

See central/store/tables.py (TemplateRemoval) and docs/mqtt.md ("template removal").

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "template_removals",
        sa.Column("template_id", sa.String(length=32), nullable=False),
        sa.Column("member_id", sa.String(length=64), nullable=False),
        sa.Column("station_id", sa.String(length=64), nullable=False),
        sa.Column("message_id", sa.String(length=36), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=True),
        sa.Column("removed_by", sa.String(length=100), nullable=True),
        sa.Column("removed_at", TIMESTAMP, nullable=False),
        sa.Column("received_at", TIMESTAMP, nullable=False),
        sa.Column("held", sa.Boolean(), nullable=False),
        sa.Column("stations", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["station_id"],
            ["stations.station_id"],
            name=op.f("fk_template_removals_station_id_stations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("template_id", name=op.f("pk_template_removals")),
    )
    op.create_index(op.f("ix_template_removals_member_id"), "template_removals", ["member_id"])
    op.create_index(op.f("ix_template_removals_station_id"), "template_removals", ["station_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_template_removals_station_id"), table_name="template_removals")
    op.drop_index(op.f("ix_template_removals_member_id"), table_name="template_removals")
    op.drop_table("template_removals")
