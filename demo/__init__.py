"""`make demo`: the whole system on one laptop (issue 12).

A centre (SQLite), a broker (mosquitto, configured as docs/mosquitto/ ships it: TLS and one login
per station for the stations, the centre on its own listener), two stations on generated door
videos, a group robot on 127.0.0.1 that prints the alarm messages the centre pushes, and the
dashboard's address with the admin login. A member enrolled at one station opens the other.
Without mosquitto the station runs alone (`yizhan demo`) and one line says how to see the fleet.

`python -m demo [--dir D] [--until-done] [--timeout S]`; everything runs from a fresh folder and
is stopped by PID when the demo ends (Ctrl-C).
"""
