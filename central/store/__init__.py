"""The centre's store: tables, Alembic upgrades, and data access as plain functions per resource.

`central.store.database` (engines, `upgrade`, sessions), `central.store.tables` (the schema),
`central.store.partitions` (monthly `events` partitions on PostgreSQL), and one module of
keyword-only functions per resource (`stations`, `members`, `signing_keys`, `staff`, `events`,
`audit`) that take a `Session` and never commit: the caller owns the transaction, so one staff
action (a member change, its roster rows, its audit entry) commits or fails as a whole.
"""
