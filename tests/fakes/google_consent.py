"""Google's consent page in front of the fake Google: `GET /auth` grants at once, as if a person
clicked Allow, and redirects to the client's `redirect_uri` with a one-use code and the `state`.

It checks what the real page insists on (a known client, `response_type=code`, a redirect URI,
an S256 PKCE challenge) and answers 400 otherwise; `deny_next` makes the next visit come back
with `error=access_denied`. Every other path goes to the wrapped FakeGoogle, whose token endpoint
exchanges the code (checking the verifier against the challenge). `visits` records the queries.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlencode

from starlette.responses import PlainTextResponse, RedirectResponse
from starlette.types import Receive, Scope, Send

from tests.fakes.youtube import FakeGoogle


@dataclass
class ConsentScreen:
    """ASGI: `/auth` here, the rest to `google`."""

    google: FakeGoogle
    grant_token: str = "1//consented-" + secrets.token_urlsafe(12)
    deny_next: bool = False
    visits: list[dict[str, str]] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/auth":
            await self.google(scope, receive, send)
            return
        query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
        self.visits.append(query)
        problem = self._problem(query)
        if problem:
            await PlainTextResponse(problem, 400)(scope, receive, send)
            return
        answer = {"state": query.get("state", "")}
        if self.deny_next:
            self.deny_next = False
            answer["error"] = "access_denied"
        else:
            code = "4/fake-" + secrets.token_urlsafe(16)
            self.google.add_authorization_code(
                code, redirect_uri=query["redirect_uri"], code_challenge=query["code_challenge"],
                refresh_token=self.grant_token, client_id=query["client_id"],
            )  # fmt: skip
            answer["code"] = code
        await RedirectResponse(f"{query['redirect_uri']}?{urlencode(answer)}", 302)(
            scope, receive, send
        )

    def _problem(self, query: dict[str, str]) -> str | None:
        if query.get("client_id") not in self.google.clients:
            return "Error 401: invalid_client"
        if query.get("response_type") != "code":
            return "Error 400: unsupported_response_type"
        if not query.get("redirect_uri"):
            return "Error 400: redirect_uri_mismatch"
        if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            return "Error 400: invalid_request (PKCE S256 required)"
        return None
