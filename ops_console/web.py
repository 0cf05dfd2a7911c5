"""Page plumbing: the Jinja2 environment, rendering full pages or one block (HTMX), the
logged-in user of a page, CSRF checks and the HTML error pages."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlparse

from fastapi import Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy.orm import Session

from core.bot_status import bot_loading
from core.phones import mask_phone
from models.enums import TicketCategory, TicketPriority, TicketSource, TicketStatus, UserRole
from ops_console import auth
from ops_console.deps import DbSession
from ops_console.i18n import make_gettext, pick_language, translate, translations_for
from ops_console.permissions import Capability, Viewer

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
STATIC_DIR = Path(__file__).resolve().parent / "static"
LANGUAGE_COOKIE = "deme_lang"

environment = Environment(
    loader=FileSystemLoader(TEMPLATES_DIR),
    autoescape=select_autoescape(["html", "svg"], default_for_string=True, default=True),
    extensions=["jinja2.ext.i18n"],
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
environment.newstyle_gettext = True  # type: ignore[attr-defined]


def _format_dt(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return "" if value is None else value.strftime(fmt)


@lru_cache(maxsize=64)
def static_url(name: str) -> str:
    """``/static/<name>?v=<hash of its content>``: served with a year-long cache
    (routes.VersionedStaticFiles), and a changed file gets a new URL by itself."""
    digest = hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest()[:12]
    return f"/static/{name}?v={digest}"


environment.filters["dt"] = _format_dt
environment.globals["static_url"] = static_url
environment.filters["mask_phone"] = lambda value: mask_phone(value) if value else "—"
environment.globals.update(
    Capability=Capability,
    TicketStatus=TicketStatus,
    TicketCategory=TicketCategory,
    TicketPriority=TicketPriority,
    TicketSource=TicketSource,
    UserRole=UserRole,
)


# Defence in depth behind autoescaping: even if markup slipped through, no inline script or
# third-party resource would run, and the console cannot be framed (clickjacking).
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


class LoginRequired(Exception):
    """No valid session: send the browser to the login page (HTMX: a client-side redirect)."""

    def response(self, request: Request) -> Response:
        location = f"/login?next={quote(self.return_to(request))}"
        if request.headers.get("hx-request"):
            return Response(status_code=204, headers={"HX-Redirect": location})
        return RedirectResponse(location, status_code=303)

    @staticmethod
    def return_to(request: Request) -> str:
        """Where the login should lead back to: the page the person was on. A form posted
        (by htmx or not) after the session expired names its action, which answers only
        POST — logging in and landing there was a 405 or a bare fragment — so the page
        that showed the form is used instead (htmx says it, a browser's Referer too)."""
        if request.method == "GET" and not request.headers.get("hx-request"):
            return request.url.path + (f"?{request.url.query}" if request.url.query else "")
        for header in ("hx-current-url", "referer"):
            page = _same_origin_path(request, request.headers.get(header))
            if page is not None:
                return page
        return "/queue"


def _same_origin_path(request: Request, url: str | None) -> str | None:
    """The path and query of ``url`` when it points at this site, else None."""
    if not url:
        return None
    parsed = urlparse(url)
    if parsed.netloc and parsed.netloc != request.url.netloc:
        return None
    if not parsed.path.startswith("/") or parsed.path.startswith("//"):
        return None
    if parsed.path.startswith("/login"):
        return None
    return parsed.path + (f"?{parsed.query}" if parsed.query else "")


@dataclass
class Page:
    """What every page handler knows about the request."""

    request: Request
    session: Session
    viewer: Viewer | None
    language: str
    csrf_seed: str
    csrf_token: str
    new_csrf_seed: str | None = None  # set a seed cookie on the response (anonymous pages)

    @property
    def user_viewer(self) -> Viewer:
        if self.viewer is None:  # pragma: no cover - guarded by the dependency
            raise LoginRequired()
        return self.viewer

    def t(self, message: str, **variables: Any) -> str:
        return translate(self.language, message, **variables)

    def require(self, capability: Capability) -> Viewer:
        viewer = self.user_viewer
        if not viewer.can(capability):
            raise HTTPException(403)
        return viewer


def _csrf_seed(request: Request, browser: auth.BrowserSession | None) -> tuple[str, str | None]:
    if browser is not None:
        return browser.token_hash, None
    seed = request.cookies.get(auth.CSRF_SEED_COOKIE)
    if seed and 16 <= len(seed) <= 64:
        return seed, None
    fresh = auth.new_csrf_seed()
    return fresh, fresh


def _page(request: Request, session: Session, *, login: bool) -> Page:
    browser = auth.session_for_cookie(session, request.cookies.get(auth.SESSION_COOKIE))
    if browser is None and login:
        raise LoginRequired()
    viewer = None
    if browser is not None:
        viewer = Viewer.load(session, browser.user)
        if not viewer.can(Capability.CONSOLE):
            raise LoginRequired()
        session.commit()  # last_used_at
    seed, fresh = _csrf_seed(request, browser)
    language = pick_language(
        browser.user.language.value if browser is not None else None,
        request.cookies.get(LANGUAGE_COOKIE),
    )
    request.state.language = language
    return Page(
        request=request,
        session=session,
        viewer=viewer,
        language=language,
        csrf_seed=seed,
        csrf_token=auth.csrf_token_for(seed),
        new_csrf_seed=fresh,
    )


def current_page(request: Request, session: DbSession) -> Page:
    return _page(request, session, login=True)


def anonymous_page(request: Request, session: DbSession) -> Page:
    return _page(request, session, login=False)


PageCtx = Annotated[Page, Depends(current_page)]
AnonPage = Annotated[Page, Depends(anonymous_page)]


async def _verify_csrf(request: Request, page: Page) -> Page:
    """Every state-changing form posts ``csrf_token`` (HTMX sends it as X-CSRF-Token)."""
    submitted = request.headers.get(auth.CSRF_HEADER)
    if not submitted:
        form = await request.form()
        value = form.get(auth.CSRF_FORM_FIELD)
        submitted = value if isinstance(value, str) else None
    if page.new_csrf_seed is not None or not auth.csrf_valid(page.csrf_seed, submitted):
        raise HTTPException(403, "CSRF token missing or invalid: reload the page")
    return page


async def posted_page(request: Request, page: PageCtx) -> Page:
    return await _verify_csrf(request, page)


async def posted_anonymous_page(request: Request, page: AnonPage) -> Page:
    return await _verify_csrf(request, page)


PostPage = Annotated[Page, Depends(posted_page)]
AnonPostPage = Annotated[Page, Depends(posted_anonymous_page)]


def _base_context(page: Page) -> dict[str, Any]:
    gettext, ngettext = make_gettext(translations_for(page.language))
    return {
        "request": page.request,
        "viewer": page.viewer,
        "user": page.viewer.user if page.viewer else None,
        "lang": page.language,
        "csrf_token": page.csrf_token,
        "gettext": gettext,
        "ngettext": ngettext,
        "path": page.request.url.path,
        # The banner "the bot is still loading" (base.html), for signed-in users only.
        "bot_loading": page.viewer is not None and bot_loading(),
    }


def render(
    page: Page,
    template_name: str,
    context: Mapping[str, Any] | None = None,
    *,
    status_code: int = 200,
    block: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """The full page, or only ``block`` of it (one template serves both: no duplicate
    partial markup, as with jinja2-fragments)."""
    values = _base_context(page)
    if context:
        values.update(context)
    template = environment.get_template(template_name)
    if block is not None:
        body = "".join(template.blocks[block](template.new_context(values)))
    else:
        body = template.render(values)
    response = HTMLResponse(body, status_code=status_code, headers=dict(headers or {}))
    response.headers.update(SECURITY_HEADERS)
    if page.new_csrf_seed:
        response.set_cookie(
            auth.CSRF_SEED_COOKIE,
            page.new_csrf_seed,
            httponly=True,
            samesite="lax",
            secure=auth.cookie_secure(),
        )
    return response


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def render_error(request: Request, status_code: int) -> HTMLResponse:
    language = getattr(request.state, "language", None) or pick_language(
        request.cookies.get(LANGUAGE_COOKIE)
    )
    gettext, ngettext = make_gettext(translations_for(language))
    template = environment.get_template("error.html")
    body = template.render(
        request=request,
        viewer=None,
        user=None,
        lang=language,
        csrf_token="",
        gettext=gettext,
        ngettext=ngettext,
        path=request.url.path,
        bot_loading=False,
        status_code=status_code,
    )
    return HTMLResponse(body, status_code=status_code, headers=SECURITY_HEADERS)


def redirect(url: str, request: Request | None = None) -> Response:
    if request is not None and is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)
