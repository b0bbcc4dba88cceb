"""Ingest, roster fan-out and commands: the station's face model and roster basis, the published
member state, and command answers.

- `stations.face_model`, `stations.roster_basis`: which templates a station may get and what
  decided its roster when it last changed (central/roster).
- `roster_published`: each member as the stations were last told (one row per member).
- `commands.error`, `message`, `result`, `finished_at`: the station's answer on the command row;
  an index to find the commands that expire unanswered.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-14
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("stations") as batch:
        batch.add_column(sa.Column("face_model", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("roster_basis", JSON, nullable=True))

    op.create_table(
        "roster_published",
        sa.Column("member_id", sa.String(length=64), nullable=False),
        sa.Column("state", JSON, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("member_id", name=op.f("pk_roster_published")),
    )

    with op.batch_alter_table("commands") as batch:
        batch.add_column(sa.Column("error", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("message", sa.String(length=500), nullable=True))
        batch.add_column(sa.Column("result", JSON, nullable=True))
        batch.add_column(sa.Column("finished_at", TIMESTAMP, nullable=True))
    op.create_index("ix_commands_state_expires", "commands", ["state", "expires_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_commands_state_expires", table_name="commands")
    with op.batch_alter_table("commands") as batch:
        batch.drop_column("finished_at")
        batch.drop_column("result")
        batch.drop_column("message")
        batch.drop_column("error")
    op.drop_table("roster_published")
    with op.batch_alter_table("stations") as batch:
        batch.drop_column("roster_basis")
        batch.drop_column("face_model")
