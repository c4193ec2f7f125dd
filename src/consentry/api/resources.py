"""The /v3 resources: ``accounts`` and ``from-fields``, in GetResponse's shapes (SPEC §1.3)."""

from __future__ import annotations

import json
import math
import re
import secrets
import time
import unicodedata
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import Select, and_, bindparam, func, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

from consentry.api.guard import (
    Caller,
    Joined,
    bearer_value,
    check,
    prefetched,
    protected,
    quota_denied,
    token_and_prefetch,
)
from consentry.http import JSON, Answer, dumps, json_headers, read_body
from consentry.oauth.errors import BAD_HEADERS, ApiError, conflict, not_found, validation
from consentry.oauth.issue import ACCESS_KIND
from consentry.runtime import Runtime
from consentry.store.hot import AccessToken, Prepared, access_token_select
from consentry.store.models import access_tokens, from_fields, users

EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{1,63}")
# ASCII digits only: str.isdigit() also accepts "²" and "٣", which int() rejects or misreads.
DIGITS = re.compile(r"[0-9]{1,9}")
FROM_FIELD_FIELDS = (
    "fromFieldId",
    "href",
    "email",
    "rewrittenEmail",
    "name",
    "isActive",
    "isDefault",
    "createdOn",
    "domain",
)


@lru_cache(maxsize=4096)
def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def _bool(v: Any) -> str:
    return "true" if v else "false"  # GetResponse sends these as strings


def _api_base(rt: Runtime) -> str:
    return f"{rt.settings.api_url}/v3"


def from_field_json(rt: Runtime, row: Any) -> dict[str, Any]:
    domain = row.email.rsplit("@", 1)[-1]
    return {
        "fromFieldId": row.public_id,
        "href": f"{_api_base(rt)}/from-fields/{row.public_id}",
        "email": row.email,
        "rewrittenEmail": None,
        "name": row.name,
        "isActive": _bool(row.is_active),
        "isDefault": _bool(row.is_default),
        "createdOn": _iso(row.created_at),
        "domain": {"domain": domain, "href": None},
    }


async def read_json(rt: Runtime, request: Request) -> dict[str, Any]:
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    body = await read_body(request, rt.settings.max_body_bytes)
    if ctype != "application/json":
        raise ApiError(
            BAD_HEADERS,
            "Send the body as JSON with Content-Type: application/json",
            {"contentType": ctype[:100]},
        )
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: "[[[[..."
        raise validation("The body is not valid UTF-8 JSON") from None
    if not isinstance(data, dict):
        raise validation("The body must be a JSON object")
    return data


# --- accounts --------------------------------------------------------------------------------


_ACCOUNT = Prepared(select(users).where(users.c.id == bindparam("p_id")))


def _account_row(conn: Connection, user_id: int) -> Any:
    return _ACCOUNT.first(conn, {"p_id": user_id})


@protected("account.read")
async def get_account(request: Request, caller: Caller) -> Response:
    rt: Runtime = request.app.state.rt
    u = await rt.db.run_read(_account_row, caller.user_id)
    if u is None:
        raise not_found("Account not found")
    first, _, last = (u.name or "").partition(" ")
    try:
        offset = datetime.now(ZoneInfo(u.time_zone)).strftime("%z")
        offset = f"{offset[:3]}:{offset[3:]}"
    except Exception:  # an unknown zone name in old data: report UTC rather than fail
        offset = "+00:00"
    body = {
        "accountId": u.account_id,
        "firstName": first,
        "lastName": last,
        "email": u.email,
        "phone": u.phone,
        "companyName": u.company_name,
        "state": None,
        "city": None,
        "street": None,
        "zipCode": None,
        "countryCode": {"countryCodeId": None, "countryCode": u.country_code},
        "industryTag": {"industryTagId": None},
        "numberOfEmployees": None,
        "timeFormat": "24h",
        "timeZone": {"name": u.time_zone, "offset": offset},
        "href": f"{_api_base(rt)}/accounts",
    }
    return JSON(body)


# --- from-fields -----------------------------------------------------------------------------


def _storable(text: str) -> bool:
    """No control characters (NUL above all) and no lone surrogates ("\\ud800" in JSON):
    the database cannot store them, so they are a validation error, not a 500."""
    return not any(unicodedata.category(c) in ("Cc", "Cs") for c in text)


def _one(request: Request, name: str) -> str | None:
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise validation(f"Query parameter {name} was sent more than once", parameter=name)
    if values and "\x00" in values[0]:
        # PostgreSQL text cannot hold NUL: refuse it here rather than fail in the query.
        raise validation(f"Query parameter {name} contains a NUL character", parameter=name)
    return values[0] if values else None


def _int_param(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = _one(request, name)
    if raw is None or raw == "":
        return default
    if not DIGITS.fullmatch(raw) or not lo <= int(raw) <= hi:
        raise validation(
            f"{name} must be an integer from {lo} to {hi}", parameter=name, value=raw[:32]
        )
    return int(raw)


def _list_query(
    user_id: int, email: str | None, name: str | None, is_default: bool | None, sort: str
) -> tuple[Prepared, dict[str, Any]]:
    """The page query, with the total in the same statement (one snapshot, one round trip),
    and its parameters. Built and compiled once per shape (which text filters, isDefault,
    sort): the texts are parameters, so a filtered list runs on the hot path too."""
    params: dict[str, Any] = {"p_user": user_id}
    if email:
        params["p_email"] = _contains_pattern(email)
    if name:
        params["p_name"] = _contains_pattern(name)
    return _shaped_list_query(bool(email), bool(name), is_default, sort), params


_LIKE_ESCAPE = "/"


def _contains_pattern(text: str) -> str:
    """A LIKE pattern for ``text`` anywhere in a lower-cased column: ``%``, ``_`` and the
    escape character itself match literally (SQLAlchemy's ``contains(autoescape=True)``)."""
    e = _LIKE_ESCAPE
    escaped = text.lower().replace(e, e + e).replace("%", e + "%").replace("_", e + "_")
    return f"%{escaped}%"


@lru_cache(maxsize=32)
def _shaped_list_query(
    by_email: bool, by_name: bool, is_default: bool | None, sort: str
) -> Prepared:
    conds = [from_fields.c.user_id == bindparam("p_user")]
    if by_email:
        conds.append(
            func.lower(from_fields.c.email).like(bindparam("p_email"), escape=_LIKE_ESCAPE)
        )
    if by_name:
        conds.append(func.lower(from_fields.c.name).like(bindparam("p_name"), escape=_LIKE_ESCAPE))
    return Prepared(_page_query(conds, is_default, sort))


def _page_order(sort: str) -> tuple[Any, Any]:
    """A page's order: by creation, ties by id."""
    if sort == "ASC":
        return from_fields.c.created_at.asc(), from_fields.c.id.asc()
    return from_fields.c.created_at.desc(), from_fields.c.id.desc()


def _page_query(conds: list[Any], is_default: bool | None, sort: str) -> Select[Any]:
    if is_default is not None:
        conds = [*conds, from_fields.c.is_default == is_default]
    # The total as a scalar subquery (evaluated once, on the covering index) rather than
    # count(*) OVER (): the window made SQLite materialise the page and sort it again, half
    # the cost of a bearer GET's reads. Uncorrelated: it counts from its own FROM.
    total = (
        select(func.count()).select_from(from_fields).where(and_(*conds)).correlate(None)
    ).scalar_subquery()
    return (
        select(from_fields, total.label("total_count"))
        .where(and_(*conds))
        .order_by(*_page_order(sort))
        .limit(bindparam("p_limit"))
        .offset(bindparam("p_offset"))
    )


PER_PAGE = 100  # perPage when the request names none


def _read_first_page(conn: Connection, _request: Any, caller: Caller) -> Any:
    """The common call, no parameters: the first page of everything, oldest first."""
    return _read_page(conn, caller.user_id, None, None, None, "ASC", 1, PER_PAGE, None)


class _PageRow(NamedTuple):
    public_id: str
    email: str
    name: str
    is_active: bool
    is_default: bool
    created_at: int


def _token_and_first_page() -> Joined:
    """The common call's page joined to the bearer check, in one statement: the token (its
    columns first, as the guard reads them) with the account's total of from-fields, then
    one row per from-field of the first page (LEFT JOIN: one row of NULLs if none). The
    token part is MATERIALIZED so that the count runs once, not per joined row."""
    ff = from_fields
    total = (
        select(func.count())
        .select_from(ff)
        .where(ff.c.user_id == access_tokens.c.user_id)
        .scalar_subquery()
    )
    tok = access_token_select().add_columns(total.label("total_count")).cte("tok")
    tok = tok.prefix_with("MATERIALIZED")
    stmt = (
        select(
            *tok.c,
            ff.c.public_id.label("ff_public_id"),
            ff.c.email.label("ff_email"),
            ff.c.name.label("ff_name"),
            ff.c.is_active.label("ff_is_active"),
            ff.c.is_default.label("ff_is_default"),
            ff.c.created_at.label("ff_created_at"),
        )
        .select_from(tok.outerjoin(ff, ff.c.user_id == tok.c.user_id))
        .order_by(*_page_order("ASC"))
        .limit(PER_PAGE)
    )
    width = len(tok.c)

    def finish(rows: list[Any]) -> Any:
        page = [_PageRow(*r[width:]) for r in rows if r[width] is not None]
        return page, int(rows[0][width - 1]), 1, PER_PAGE, None

    return Joined(Prepared(stmt), finish)


_FIRST_PAGE_JOINED = _token_and_first_page()


def _joined_read(request: Request) -> Joined | None:
    """The joined read for the common call on PostgreSQL, where it saves a round trip
    (bearer GET 157 -> 115 µs of CPU in process). On SQLite two statements cost fewer
    instructions than one with a materialized CTE (433 k against 461 k per bearer GET,
    ``python -m bench.inprocess bearer_get --server --callgrind``): no network to save."""
    if request.scope["query_string"] or request.app.state.rt.db.is_sqlite:
        return None
    return _FIRST_PAGE_JOINED


def _read_from_fields(conn: Connection, request: Request, caller: Caller) -> Any:
    """Validate the list request and read one page (and the total) in one statement.

    Runs inside the bearer guard's database read (``protected(..., prefetch=...)``)."""
    if not request.scope["query_string"]:
        return _read_first_page(conn, request, caller)
    unknown = sorted(k for k in request.query_params if k not in _LIST_PARAMS)
    if unknown:
        raise validation("Unknown query parameters", parameters=[u[:64] for u in unknown[:10]])
    page = _int_param(request, "page", 1, 1, 1_000_000)
    per_page = _int_param(request, "perPage", PER_PAGE, 1, 1000)
    email = _one(request, "query[email]")
    name = _one(request, "query[name]")
    is_default_raw = _one(request, "query[isDefault]")
    is_default: bool | None = None
    if is_default_raw is not None:
        if is_default_raw not in ("true", "false"):
            raise validation("query[isDefault] must be true or false", parameter="query[isDefault]")
        is_default = is_default_raw == "true"
    sort = (_one(request, "sort[createdOn]") or "ASC").upper()
    if sort not in ("ASC", "DESC"):
        raise validation("sort[createdOn] must be ASC or DESC", parameter="sort[createdOn]")
    fields_raw = _one(request, "fields")
    wanted: list[str] | None = None
    if fields_raw:
        # "fields=,," names no field: the same as no fields parameter, every field.
        wanted = [f.strip() for f in fields_raw.split(",") if f.strip()] or None
    if wanted is not None:
        bad = [f for f in wanted if f not in FROM_FIELD_FIELDS]
        if bad:
            raise validation("Unknown fields", fields=[b[:64] for b in bad[:10]])
    return _read_page(conn, caller.user_id, email, name, is_default, sort, page, per_page, wanted)


_LIST_PARAMS = frozenset(
    {
        "query[email]",
        "query[name]",
        "query[isDefault]",
        "sort[createdOn]",
        "fields",
        "page",
        "perPage",
    }
)


def _read_page(
    conn: Connection,
    user_id: int,
    email: str | None,
    name: str | None,
    is_default: bool | None,
    sort: str,
    page: int,
    per_page: int,
    wanted: list[str] | None,
) -> Any:
    query, params = _list_query(user_id, email, name, is_default, sort)
    params["p_limit"] = per_page
    params["p_offset"] = (page - 1) * per_page
    rows = query.all(conn, params)
    if rows:
        total = int(rows[0].total_count)
    elif page > 1:
        # Past the last page: no row carries the total, so count (rare).
        unpaged = query.stmt.limit(None).offset(None).order_by(None).subquery()
        total = int(conn.execute(select(func.count()).select_from(unpaged), params).scalar_one())
    else:
        total = 0
    return rows, total, page, per_page, wanted


def _page_answer(rt: Runtime, got: Any) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The items and paging headers of a page read by :func:`_read_from_fields`."""
    rows, total, page, per_page, wanted = got
    items = [from_field_json(rt, r) for r in rows]
    if wanted is not None:
        keep = set(wanted) | {"fromFieldId"}
        items = [{k: v for k, v in i.items() if k in keep} for i in items]
    headers = {
        "TotalCount": str(total),
        "TotalPages": str(max(1, math.ceil(total / per_page))) if total else "0",
        "CurrentPage": str(page),
    }
    return items, headers


@protected("from-fields.read", prefetch=_read_from_fields, joined=_joined_read)
async def list_from_fields(request: Request, caller: Caller) -> Response:
    rt: Runtime = request.app.state.rt
    got = prefetched(request)
    if got is None:
        got = await rt.db.run_read(_read_from_fields, request, caller)
    items, headers = _page_answer(rt, got)
    return JSON(items, headers=headers)


def list_from_fields_fast(rt: Runtime, scope: Scope) -> Answer | None:
    """``GET /v3/from-fields``, the common call, in one plain function (the server's lane).

    It answers exactly this: no query string; one ``Authorization: Bearer`` header and no
    X-Domain; a live token, with the from-fields.read scope, of an account that is not MAX;
    SQLite on a file and this process's rate-limit counters; a free concurrency slot. For
    anything else it returns None before it has counted or changed anything, and the call
    goes the ordinary way (``protected`` + :func:`list_from_fields`), which holds every rule
    and error. Its answer is byte for byte that way's (tests/api/test_fast_path.py)."""
    if scope["query_string"] or not rt.limiter.local:
        return None
    if not rt.db.direct:
        return None
    header = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            if header is not None:
                return None
            header = value
        elif name == b"x-domain":
            return None
    if header is None:
        return None
    # The guard's own parsing, checks and read (one read: token and page), so that the
    # rules live in one place; any refusal means "not the common call".
    try:
        token = bearer_value(header.decode("latin-1"))
    except ApiError:
        return None
    now = int(time.time())
    # The read and the page built from it, again only if nothing was committed since; kept
    # under the token's fingerprint (its stored hash is computed only when it is read).
    got = rt.db.read_unchanged(
        (_COMMON_CALL, rt.keys.fingerprint(token)), _common_call, rt, token, now
    )
    if got is None:
        return None
    found, page_headers, body = got
    try:
        caller = check(found, token, None, now)  # again: the token may have expired since
    except ApiError:
        return None
    limiter = rt.limiter
    key = caller.account_id
    # Taken before counting (the ordinary way counts first): a full account goes the
    # ordinary way uncounted, and gets the same answer there.
    if not limiter.acquire(key):
        return None
    try:
        decision = limiter.check_local(key)
        if not decision.allowed:
            denied = quota_denied(rt, decision, Request(scope))
            return denied.status_code, denied.raw_headers, bytes(denied.body)
        # As the ordinary way's JSON response and the guard write them.
        return 200, page_headers + decision.raw_headers(), body
    finally:
        limiter.release(key)


_COMMON_CALL = "from-fields: first page"
# The largest body the common call keeps (Database.read_unchanged keeps at most
# UNCHANGED_MAX values: this bounds their memory, 16 MiB at 1,024). Most accounts' first
# page is well under it: a from-field is ~300 bytes of JSON.
_KEPT_BODY_MAX = 16 * 1024


def _common_call(
    conn: Connection, rt: Runtime, token: str, now: int
) -> tuple[AccessToken, list[tuple[bytes, bytes]], bytes] | None:
    """The common call's read (the token, and the first page if the token passes) and its
    answer's body and page headers; None if the token does not pass (the ordinary way then
    answers) or if the page is longer than ``_KEPT_BODY_MAX``. The token's row is kept for
    the time checks of later calls."""
    hashes = rt.keys.token_hashes(token, ACCESS_KIND)
    found, caller, pre = token_and_prefetch(
        conn, hashes, token, None, None, now, "from-fields.read", _read_first_page
    )
    if found is None or caller is None or pre is None or not pre[0]:
        return None
    items, headers = _page_answer(rt, pre[1])
    body = dumps(items)
    if len(body) > _KEPT_BODY_MAX:
        return None  # a long page: the ordinary way answers it, and nothing is kept
    return found, json_headers(len(body), headers), body


async def _owned(conn: Any, caller: Caller, public_id: str) -> Any:
    if len(public_id) > 32 or not _storable(public_id):
        raise not_found("From field not found", fromFieldId=public_id[:32])
    row = (
        await conn.execute(
            select(from_fields).where(
                from_fields.c.public_id == public_id, from_fields.c.user_id == caller.user_id
            )
        )
    ).first()
    if row is None:
        # Another account's from-field is as invisible as a missing one.
        raise not_found("From field not found", fromFieldId=public_id)
    return row


@protected("from-fields.read")
async def get_from_field(request: Request, caller: Caller) -> Response:
    rt: Runtime = request.app.state.rt
    async with rt.db.read() as conn:
        row = await _owned(conn, caller, request.path_params["from_field_id"])
    return JSON(from_field_json(rt, row))


@protected("from-fields.write")
async def create_from_field(request: Request, caller: Caller) -> Response:
    rt: Runtime = request.app.state.rt
    data = await read_json(rt, request)
    problems: dict[str, str] = {}
    email = data.get("email")
    name = data.get("name")
    if (
        not isinstance(email, str)
        or not EMAIL.fullmatch(email.strip())
        or len(email) > 320
        or not _storable(email)
    ):
        problems["email"] = "a valid email address is required"
    if not isinstance(name, str) or not name.strip() or len(name) > 200 or not _storable(name):
        problems["name"] = "a name of 1 to 200 characters is required"
    unknown = sorted(set(data) - {"email", "name"})
    if unknown:
        problems["unknown"] = "unknown properties: " + ", ".join(u[:32] for u in unknown[:10])
    if problems:
        raise validation("The from-field is not valid", **problems)
    assert isinstance(email, str) and isinstance(name, str)
    now = int(time.time())
    try:
        async with rt.db.write() as conn:
            has_default = (
                await conn.execute(
                    select(func.count())
                    .select_from(from_fields)
                    .where(from_fields.c.user_id == caller.user_id, from_fields.c.is_default)
                )
            ).scalar_one()
            public_id = secrets.token_urlsafe(6).replace("-", "x").replace("_", "Y")
            await conn.execute(
                from_fields.insert().values(
                    public_id=public_id,
                    user_id=caller.user_id,
                    email=email.strip().lower(),
                    name=name.strip(),
                    is_active=True,
                    is_default=not has_default,
                    created_at=now,
                )
            )
            row = await _owned(conn, caller, public_id)
    except IntegrityError:
        raise conflict(
            "A from-field with this email already exists", email=email.strip().lower()
        ) from None
    return JSON(from_field_json(rt, row), 201)


@protected("from-fields.write")
async def delete_from_field(request: Request, caller: Caller) -> Response:
    rt: Runtime = request.app.state.rt
    async with rt.db.write() as conn:
        row = await _owned(conn, caller, request.path_params["from_field_id"])
        if row.is_default:
            raise validation(
                "The default from-field cannot be deleted; make another one the default first",
                fromFieldId=row.public_id,
            )
        await conn.execute(from_fields.delete().where(from_fields.c.id == row.id))
    return Response(status_code=204)


@protected("from-fields.write")
async def make_default(request: Request, caller: Caller) -> Response:
    rt: Runtime = request.app.state.rt
    async with rt.db.write() as conn:
        row = await _owned(conn, caller, request.path_params["from_field_id"])
        if not row.is_active:
            raise validation("An inactive from-field cannot be the default")
        await conn.execute(
            update(from_fields)
            .where(from_fields.c.user_id == caller.user_id, from_fields.c.id != row.id)
            .values(is_default=False)
        )
        await conn.execute(
            update(from_fields).where(from_fields.c.id == row.id).values(is_default=True)
        )
        row = await _owned(conn, caller, row.public_id)
    return JSON(from_field_json(rt, row))
