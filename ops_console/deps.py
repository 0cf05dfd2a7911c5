"""FastAPI dependencies shared by the pages and the API: the database session and the caller."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Query, Request
from sqlalchemy.orm import Session

from core.db import get_sessionmaker
from core.sanitize import INT32_MAX
from ops_console.auth import SESSION_COOKIE, session_for_cookie, user_for_bearer_token
from ops_console.permissions import Capability, Viewer


def get_db() -> Iterator[Session]:
    """One session per request. Handlers commit (they own the transaction); anything not
    committed when the request ends is rolled back, so a failed request saves nothing."""
    session = get_sessionmaker()()
    try:
        yield session
    finally:
        session.rollback()
        session.close()


DbSession = Annotated[Session, Depends(get_db)]


def api_viewer(request: Request, session: DbSession) -> Viewer:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(
            401,
            "missing bearer token: send 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    user = user_for_bearer_token(session, token.strip())
    if user is None:
        raise HTTPException(
            401,
            "invalid, expired or revoked token",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    viewer = Viewer.load(session, user)
    # last_used_at may have been refreshed (at most once a minute): make it stick even for
    # read-only requests. Otherwise the handler carries on in the same transaction (a
    # COMMIT and a BEGIN fewer per API call).
    if session.dirty:
        session.commit()
    return viewer


ApiViewer = Annotated[Viewer, Depends(api_viewer)]


def require(viewer: Viewer, capability: Capability) -> None:
    """403 for a whole kind of action the role never has (the endpoint itself is no secret)."""
    if not viewer.can(capability):
        raise HTTPException(403, f"your role ({viewer.role.value}) may not do this")


def staff_viewer(request: Request, session: DbSession) -> Viewer:
    """A signed-in person or token holder: a console session cookie or a bearer token (for
    pages that are no secret to staff but are to the public, e.g. the API documentation)."""
    browser = session_for_cookie(session, request.cookies.get(SESSION_COOKIE))
    if browser is not None:
        viewer = Viewer.load(session, browser.user)
        session.commit()  # last_used_at
        return viewer
    return api_viewer(request, session)


StaffViewer = Annotated[Viewer, Depends(staff_viewer)]


# Ids in paths and query strings: ASCII digits (pydantic's int), within the INTEGER column's
# range, so 2**31 is a 422 naming the parameter rather than a database overflow.
PathId = Annotated[int, Path(ge=1, le=INT32_MAX)]
QueryId = Annotated[int, Query(ge=0, le=INT32_MAX)]
