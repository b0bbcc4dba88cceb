"""What the phone routes share, built once per web app from the centre's `WebContext`."""

from __future__ import annotations

from dataclasses import dataclass

from central.phone.accounts import Accounts
from central.phone.fleet import DoorAnswers, Fleet
from central.phone.opener import Opener
from central.phone.sms import MAC_PURPOSE, SmsSender, gateway_from_config
from central.web.context import WebContext

CSRF_PURPOSE = "phone-csrf"


@dataclass
class PhoneContext:
    web: WebContext
    accounts: Accounts
    opener: Opener
    answers: DoorAnswers
    fleet: Fleet
    csrf_key: bytes

    @classmethod
    def build(cls, web: WebContext, fleet: Fleet, sms: SmsSender | None = None) -> PhoneContext:
        config = web.config
        sms = sms if sms is not None else gateway_from_config(config.sms)
        answers = DoorAnswers(web.db, web.live)
        return cls(
            web=web,
            accounts=Accounts(
                config,
                code_key=web.data_key.derive(MAC_PURPOSE),
                sms=sms,
                fleet=fleet,
                clock=lambda: web.now(),
            ),
            opener=Opener(config.phone, fleet=fleet, answers=answers, clock=lambda: web.now()),
            answers=answers,
            fleet=fleet,
            csrf_key=web.data_key.derive(CSRF_PURPOSE),
        )
