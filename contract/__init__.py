"""The station <-> centre contract: what both sides import, so neither copies the other.

- `contract.topics`: the MQTT topic tree of contract version 1 (docs/mqtt.md);
- `contract.messages`: one pydantic model per message; the station parses the centre's messages
  strictly, the centre reads stations' messages leniently (unknown fields ignored);
- `contract.schedule`: opening hours (`ScheduleConfig`, `OpeningHours`), which the station enforces
  at the door and the centre shows and checks ("open now", remote opening).

This package imports nothing from `edge/`, `central/`, `sync/` or `models/`: it is the lowest layer
both processes stand on (tests/test_contract_layering.py checks it).
"""
