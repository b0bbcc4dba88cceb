"""Alembic revisions of the centre's schema (docs/CENTRAL.md, "Adding a migration")."""
