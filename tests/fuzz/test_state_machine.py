"""Stateful fuzzing of the OAuth state machine against a running server.

Two users and two applications; hypothesis interleaves authorizations, code exchanges
(honest, replayed, stolen, PKCE stripped), refreshes (some narrowing the scope, some asking
for more, some replaying a rotated token), stolen refresh tokens, API calls, revocations,
introspections and "disconnect" on the connected-apps page. A model predicts every answer;
the invariants are:

- no token ever works for another user's data (``GET /v3/accounts`` answers its owner);
- a revoked or spent code, token or grant never works again;
- a refresh never widens the scope.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    multiple,
    rule,
    run_state_machine_as_test,
)

from tests.attacks.support import code_for, csrf_of, pkce_pair, signup
from tests.conftest import Client, Server
from tests.fuzz.conftest import fuzz_settings

SCOPES: list[str | None] = [
    None,
    "account.read",
    "from-fields.read",
    "account.read from-fields.read",
    "account.read from-fields.read from-fields.write",
]


def covers(granted: str | None, wanted: str | None) -> bool:
    if granted is None:
        return True
    if wanted is None:
        return False
    return set(wanted.split()) <= set(granted.split())


@dataclass
class User:
    email: str
    browser: httpx.Client


@dataclass
class Grant:
    user: int
    client: int
    revoked: bool = False
    pairs: list[Pair] = field(default_factory=list)


@dataclass
class Code:
    value: str
    grant: Grant
    scope: str | None
    verifier: str | None
    spent: bool = False


@dataclass
class Pair:
    access: str
    refresh: str
    grant: Grant
    scope: str | None
    access_revoked: bool = False
    refresh_spent: bool = False
    history: list[str | None] = field(default_factory=list)

    @property
    def access_works(self) -> bool:
        return not (self.access_revoked or self.grant.revoked)


@dataclass
class World:
    server: Server
    users: list[User]
    clients: list[Client]


class OAuthMachine(RuleBasedStateMachine):
    codes = Bundle("codes")
    pairs = Bundle("pairs")

    def __init__(self, world: World) -> None:
        super().__init__()
        self.w = world
        self.grants: list[Grant] = []
        self.http = httpx.Client(base_url=world.server.url, timeout=30)

    def teardown(self) -> None:
        self.http.close()

    # --- helpers -----------------------------------------------------------------------------
    def token(self, client: int, **form: str) -> httpx.Response:
        return self.http.post("/v3/token", auth=self.w.clients[client].auth, data=form)

    def other(self, i: int) -> int:
        return 1 - i

    def revoke_grant(self, grant: Grant) -> None:
        """The model's grant ends: every access token it ever issued must stop working now."""
        grant.revoked = True
        for pair in grant.pairs[-3:]:
            self.check_api(pair)

    def check_api(self, pair: Pair) -> None:
        r = self.http.get("/v3/accounts", headers={"Authorization": f"Bearer {pair.access}"})
        owner = self.w.users[pair.grant.user].email
        if r.status_code == 200:
            # The cross-user invariant holds whatever the model says.
            assert r.json()["email"] == owner, (r.json()["email"], owner)
        if not pair.access_works:
            assert r.status_code == 401, (r.status_code, "a revoked token still works")
        elif covers(pair.scope, "account.read"):
            assert r.status_code == 200, r.text
        else:
            assert r.status_code == 403, r.text

    # --- every run starts with a narrow and a whole-account pair of different users/apps ---
    def _start(self, user: int, client: int, scope: str | None) -> Pair:
        code = self.authorize(user, client, scope, pkce=False)
        pair = self.redeem(code)
        assert isinstance(pair, Pair)
        return pair

    @initialize(target=pairs, scope=st.sampled_from(SCOPES[1:4]))
    def start_narrow(self, scope: str) -> Pair:
        return self._start(0, 0, scope)

    @initialize(target=pairs)
    def start_whole_account(self) -> Pair:
        return self._start(1, 1, None)

    @initialize(target=codes)
    def start_spent_code(self) -> Code:
        code = self.authorize(0, 1, None, pkce=True)
        self.redeem(code)
        return code

    # --- rules -------------------------------------------------------------------------------
    @rule(target=codes, user=st.integers(0, 1), client=st.integers(0, 1),
          scope=st.sampled_from(SCOPES), pkce=st.booleans())
    def authorize(self, user: int, client: int, scope: str | None, pkce: bool) -> Code:
        params: dict[str, str] = {}
        if scope is not None:
            params["scope"] = scope
        verifier = None
        if pkce:
            verifier, challenge = pkce_pair()
            params.update(code_challenge=challenge, code_challenge_method="S256")
        value = code_for(self.w.users[user].browser, self.w.clients[client], **params)
        grant = Grant(user, client)
        self.grants.append(grant)
        return Code(value, grant, scope, verifier)

    @rule(target=pairs, code=codes)
    def redeem(self, code: Code) -> Any:
        form = {"grant_type": "authorization_code", "code": code.value}
        if code.verifier:
            form["code_verifier"] = code.verifier
        r = self.token(code.grant.client, **form)
        if code.spent or code.grant.revoked:
            assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text
            if code.spent:
                self.revoke_grant(code.grant)  # RFC 6749 §4.1.2: a replay revokes the grant
            return multiple()
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["scope"] == code.scope
        code.spent = True
        pair = Pair(body["access_token"], body["refresh_token"], code.grant, body["scope"])
        code.grant.pairs.append(pair)
        return pair

    @rule(code=codes)
    def replay_code(self, code: Code) -> None:
        """The client's code is replayed (by whoever holds its secret): refused, and every
        token issued from it is revoked."""
        if not code.spent:
            return
        form = {"grant_type": "authorization_code", "code": code.value}
        if code.verifier:
            form["code_verifier"] = code.verifier
        r = self.token(code.grant.client, **form)
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text
        self.revoke_grant(code.grant)

    @rule(code=codes)
    def steal_code(self, code: Code) -> None:
        """Another application redeems the code: refused, and nothing changes."""
        form = {"grant_type": "authorization_code", "code": code.value}
        if code.verifier:
            form["code_verifier"] = code.verifier
        r = self.token(self.other(code.grant.client), **form)
        assert r.status_code == 400 and "access_token" not in r.text

    @rule(code=codes)
    def strip_pkce(self, code: Code) -> None:
        if code.verifier is None:
            return
        r = self.token(code.grant.client, grant_type="authorization_code", code=code.value)
        assert r.status_code == 400 and "access_token" not in r.text
        if code.spent:
            self.revoke_grant(code.grant)  # still a replay of a used code by its own client

    @rule(target=pairs, pair=pairs, requested=st.sampled_from([None, None, *SCOPES[1:]]))
    def refresh(self, pair: Pair, requested: str | None) -> Any:
        form = {"grant_type": "refresh_token", "refresh_token": pair.refresh}
        if requested is not None:
            form["scope"] = requested
        r = self.token(pair.grant.client, **form)
        if pair.grant.revoked:
            assert r.status_code == 400, r.text
            return multiple()
        if pair.refresh_spent:
            # Grace window 0: any reuse of a rotated token revokes the grant.
            assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text
            self.revoke_grant(pair.grant)
            return multiple()
        if requested is not None and not covers(pair.scope, requested):
            assert r.status_code == 400 and r.json()["error"] == "invalid_scope", r.text
            return multiple()  # refused before anything was spent
        assert r.status_code == 200, r.text
        body = r.json()
        # A refresh never widens the scope.
        assert covers(pair.scope, body["scope"]), (pair.scope, body["scope"])
        assert body["scope"] == (requested if requested is not None else pair.scope)
        pair.refresh_spent = True
        new = Pair(body["access_token"], body["refresh_token"], pair.grant, body["scope"],
                   history=[*pair.history, pair.scope])
        pair.grant.pairs.append(new)
        return new

    @rule(pair=pairs)
    def widen_on_refresh(self, pair: Pair) -> None:
        """Ask a refresh for more than was granted: refused, and nothing is spent."""
        wider = SCOPES[-1]
        if covers(pair.scope, wider):
            return
        r = self.token(pair.grant.client, grant_type="refresh_token",
                       refresh_token=pair.refresh, scope=wider)
        assert r.status_code == 400 and "access_token" not in r.text, r.text
        if pair.refresh_spent and not pair.grant.revoked:
            self.revoke_grant(pair.grant)  # it was a reuse all the same
        elif not pair.grant.revoked:
            assert r.json()["error"] == "invalid_scope", r.text

    @rule(pair=pairs)
    def steal_refresh_token(self, pair: Pair) -> None:
        """Another application presents the refresh token: refused, nothing changes."""
        other = self.other(pair.grant.client)
        r = self.token(other, grant_type="refresh_token", refresh_token=pair.refresh)
        assert r.status_code == 400 and "access_token" not in r.text, r.text

    @rule(pair=pairs)
    def call_api(self, pair: Pair) -> None:
        self.check_api(pair)

    @rule(pair=pairs, by_owner=st.booleans())
    def revoke_access_token(self, pair: Pair, by_owner: bool) -> None:
        client = pair.grant.client if by_owner else self.other(pair.grant.client)
        r = self.http.post("/v3/token/revoke", auth=self.w.clients[client].auth,
                           data={"token": pair.access})
        if by_owner:
            assert r.status_code == 200
            pair.access_revoked = True
        else:
            assert r.status_code in (200, 400)
        self.check_api(pair)

    @rule(pair=pairs, by_owner=st.booleans())
    def revoke_refresh_token(self, pair: Pair, by_owner: bool) -> None:
        client = pair.grant.client if by_owner else self.other(pair.grant.client)
        r = self.http.post("/v3/token/revoke", auth=self.w.clients[client].auth,
                           data={"token": pair.refresh, "token_type_hint": "refresh_token"})
        if by_owner:
            assert r.status_code == 200
            self.revoke_grant(pair.grant)  # RFC 7009 §2.1: the grant and its tokens end
        else:
            assert r.status_code in (200, 400)
        self.check_api(pair)

    @rule(pair=pairs, by_owner=st.booleans())
    def introspect(self, pair: Pair, by_owner: bool) -> None:
        client = pair.grant.client if by_owner else self.other(pair.grant.client)
        for token, alive in ((pair.access, pair.access_works),
                             (pair.refresh, not (pair.refresh_spent or pair.grant.revoked))):
            r = self.http.post("/v3/token/introspect", auth=self.w.clients[client].auth,
                               data={"token": token})
            assert r.status_code == 200
            assert r.json()["active"] is (alive and by_owner), (r.json(), alive, by_owner)

    @rule(user=st.integers(0, 1), client=st.integers(0, 1))
    def disconnect(self, user: int, client: int) -> None:
        """The user revokes the application on the connected-apps page."""
        b = self.w.users[user].browser
        r = b.post(f"/connected-apps/{self.w.clients[client].client_id}/revoke",
                   data={"csrf_token": csrf_of(b, "/connected-apps")})
        assert r.status_code == 303, r.text
        for g in self.grants:
            if g.user == user and g.client == client and not g.revoked:
                self.revoke_grant(g)


def test_oauth_state_machine(fuzz_server: Server) -> None:
    users = [User(*signup(fuzz_server, f"Fuzz User {i}")) for i in range(2)]
    clients = [fuzz_server.new_client(name=f"Fuzz App {i}") for i in range(2)]
    world = World(fuzz_server, users, clients)
    try:
        run_state_machine_as_test(lambda: OAuthMachine(world), settings=fuzz_settings())
    finally:
        for u in users:
            u.browser.close()
