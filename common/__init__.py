"""Code the station and the centre both need, kept once where both can import it.

`common.errors` (the store error bases), `common.config_files` (TOML loading, messages naming the
bad key), `common.passwords` (argon2id hashing, secrets, password rules), `common.sessions`
(in-memory logins with hashed tokens, the CSRF check), `common.login` (back-off and lockout per
account and per address), `common.template_cipher` (AES-GCM for face templates, the key file),
`common.logging_setup` (JSON logs).

Like `contract/`, this package imports nothing from `edge`, `sync`, `models`, `door`, `central`
or `bench` (checked by tests/test_contract_layering.py): it is a floor, not a shortcut.
"""
