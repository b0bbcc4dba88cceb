"""Alarms that reach a person (issue 12): rules, the engine, the notifier, their composition.

`rules` (pure: facts in, raise/clear out), `messages` (pure: what a notification says), `vendors`
(pure: WeCom / DingTalk / Feishu formats and signatures), `targets` (who hears about what),
`engine` (live bus + database sweep -> alarm rows), `notifier` (delivery queue -> webhooks and
e-mail), `worker` (the two as one part of the centre's composition root). docs/ALARMS.md.
"""
