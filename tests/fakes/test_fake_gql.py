"""The fake GQL speaks the documented wire format: both body shapes, cursors, refusals."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.fakes.gql import CHAPTERS_OP, COMMENTS_HASH, COMMENTS_OP, FakeGql
from tests.fakes.server import LocalServer

HEADERS = {"Client-ID": "kimne78kx3ncx6brgo4mv6wki5h1ko", "Content-Type": "application/json"}


def _op(
    variables: dict[str, Any], name: str = COMMENTS_OP, digest: str = COMMENTS_HASH
) -> dict[str, Any]:
    return {"operationName": name, "variables": variables,
            "extensions": {"persistedQuery": {"version": 1, "sha256Hash": digest}}}  # fmt: skip


async def _post(
    server: LocalServer, body: object, headers: dict[str, str] = HEADERS
) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.post(f"{server.url}/gql", content=json.dumps(body), headers=headers)


async def test_object_and_array_bodies_get_the_same_shape_back() -> None:
    """An object is answered with an object, a one-element array with an array; cursors chain."""
    fake = FakeGql(page_size=3)
    fake.add_video("1")
    made = fake.script_chat("1", 7)
    async with LocalServer(fake) as server:
        first = (await _post(server, _op({"videoID": "1", "contentOffsetSeconds": 0}))).json()
        edges = first["data"]["video"]["comments"]["edges"]
        assert [e["node"]["id"] for e in edges] == [c.id for c in made[:3]]
        assert len({e["cursor"] for e in edges}) == 1
        assert "=" not in edges[0]["cursor"]
        second = (
            await _post(server, [_op({"videoID": "1", "cursor": edges[-1]["cursor"]})])
        ).json()
        assert isinstance(second, list)
        page = second[0]["data"]["video"]["comments"]
        assert [e["node"]["id"] for e in page["edges"]] == [c.id for c in made[3:6]]
        assert page["pageInfo"]["hasNextPage"] is True
    assert [r.shape for r in fake.received] == ["object", "array"]


async def test_refusals_and_errors_as_twitch_gives_them() -> None:
    """Missing Client-ID is 400; integrity, comments null, video null, 429 and 5xx as documented."""
    fake = FakeGql()
    fake.add_video("1")
    fake.script_chat("1", 5)
    async with LocalServer(fake) as server:
        assert (
            await _post(server, _op({"videoID": "1", "contentOffsetSeconds": 0}), {})
        ).status_code == 400
        fake.integrity_next()
        body = (await _post(server, _op({"videoID": "1", "contentOffsetSeconds": 0}))).json()
        assert body["errors"][0]["message"] == "failed integrity check"
        assert body["extensions"]["challenge"]["type"] == "integrity"
        fake.comments_null_next()
        body = (await _post(server, _op({"videoID": "1", "contentOffsetSeconds": 0}))).json()
        assert body["data"]["video"]["comments"] is None
        assert "errors" not in body
        fake.rate_limit_next()
        fake.fail_next(1, 502)
        assert (
            await _post(server, _op({"videoID": "1", "contentOffsetSeconds": 0}))
        ).status_code == 429
        assert (
            await _post(server, _op({"videoID": "1", "contentOffsetSeconds": 0}))
        ).status_code == 502
        body = (await _post(server, _op({"videoID": "9", "contentOffsetSeconds": 0}))).json()
        assert body["data"]["video"] is None
        both = (
            await _post(server, _op({"videoID": "1", "contentOffsetSeconds": 0, "cursor": "x"}))
        ).json()
        assert both["data"]["video"]["comments"] is None
        unknown = (await _post(server, _op({"videoID": "1"}, CHAPTERS_OP, "0" * 64))).json()
        assert unknown["errors"][0]["message"] == "PersistedQueryNotFound"
    assert [r.outcome for r in fake.received] == ["bad", "integrity", "comments_null", "429", "5xx",
                                                  "video_null", "bad", "bad"]  # fmt: skip
