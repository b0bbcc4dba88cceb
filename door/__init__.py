"""The station's door: relay(s), door contact, exit/emergency/tamper inputs, local alarm (GPIO only).

Import the submodules directly (`door.config`, `door.pins`, `door.relay`, `door.inputs`,
`door.controller`). This file imports nothing, so loading the config section does not load gpiozero.
"""
