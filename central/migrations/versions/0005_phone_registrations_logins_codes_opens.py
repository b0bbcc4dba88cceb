"""Workers' phones (issue 11): registrations, one-time SMS codes, long-lived phone logins, openings.

See central/store/tables.py (Registration, PhoneCode, PhoneLogin, PhoneOpen) and docs/PHONE.md.
Every row that holds a phone number or a login dies with its member (ON DELETE CASCADE).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "registrations",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("station_id", sa.String(length=64), nullable=True),
        sa.Column("district_id", sa.String(length=64), nullable=False),
        sa.Column("member_id", sa.String(length=64), nullable=True),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("details", JSON, nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("client", sa.String(length=64), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("verified_at", TIMESTAMP, nullable=True),
        sa.Column("decided_at", TIMESTAMP, nullable=True),
        sa.Column("decided_by", sa.String(length=100), nullable=True),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.CheckConstraint(
            "state IN ('code_sent', 'awaiting_staff', 'approved', 'rejected', 'expired')",
            name=op.f("ck_registrations_state"),
        ),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.member_id"],
            name=op.f("fk_registrations_member_id_members"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["station_id"],
            ["stations.station_id"],
            name=op.f("fk_registrations_station_id_stations"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registrations")),
    )
    op.create_index("ix_registrations_client_created", "registrations", ["client", "created_at"])
    op.create_index(op.f("ix_registrations_district_id"), "registrations", ["district_id"])
    op.create_index(op.f("ix_registrations_member_id"), "registrations", ["member_id"])
    op.create_index(op.f("ix_registrations_phone"), "registrations", ["phone"])
    op.create_index("ix_registrations_state_created", "registrations", ["state", "created_at"])

    op.create_table(
        "phone_codes",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("phone", sa.String(length=32), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("registration_id", sa.String(length=32), nullable=True),
        sa.Column("code_mac", sa.String(length=64), nullable=False),
        sa.Column("client", sa.String(length=64), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("used_at", TIMESTAMP, nullable=True),
        sa.CheckConstraint("purpose IN ('register', 'login')", name=op.f("ck_phone_codes_purpose")),
        sa.ForeignKeyConstraint(
            ["registration_id"],
            ["registrations.id"],
            name=op.f("fk_phone_codes_registration_id_registrations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_phone_codes")),
    )
    op.create_index("ix_phone_codes_client_created", "phone_codes", ["client", "created_at"])
    op.create_index("ix_phone_codes_phone_created", "phone_codes", ["phone", "created_at"])
    op.create_index(op.f("ix_phone_codes_registration_id"), "phone_codes", ["registration_id"])

    op.create_table(
        "phone_logins",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("member_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("last_seen_at", TIMESTAMP, nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=False),
        sa.Column("revoked_at", TIMESTAMP, nullable=True),
        sa.Column("client", sa.String(length=64), nullable=True),
        sa.Column("device", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.member_id"],
            name=op.f("fk_phone_logins_member_id_members"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_phone_logins")),
        sa.UniqueConstraint("token_sha256", name=op.f("uq_phone_logins_token_sha256")),
    )
    op.create_index(op.f("ix_phone_logins_member_id"), "phone_logins", ["member_id"])

    op.create_table(
        "phone_opens",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("member_id", sa.String(length=64), nullable=False),
        sa.Column("station_id", sa.String(length=64), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("command_id", sa.String(length=48), nullable=True),
        sa.Column("client", sa.String(length=64), nullable=True),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("message", sa.String(length=500), nullable=True),
        sa.Column("answered_at", TIMESTAMP, nullable=True),
        sa.Column("distance_m", sa.Float(), nullable=True),
        sa.CheckConstraint(
            "outcome IN ('sent', 'opened', 'refused', 'no_answer', 'offline', 'denied')",
            name=op.f("ck_phone_opens_outcome"),
        ),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.member_id"],
            name=op.f("fk_phone_opens_member_id_members"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_phone_opens")),
        sa.UniqueConstraint("member_id", "request_id", name=op.f("uq_phone_opens_member_id_request_id")),
    )
    op.create_index("ix_phone_opens_client_at", "phone_opens", ["client", "at"])
    op.create_index(op.f("ix_phone_opens_command_id"), "phone_opens", ["command_id"])
    op.create_index("ix_phone_opens_member_at", "phone_opens", ["member_id", "at"])


def downgrade() -> None:
    op.drop_table("phone_opens")
    op.drop_table("phone_logins")
    op.drop_table("phone_codes")
    op.drop_table("registrations")
