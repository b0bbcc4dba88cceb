"""The station's local store: one SQLite file (WAL) with members, encrypted face templates, QR keys,
the append-only event log and the outbox for the centre.

Modules: `models.database` (engine, pragmas, schema versioning), `models.tables` (the mapping),
`models.members` (templates encrypted with `common.template_cipher`),
`models.qr_store`, `models.events`. Nothing is imported here, so importing one module stays cheap.
"""
