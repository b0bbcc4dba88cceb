"""The roster master: one roster for the whole fleet, each station told exactly what concerns it.

What the web layer (and the CLI) call, inside the transaction that changed the data:

- `member_changed(db, member_id)` after creating, editing, suspending, re-activating or deleting a
  member (or adding / removing a face template at the centre);
- `station_changed(db, station_id)` after changing a station's admitted groups or active flag;
- `erase_member(db, member_id, actor)` / `withdraw_consent(db, member_id, actor, face=..,
  cross_station=..)`: delete face data at the centre and on every station, recorded without it;
- `keys_changed(db, now=...)` after `keys rotate --purpose qr`; `token_revoked(...)` for a lost pass;
- `remove_template(db, member_id, template_id, actor)`: one face template withdrawn everywhere.

Each writes numbered `roster_changes` rows per affected station (versions 1, 2, 3, ... without
gaps); `RosterService` (central.roster.fanout) publishes them signed, and answers stations' roster
requests with changes or a snapshot followed by a roster status. Ingest hands it on-site
enrolments (`enrolment_received`): a face enrolled at any station with cross-station consent reaches
every station the member may enter, and templates removed on site (`template_removal_received`),
which are withdrawn from every station. How the views and ops are decided: central.roster.view.
"""

from central.roster.changes import keys_changed, member_changed, station_changed, token_revoked
from central.roster.enrolments import EnrolmentOutcome, enrolment_received
from central.roster.erasure import confirm_applied, confirm_applied_many, erase_member, withdraw_consent
from central.roster.removals import remove_template, template_removal_received

__all__ = [
    "EnrolmentOutcome",
    "confirm_applied",
    "confirm_applied_many",
    "enrolment_received",
    "erase_member",
    "keys_changed",
    "member_changed",
    "remove_template",
    "station_changed",
    "template_removal_received",
    "token_revoked",
    "withdraw_consent",
]
