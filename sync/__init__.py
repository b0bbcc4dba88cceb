"""MQTT sync with the centre (contract: docs/mqtt.md).

`service.SyncService` is what the daemon starts; `flush.flush_command` is `yizhan sync flush`.
One job per module: `topics` (the topic tree), `messages` (payload models, strict parsing),
`client` (the paho client), `outbox_publisher` (events, snapshots, enrolments up),
`roster_apply` (roster changes and snapshots down), `commands` (open, reload, set_schedule,
snapshot, ping), `inbox` (validating and routing what the centre sends), `enrolment` (on-site
enrolments queued for upload, with consent checked when sent), `config` (the `[mqtt]` section).
"""
