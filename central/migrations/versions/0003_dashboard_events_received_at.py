"""Dashboard: index events on `received_at` (the live feed's poll and reconnect replay).

The live feed asks "what did the centre store since T?", whatever time the stations' clocks gave
the events (an offline station's backlog arrives with old `ts`). On PostgreSQL the index is created
on the partitioned table, so every monthly partition (and later ones) gets it.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_events_received_at", "events", ["received_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_events_received_at", table_name="events")
