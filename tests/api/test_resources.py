"""/v3/accounts and /v3/from-fields in GetResponse's shapes (SPEC §1.3)."""

from __future__ import annotations

from typing import Any

import pytest
from api_support import Account, assert_gr_error

FROM_FIELD_KEYS = {
    "fromFieldId", "href", "email", "rewrittenEmail", "name", "isActive", "isDefault",
    "createdOn", "domain",
}  # fmt: skip


@pytest.fixture(scope="module")
def untouched(server: Any) -> Account:
    """An account that only ever receives requests that must be refused."""
    return Account(server, "Never Changed")


def test_account_has_getresponse_shape(server: Any, make_account: Any) -> None:
    acct = make_account("Ann Example")
    r = acct.call("GET", "/v3/accounts")
    assert r.status_code == 200
    body = r.json()
    for key in ("accountId", "firstName", "lastName", "email", "phone", "companyName", "href"):
        assert key in body, key
    assert body["email"] == acct.email
    assert (body["firstName"], body["lastName"]) == ("Ann", "Example")
    assert set(body["countryCode"]) >= {"countryCodeId", "countryCode"}
    assert set(body["timeZone"]) >= {"name", "offset"}
    assert body["href"] == f"{server.url}/v3/accounts"


def test_new_account_has_its_own_address_as_default_from_field(account: Account) -> None:
    r = account.call("GET", "/v3/from-fields")
    assert r.status_code == 200
    (ff,) = r.json()
    assert set(ff) == FROM_FIELD_KEYS
    assert ff["email"] == account.email
    assert ff["isActive"] == "true" and ff["isDefault"] == "true"
    assert isinstance(ff["fromFieldId"], str)
    assert ff["href"].endswith(f"/v3/from-fields/{ff['fromFieldId']}")
    assert ff["createdOn"].endswith("+0000")
    assert ff["domain"]["domain"] == "example.com"
    assert (r.headers["TotalCount"], r.headers["TotalPages"], r.headers["CurrentPage"]) == (
        "1",
        "1",
        "1",
    )


def test_create_get_and_delete_a_from_field(account: Account) -> None:
    r = account.create("News@Example.com", "Newsletter")
    assert r.status_code == 201, r.text
    ff = r.json()
    assert set(ff) == FROM_FIELD_KEYS
    assert ff["email"] == "news@example.com" and ff["name"] == "Newsletter"
    assert ff["isDefault"] == "false" and ff["isActive"] == "true"
    got = account.call("GET", f"/v3/from-fields/{ff['fromFieldId']}")
    assert got.status_code == 200 and got.json() == ff
    assert account.call("DELETE", f"/v3/from-fields/{ff['fromFieldId']}").status_code == 204
    gone = account.call("GET", f"/v3/from-fields/{ff['fromFieldId']}")
    assert_gr_error(gone, 404, 1013)
    assert_gr_error(account.call("DELETE", f"/v3/from-fields/{ff['fromFieldId']}"), 404, 1013)


def test_duplicate_email_is_409_1008(account: Account) -> None:
    assert account.create("dup@example.com").status_code == 201
    r = account.create("DUP@example.com", "Other name")
    assert_gr_error(r, 409, 1008)
    assert len(account.call("GET", "/v3/from-fields").json()) == 2
    assert_gr_error(account.create(account.email), 409, 1008)


@pytest.mark.parametrize(
    "body",
    [
        {"email": "not-an-email", "name": "x"},
        {"email": "a@example.com"},
        {"name": "x"},
        {"email": "a@example.com", "name": ""},
        {"email": "a@example.com", "name": "x", "isDefault": "true"},
        {"email": 5, "name": ["x"]},
        {"email": "a@example.com", "name": "nul\x00name"},
        {"email": "a\x00@example.com", "name": "x"},
        {"email": "a@example.com", "name": "bell\x07"},
        [],
        "text",
    ],
)
def test_invalid_from_field_is_400_1000(untouched: Account, body: Any) -> None:
    r = untouched.call("POST", "/v3/from-fields", json=body)
    assert_gr_error(r, 400, 1000)
    assert len(untouched.call("GET", "/v3/from-fields").json()) == 1


@pytest.mark.parametrize(
    "raw",
    [
        b'{"email": "a@example.com", "name": "\\ud800"}',
        b"[" * 30000,
        b'{"email": "a@example.com", "name": "x"' + b"," * 10 + b"}",
        b"\xff\xfe{}",
    ],
    ids=["lone-surrogate", "deep-nesting", "trailing-commas", "not-utf8"],
)
def test_hostile_json_is_400_1000(untouched: Account, raw: bytes) -> None:
    r = untouched.call(
        "POST", "/v3/from-fields", content=raw, headers={"Content-Type": "application/json"}
    )
    assert_gr_error(r, 400, 1000)
    assert len(untouched.call("GET", "/v3/from-fields").json()) == 1


def test_from_field_body_must_be_json(account: Account) -> None:
    r = account.call("POST", "/v3/from-fields", data={"email": "a@example.com", "name": "x"})
    assert_gr_error(r, 400, 1021)
    r = account.call(
        "POST",
        "/v3/from-fields",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert_gr_error(r, 400, 1000)


def test_default_switching(account: Account) -> None:
    original = account.call("GET", "/v3/from-fields").json()[0]
    new = account.create("second@example.com").json()
    r = account.call("POST", f"/v3/from-fields/{new['fromFieldId']}/default")
    assert r.status_code == 200 and r.json()["isDefault"] == "true"
    by_id = {f["fromFieldId"]: f for f in account.call("GET", "/v3/from-fields").json()}
    assert by_id[new["fromFieldId"]]["isDefault"] == "true"
    assert by_id[original["fromFieldId"]]["isDefault"] == "false"
    defaults = account.call("GET", "/v3/from-fields", params={"query[isDefault]": "true"})
    assert [f["fromFieldId"] for f in defaults.json()] == [new["fromFieldId"]]
    # The former default can now be deleted; the current one cannot.
    assert account.call("DELETE", f"/v3/from-fields/{original['fromFieldId']}").status_code == 204
    r = account.call("DELETE", f"/v3/from-fields/{new['fromFieldId']}")
    assert_gr_error(r, 400, 1000)
    assert account.call("GET", f"/v3/from-fields/{new['fromFieldId']}").status_code == 200


def test_default_from_field_cannot_be_deleted(account: Account) -> None:
    ff = account.call("GET", "/v3/from-fields").json()[0]
    assert_gr_error(account.call("DELETE", f"/v3/from-fields/{ff['fromFieldId']}"), 400, 1000)
    assert account.call("GET", f"/v3/from-fields/{ff['fromFieldId']}").status_code == 200


@pytest.fixture(scope="module")
def seven(server: Any) -> Account:
    """An account with seven from-fields (its own address plus six)."""
    acct = Account(server, "Seven Fields")
    for i in range(6):
        name = "Marketing" if i % 2 else "Support"
        assert acct.create(f"s{i}@shop{i}.example.org", f"{name} {i}").status_code == 201
    return acct


def test_pagination_headers_and_pages(seven: Account) -> None:
    seen = []
    for page in (1, 2, 3):
        r = seven.call("GET", "/v3/from-fields", params={"perPage": "3", "page": str(page)})
        assert r.status_code == 200
        assert r.headers["TotalCount"] == "7"
        assert r.headers["TotalPages"] == "3"
        assert r.headers["CurrentPage"] == str(page)
        seen += [f["fromFieldId"] for f in r.json()]
        assert len(r.json()) == (3 if page < 3 else 1)
    assert len(set(seen)) == 7
    past = seven.call("GET", "/v3/from-fields", params={"perPage": "3", "page": "4"})
    assert past.status_code == 200 and past.json() == [] and past.headers["CurrentPage"] == "4"


def test_default_page_size_is_100(seven: Account) -> None:
    r = seven.call("GET", "/v3/from-fields")
    assert len(r.json()) == 7 and r.headers["TotalPages"] == "1"
    r = seven.call("GET", "/v3/from-fields", params={"perPage": "1000"})
    assert r.status_code == 200
    r = seven.call("GET", "/v3/from-fields", params={"perPage": "1"})
    assert len(r.json()) == 1 and r.headers["TotalPages"] == "7"


@pytest.mark.parametrize(
    "params",
    [
        {"perPage": "0"},
        {"perPage": "1001"},
        {"perPage": "-1"},
        {"perPage": "ten"},
        {"perPage": "\u00b2"},
        {"perPage": "\u0663"},
        {"perPage": "9" * 5000},
        {"page": "\u00b9"},
        {"query[email]": "a\x00b"},
        {"page": "0"},
        {"page": "1.5"},
        {"query[isDefault]": "yes"},
        {"sort[createdOn]": "sideways"},
        {"fields": "email,password"},
        {"unknown": "1"},
    ],
)
def test_bad_list_parameters_are_400_1000(seven: Account, params: dict[str, str]) -> None:
    assert_gr_error(seven.call("GET", "/v3/from-fields", params=params), 400, 1000)


def test_duplicate_list_parameter_is_400_1000(seven: Account) -> None:
    r = seven.call("GET", "/v3/from-fields", params=[("perPage", "1"), ("perPage", "2")])
    assert_gr_error(r, 400, 1000)


def test_query_by_email_and_name(seven: Account) -> None:
    r = seven.call("GET", "/v3/from-fields", params={"query[email]": "shop3"})
    assert [f["email"] for f in r.json()] == ["s3@shop3.example.org"]
    assert r.headers["TotalCount"] == "1"
    r = seven.call("GET", "/v3/from-fields", params={"query[name]": "marketing"})
    assert sorted(f["name"] for f in r.json()) == ["Marketing 1", "Marketing 3", "Marketing 5"]
    r = seven.call("GET", "/v3/from-fields", params={"query[email]": "%"})
    assert r.status_code == 200 and r.json() == []
    r = seven.call(
        "GET", "/v3/from-fields", params={"query[isDefault]": "false", "query[name]": "Support"}
    )
    assert len(r.json()) == 3 and all(f["isDefault"] == "false" for f in r.json())


def test_sort_by_created_on(seven: Account) -> None:
    asc = [f["fromFieldId"] for f in seven.call("GET", "/v3/from-fields").json()]
    desc = seven.call("GET", "/v3/from-fields", params={"sort[createdOn]": "desc"}).json()
    assert [f["fromFieldId"] for f in desc] == list(reversed(asc))
    asc2 = seven.call("GET", "/v3/from-fields", params={"sort[createdOn]": "ASC"}).json()
    assert [f["fromFieldId"] for f in asc2] == asc
    assert asc2[0]["email"] == seven.email  # the account's own address came first


def test_fields_selects_members(seven: Account) -> None:
    r = seven.call("GET", "/v3/from-fields", params={"fields": "email,isDefault"})
    assert r.status_code == 200
    for f in r.json():
        assert set(f) == {"fromFieldId", "email", "isDefault"}


def test_fields_naming_no_field_returns_every_field(seven: Account) -> None:
    r = seven.call("GET", "/v3/from-fields", params={"fields": ",,"})
    assert r.status_code == 200
    for f in r.json():
        assert {"fromFieldId", "email", "name", "isDefault", "isActive", "createdOn"} <= set(f)


def test_accounts_never_see_each_others_from_fields(make_account: Any) -> None:
    a, b = make_account("Ann A"), make_account("Bob B")
    b_field = b.create("b-only@example.com").json()
    b_default = b.call("GET", "/v3/from-fields", params={"query[isDefault]": "true"}).json()[0]
    a_list = a.call("GET", "/v3/from-fields").json()
    assert [f["email"] for f in a_list] == [a.email]
    for ff in (b_field, b_default):
        path = f"/v3/from-fields/{ff['fromFieldId']}"
        assert_gr_error(a.call("GET", path), 404, 1013)
        assert_gr_error(a.call("DELETE", path), 404, 1013)
        assert_gr_error(a.call("POST", path + "/default"), 404, 1013)
    # B's data is untouched by A's attempts.
    assert b.call("GET", f"/v3/from-fields/{b_field['fromFieldId']}").status_code == 200
    assert b.call("GET", f"/v3/from-fields/{b_default['fromFieldId']}").json()["isDefault"] == (
        "true"
    )
    # The same email may exist in two accounts.
    assert a.create("b-only@example.com").status_code == 201
    assert a.call("GET", "/v3/accounts").json()["email"] == a.email


def test_client_credentials_token_sees_the_developers_account(server: Any) -> None:
    token = server.token(server.client, grant_type="client_credentials").json()["access_token"]
    assert server.api("GET", "/v3/accounts", token).json()["email"] == server.developer
    emails = [f["email"] for f in server.api("GET", "/v3/from-fields", token).json()]
    assert server.developer in emails


def test_unknown_from_field_id_is_404_1013(account: Account) -> None:
    for fid in ("nope", "x" * 200, "%2e%2e", "%00", "%ff"):
        assert_gr_error(account.call("GET", f"/v3/from-fields/{fid}"), 404, 1013)
