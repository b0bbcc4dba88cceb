"""The local HTTP API and installer page, served inside `yizhan run`."""
