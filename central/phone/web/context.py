"""What the phone routes share, built once per web app from the centre's `WebContext`."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from central.phone.accounts import Accounts
from central.phone.fleet import DoorAnswers, Fleet
from central.phone.opener import Opener
from central.phone.sms import MAC_PURPOSE, SmsSender, gateway_from_config
from central.web.context import WebContext
from common.sqlite import BEGIN_OPTION

CSRF_PURPOSE = "phone-csrf"


@dataclass
class PhoneContext:
    web: WebContext
    accounts: Accounts
    opener: Opener
    answers: DoorAnswers
    fleet: Fleet
    csrf_key: bytes
    #: Read-only sessions: on SQLite a plain (deferred) BEGIN, so the phone pages' many reads (a
    #: login check per request, the pass every minute, the answer poll) never take the write lock.
    reads: sessionmaker[Session]

    @classmethod
    def build(cls, web: WebContext, fleet: Fleet, sms: SmsSender | None = None) -> PhoneContext:
        config = web.config
        sms = sms if sms is not None else gateway_from_config(config.sms)
        reads = read_sessions(web.db)
        answers = DoorAnswers(reads, web.live)
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
            reads=reads,
        )


def read_sessions(db: sessionmaker[Session]) -> sessionmaker[Session]:
    """Sessions on the same engine that begin deferred (SQLite); the same as `db` elsewhere."""
    bind = db.kw["bind"]
    return sessionmaker(bind=bind.execution_options(**{BEGIN_OPTION: "DEFERRED"}), expire_on_commit=False)
