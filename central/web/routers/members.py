"""Members for staff: the list with template counts (search by id, name or phone)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from central.store import members as member_store
from central.web.deps import DbSession, current_staff
from central.web.schemas import MemberOut

router = APIRouter(prefix="/api/v1/members", tags=["members"], dependencies=[Depends(current_staff)])


@router.get("", response_model=list[MemberOut])
def list_members(
    db: DbSession,
    search: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> list[MemberOut]:
    rows = member_store.list_members(db, search=search, limit=limit, offset=offset)
    return [MemberOut.of(r.member, r.templates) for r in rows]
