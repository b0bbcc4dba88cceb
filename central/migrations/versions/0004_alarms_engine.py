"""Alarms: the events the engine has handled, the notifier's delivery queue, the sweep's index.

`alarm_events` makes handling an event idempotent (the live bus and the database sweep both see
it), `alarm_deliveries` is the notifier's durable queue (fan-outs, per-target messages, reminders
of unacknowledged emergencies, retries with back-off), and a partial index on `events` lets the
sweep read recently received events of the kinds that raise alarms. See central/alarms/ and
docs/ALARMS.md.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# The event kinds the alarm rules read, as of this revision (a later change needs a new revision).
ALARM_EVENT_KINDS = sa.text(
    "kind IN ('camera_down', 'camera_up', 'door_closed_after_held', 'door_forced', 'door_held_open', "
    "'emergency', 'lockout', 'refused', 'tamper')"
)
PENDING = sa.text("done_at IS NULL")


def upgrade() -> None:
    op.create_table(
        "alarm_deliveries",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("alarm_id", BIG_ID, nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=False),
        sa.Column("due_at", TIMESTAMP, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claimed_until", TIMESTAMP, nullable=True),
        sa.Column("done_at", TIMESTAMP, nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint(
            "channel IN ('wecom', 'dingtalk', 'feishu', 'email', 'fanout')",
            name=op.f("ck_alarm_deliveries_channel"),
        ),
        sa.CheckConstraint(
            "outcome IS NULL OR outcome IN ('sent', 'failed', 'skipped')",
            name=op.f("ck_alarm_deliveries_outcome"),
        ),
        sa.CheckConstraint(
            "purpose IN ('raised', 'again', 'escalated', 'cleared', 'acknowledged', 'reminder')",
            name=op.f("ck_alarm_deliveries_purpose"),
        ),
        sa.CheckConstraint("(done_at IS NULL) = (outcome IS NULL)", name=op.f("ck_alarm_deliveries_done")),
        sa.CheckConstraint("round >= 0 AND attempts >= 0", name=op.f("ck_alarm_deliveries_counts")),
        sa.ForeignKeyConstraint(
            ["alarm_id"], ["alarms.id"], name=op.f("fk_alarm_deliveries_alarm_id_alarms"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alarm_deliveries")),
    )
    op.create_index(op.f("ix_alarm_deliveries_alarm_id"), "alarm_deliveries", ["alarm_id"], unique=False)
    op.create_index(
        "ix_alarm_deliveries_pending",
        "alarm_deliveries",
        ["due_at"],
        unique=False,
        sqlite_where=PENDING,
        postgresql_where=PENDING,
    )
    op.create_table(
        "alarm_events",
        sa.Column("station_id", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("alarm_id", BIG_ID, nullable=True),
        sa.Column("handled_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["alarm_id"], ["alarms.id"], name=op.f("fk_alarm_events_alarm_id_alarms"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("station_id", "event_id", name=op.f("pk_alarm_events")),
    )
    op.create_index(op.f("ix_alarm_events_alarm_id"), "alarm_events", ["alarm_id"], unique=False)
    op.create_index(op.f("ix_alarm_events_handled_at"), "alarm_events", ["handled_at"], unique=False)
    # On PostgreSQL `events` is partitioned: the index is created on every partition (and on the
    # ones `central.store.partitions` adds later).
    op.create_index(
        "ix_events_alarm_kinds_received",
        "events",
        ["received_at"],
        unique=False,
        sqlite_where=ALARM_EVENT_KINDS,
        postgresql_where=ALARM_EVENT_KINDS,
    )


def downgrade() -> None:
    op.drop_index("ix_events_alarm_kinds_received", table_name="events")
    op.drop_table("alarm_events")
    op.drop_table("alarm_deliveries")
