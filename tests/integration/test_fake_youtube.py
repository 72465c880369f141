"""The fake Google over real HTTP on 127.0.0.1: OAuth grants, resumable uploads, listings, knobs."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.server import LocalServer
from tests.fakes.youtube import ALIGN, FakeGoogle

KIB256 = ALIGN
ROOT = Path(__file__).resolve().parents[2]
UPLOAD = "/upload/youtube/v3/videos?uploadType=resumable&part=snippet,status"


@pytest.fixture
def fake() -> FakeGoogle:
    """A fake Google with its default client and refresh token."""
    return FakeGoogle()


@pytest.fixture
async def client(fake: FakeGoogle) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client pointed at the fake served on a free local port."""
    async with (
        LocalServer(fake) as server,
        httpx.AsyncClient(base_url=server.url, timeout=5) as http,
    ):
        yield http


async def refresh(
    client: httpx.AsyncClient,
    token: str = "fake-google-refresh-token",  # noqa: S107  # the fake's test credential
    client_id: str = "fake-google-client-id",
) -> httpx.Response:
    """POST /token with the refresh-token grant."""
    return await client.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": token,
            "client_id": client_id,
            "client_secret": "fake-google-client-secret",
        },
    )


async def bearer(client: httpx.AsyncClient) -> dict[str, str]:
    """Authorization headers with a fresh access token from the token endpoint."""
    token = (await refresh(client)).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def video_resource(
    title: str = "Stream 1", description: str = "", **snippet: object
) -> dict[str, object]:
    """A videos.insert body."""
    return {
        "snippet": {"title": title, "description": description, "categoryId": "20", **snippet},
        "status": {"privacyStatus": "private", "selfDeclaredMadeForKids": False},
    }


async def open_session(
    client: httpx.AsyncClient, size: int, resource: dict[str, object] | None = None
) -> httpx.Response:
    """Start a resumable upload of `size` bytes."""
    return await client.post(
        UPLOAD,
        json=resource or video_resource(),
        headers={
            **await bearer(client),
            "X-Upload-Content-Length": str(size),
            "X-Upload-Content-Type": "video/mp4",
        },
    )


async def session_uri(client: httpx.AsyncClient, size: int, description: str = "") -> str:
    """The URI of a new session for `size` bytes."""
    response = await open_session(client, size, video_resource(description=description))
    assert response.status_code == 200, response.text
    return response.headers["location"]


async def put(
    client: httpx.AsyncClient, uri: str, data: bytes, first: int, total: int
) -> httpx.Response:
    """PUT data[first:...] as the chunk starting at `first` (no Authorization: a capability URL)."""
    last = first + len(data) - 1
    return await client.put(
        uri, content=data, headers={"Content-Range": f"bytes {first}-{last}/{total}"}
    )


async def query(client: httpx.AsyncClient, uri: str, total: int) -> httpx.Response:
    """The status query: an empty PUT with Content-Range: bytes */total."""
    return await client.put(uri, content=b"", headers={"Content-Range": f"bytes */{total}"})


async def upload(client: httpx.AsyncClient, uri: str, data: bytes, chunk: int) -> httpx.Response:
    """Send `data` from the session's committed offset on, `chunk` bytes a PUT; the last answer."""
    status = await query(client, uri, len(data))
    offset = int(status.headers["range"].split("-")[1]) + 1 if "range" in status.headers else 0
    response = status
    while offset < len(data):
        response = await put(client, uri, data[offset : offset + chunk], offset, len(data))
        assert response.status_code in {200, 308}, response.text
        offset += min(chunk, len(data) - offset)
    return response


async def test_refresh_gives_an_access_token_and_refuses_bad_grants(
    client: httpx.AsyncClient, fake: FakeGoogle
) -> None:
    """A known refresh token gives a bearer token; unknown or revoked ones give invalid_grant; a wrong client invalid_client."""
    response = await refresh(client)
    assert response.status_code == 200
    body = response.json()
    assert body["expires_in"] == 3599
    assert body["token_type"] == "Bearer"
    assert "youtube.upload" in body["scope"]
    assert "refresh_token" not in body
    unknown = await refresh(client, token="nope")
    assert unknown.status_code == 400
    assert unknown.json() == {
        "error": "invalid_grant",
        "error_description": "Token has been expired or revoked.",
    }
    wrong_client = await refresh(client, client_id="someone-else")
    assert wrong_client.status_code == 401
    assert wrong_client.json()["error"] == "invalid_client"
    fake.revoke("fake-google-refresh-token")
    assert (await refresh(client)).json()["error"] == "invalid_grant"
    assert fake.refreshes == 1
    assert fake.count("token") == 4


async def test_rotated_refresh_token_replaces_the_old_one(
    client: httpx.AsyncClient, fake: FakeGoogle
) -> None:
    """rotate_refresh_token_next hands out a new refresh token once; the old one stops working."""
    fake.rotate_refresh_token_next("rotated-token")
    first = (await refresh(client)).json()
    assert first["refresh_token"] == "rotated-token"
    assert (await refresh(client)).json()["error"] == "invalid_grant"
    second = await refresh(client, token="rotated-token")
    assert second.status_code == 200
    assert "refresh_token" not in second.json()
    assert fake.refreshes == 2


async def test_token_failures_and_expiry_knobs(client: httpx.AsyncClient, fake: FakeGoogle) -> None:
    """fail_token_next answers its status n times; expire_access_tokens makes the API answer 401 authError."""
    fake.fail_token_next(503, n=2)
    assert [(await refresh(client)).status_code for _ in range(3)] == [503, 503, 200]
    headers = await bearer(client)
    params = {"part": "contentDetails", "mine": "true"}
    assert (
        await client.get("/youtube/v3/channels", params=params, headers=headers)
    ).status_code == 200
    fake.expire_access_tokens()
    denied = await client.get("/youtube/v3/channels", params=params, headers=headers)
    assert denied.status_code == 401
    error = denied.json()["error"]
    assert error["status"] == "UNAUTHENTICATED"
    assert error["errors"][0]["reason"] == "authError"
    assert error["errors"][0]["location"] == "Authorization"
    missing = await client.get("/youtube/v3/channels", params=params)
    assert missing.status_code == 401
    fake.access_token_ttl_s = 0
    stale = await bearer(client)
    assert (
        await client.get("/youtube/v3/channels", params=params, headers=stale)
    ).status_code == 401


async def test_authorization_code_grant_with_pkce(
    client: httpx.AsyncClient, fake: FakeGoogle
) -> None:
    """A registered code with a PKCE challenge gives access and refresh tokens once, with Basic client auth too."""
    verifier = "v" * 64
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    )
    fake.add_authorization_code(
        "4/code", redirect_uri="http://127.0.0.1:8765/", code_challenge=challenge
    )
    form = {
        "grant_type": "authorization_code",
        "code": "4/code",
        "redirect_uri": "http://127.0.0.1:8765/",
    }
    auth = ("fake-google-client-id", "fake-google-client-secret")
    bad = await client.post("/token", data={**form, "code_verifier": "wrong"}, auth=auth)
    assert bad.json()["error"] == "invalid_grant"
    good = await client.post("/token", data={**form, "code_verifier": verifier}, auth=auth)
    assert good.status_code == 200
    new_refresh = good.json()["refresh_token"]
    assert (await refresh(client, token=new_refresh)).status_code == 200
    again = await client.post("/token", data={**form, "code_verifier": verifier}, auth=auth)
    assert again.json()["error"] == "invalid_grant"


async def test_chunked_upload_stores_the_bytes(client: httpx.AsyncClient, fake: FakeGoogle) -> None:
    """A 3.x MiB upload in 1 MiB chunks with a short last chunk answers 308s then the video; the sha256 matches."""
    data = os.urandom(3 * 1024 * 1024 + 12345)
    created = await open_session(
        client, len(data), video_resource("Part 1", "desc", tags=["a b", "c"])
    )
    assert created.status_code == 200
    assert created.content == b""
    uri = created.headers["location"]
    assert uri.startswith(f"{client.base_url}/upload/youtube/v3/videos?uploadType=resumable")
    assert "upload_id=" in uri
    mib = 1024 * 1024
    first = await put(client, uri, data[:mib], 0, len(data))
    assert first.status_code == 308
    assert first.headers["range"] == f"bytes=0-{mib - 1}"
    assert first.headers["content-length"] == "0"
    done = await upload(client, uri, data, mib)
    assert done.status_code == 200
    video = done.json()
    assert video["kind"] == "youtube#video"
    assert len(video["id"]) == 11
    assert video["snippet"]["title"] == "Part 1"
    assert video["snippet"]["tags"] == ["a b", "c"]
    assert video["status"]["uploadStatus"] == "uploaded"
    assert video["status"]["privacyStatus"] == "private"
    stored = fake.videos[video["id"]]
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert stored.size == len(data)
    assert f"upload_id={stored.session_id}" in uri
    assert fake.bytes_received == len(data)
    assert fake.count("chunk") == 4
    assert fake.quota_spent["insert"] == 1600
    again = await put(client, uri, data[-100:], len(data) - 100, len(data))
    assert again.status_code == 200
    assert again.json() == video


async def test_status_query_reports_the_committed_range(
    client: httpx.AsyncClient, fake: FakeGoogle
) -> None:
    """A status query answers 308 without Range before any byte, with Range after; it never uses up a chunk knob."""
    size = 2 * KIB256 + 10
    data = os.urandom(size)
    uri = await session_uri(client, size)
    empty = await query(client, uri, size)
    assert empty.status_code == 308
    assert "range" not in empty.headers
    fake.fail_chunks(1)
    assert (await query(client, uri, size)).status_code == 308
    assert (await put(client, uri, data[:KIB256], 0, size)).status_code == 503
    assert (await put(client, uri, data[:KIB256], 0, size)).status_code == 308
    held = await query(client, uri, size)
    assert held.headers["range"] == f"bytes=0-{KIB256 - 1}"
    assert fake.count("status") == 3
    assert fake.count("chunk") == 2


async def test_overlapping_chunk_is_accepted(client: httpx.AsyncClient, fake: FakeGoogle) -> None:
    """A chunk that starts inside the bytes already held skips them; the stored hash is still the file's."""
    size = 3 * KIB256 + 7
    data = os.urandom(size)
    uri = await session_uri(client, size)
    assert (await put(client, uri, data[: 2 * KIB256], 0, size)).status_code == 308
    overlap = await put(client, uri, data[KIB256 : 3 * KIB256], KIB256, size)
    assert overlap.headers["range"] == f"bytes=0-{3 * KIB256 - 1}"
    done = await put(client, uri, data[2 * KIB256 :], 2 * KIB256, size)
    assert done.status_code == 200
    assert fake.videos[done.json()["id"]].sha256 == hashlib.sha256(data).hexdigest()


async def test_bad_chunks_are_refused(client: httpx.AsyncClient, fake: FakeGoogle) -> None:
    """A middle chunk that is not a 256 KiB multiple, a gap, and a wrong total answer 400 and commit nothing."""
    size = 4 * KIB256
    data = os.urandom(size)
    uri = await session_uri(client, size)
    misaligned = await put(client, uri, data[: KIB256 + 1], 0, size)
    assert misaligned.status_code == 400
    assert "256 KiB" in misaligned.json()["error"]["message"]
    assert (await put(client, uri, data[KIB256 : 2 * KIB256], KIB256, size)).status_code == 400
    wrong_total = await client.put(
        uri, content=data[:KIB256], headers={"Content-Range": f"bytes 0-{KIB256 - 1}/9"}
    )
    assert wrong_total.status_code == 400
    assert "range" not in (await query(client, uri, size)).headers
    assert fake.bytes_received == 3 * KIB256 + 1


async def test_failed_chunks_resume_without_restarting(
    client: httpx.AsyncClient, fake: FakeGoogle
) -> None:
    """fail_chunks answers 503 backendError twice after reading the bodies; the upload resumes at the held offset."""
    size = 4 * KIB256 + 99
    data = os.urandom(size)
    uri = await session_uri(client, size)
    assert (await put(client, uri, data[: 2 * KIB256], 0, size)).status_code == 308
    fake.fail_chunks(2)
    for _ in range(2):
        failed = await put(client, uri, data[2 * KIB256 : 4 * KIB256], 2 * KIB256, size)
        assert failed.status_code == 503
        assert failed.json()["error"]["errors"][0]["reason"] == "backendError"
    done = await upload(client, uri, data, 2 * KIB256)
    assert done.status_code == 200
    assert fake.videos[done.json()["id"]].sha256 == hashlib.sha256(data).hexdigest()
    assert fake.bytes_received == size + 2 * (2 * KIB256)


async def test_cut_chunk_keeps_a_256k_prefix_and_breaks_the_client(
    client: httpx.AsyncClient, fake: FakeGoogle
) -> None:
    """cut_next_chunk drops the connection mid-body: the client sees a transport error and the status query shows the kept 256 KiB."""
    size = 8 * KIB256
    data = os.urandom(size)
    uri = await session_uri(client, size)
    fake.cut_next_chunk(KIB256 + 1000)
    with pytest.raises(httpx.TransportError):
        await put(client, uri, data[: 4 * KIB256], 0, size)
    assert fake.requests[-1].status == 0
    assert fake.bytes_received == KIB256 + 1000
    held = await query(client, uri, size)
    assert held.headers["range"] == f"bytes=0-{KIB256 - 1}"
    fake.cut_next_chunk(KIB256 // 2, commit_partial=False)
    with pytest.raises(httpx.TransportError):
        await put(client, uri, data[KIB256 : 3 * KIB256], KIB256, size)
    assert (await query(client, uri, size)).headers["range"] == f"bytes=0-{KIB256 - 1}"
    done = await upload(client, uri, data, 4 * KIB256)
    assert done.status_code == 200
    assert fake.videos[done.json()["id"]].sha256 == hashlib.sha256(data).hexdigest()


async def test_cut_after_the_whole_last_chunk_still_stores_the_video(
    client: httpx.AsyncClient, fake: FakeGoogle
) -> None:
    """A cut that comes after the last chunk's every byte arrived stores the video; the status query answers 200."""
    data = os.urandom(KIB256 + 3)
    uri = await session_uri(client, len(data))
    fake.cut_next_chunk(len(data))
    with pytest.raises(httpx.TransportError):
        await put(client, uri, data, 0, len(data))
    found = await query(client, uri, len(data))
    assert found.status_code == 200
    assert fake.videos[found.json()["id"]].sha256 == hashlib.sha256(data).hexdigest()


async def test_expired_and_unknown_sessions(client: httpx.AsyncClient, fake: FakeGoogle) -> None:
    """expire_sessions makes existing sessions answer 404 (or 410); an unknown upload_id answers 404; new sessions work."""
    data = os.urandom(KIB256)
    old = await session_uri(client, len(data))
    fake.expire_sessions()
    assert (await query(client, old, len(data))).status_code == 404
    assert (await put(client, old, data, 0, len(data))).status_code == 404
    fake.expire_sessions(status=410)
    assert (await query(client, old, len(data))).status_code == 410
    unknown = old.split("upload_id=")[0] + "upload_id=nope"
    assert (await query(client, unknown, len(data))).status_code == 404
    fresh = await session_uri(client, len(data))
    assert (await put(client, fresh, data, 0, len(data))).status_code == 200


async def test_quota_and_upload_limit_errors(client: httpx.AsyncClient, fake: FakeGoogle) -> None:
    """answer_next gives YouTube's quotaExceeded (403) and uploadLimitExceeded (400) shapes, once each."""
    fake.answer_next("insert", "quotaExceeded")
    fake.answer_next("insert", "uploadLimitExceeded")
    quota = await open_session(client, 10)
    assert quota.status_code == 403
    error = quota.json()["error"]
    assert error["code"] == 403
    assert error["errors"][0]["domain"] == "youtube.quota"
    assert error["errors"][0]["reason"] == "quotaExceeded"
    limit = await open_session(client, 10)
    assert limit.status_code == 400
    assert limit.json()["error"]["errors"][0] == {
        "message": "The user has exceeded the number of videos they may upload.",
        "domain": "youtube.video",
        "reason": "uploadLimitExceeded",
    }
    assert (await open_session(client, 10)).status_code == 200
    assert fake.quota_spent["insert"] == 1600
    with pytest.raises(ValueError, match="unknown reason"):
        fake.answer_next("insert", "teapot")


async def test_metadata_limits(client: httpx.AsyncClient) -> None:
    """Titles, descriptions and tags over YouTube's limits or with angle brackets answer 400 with their reasons."""

    async def reason(resource: dict[str, object], size: str = "10") -> str:
        headers = {**await bearer(client), "X-Upload-Content-Length": size}
        response = await client.post(UPLOAD, json=resource, headers=headers)
        assert response.status_code == 400
        return str(response.json()["error"]["errors"][0]["reason"])

    assert await reason(video_resource("x" * 101)) == "invalidTitle"
    assert await reason(video_resource("a <b>")) == "invalidTitle"
    assert await reason(video_resource("")) == "invalidTitle"
    assert await reason(video_resource("ok", "é" * 2501)) == "invalidDescription"
    assert await reason(video_resource("ok", "1 > 0")) == "invalidDescription"
    assert await reason(video_resource("ok", tags=["x" * 250, "y" * 250])) == "invalidTags"
    assert await reason(video_resource("ok"), size="lots") == "badRequest"
    fits = await open_session(
        client, 10, video_resource("x" * 100, "é" * 2500, tags=["x" * 249, "y" * 250])
    )
    assert fits.status_code == 200


async def test_playlist_items_paging_finds_a_video_by_its_description(
    client: httpx.AsyncClient, fake: FakeGoogle
) -> None:
    """The uploads playlist lists the channel newest first in pages of 50; a marker in a description is found on page 3."""
    target = fake.add_existing_video("Old stream", "archived from twitch vod:123456 part 1/2")
    for i in range(120):
        fake.add_existing_video(f"Other {i}", f"description {i}")
    headers = await bearer(client)
    channel = await client.get(
        "/youtube/v3/channels", params={"part": "contentDetails", "mine": "true"}, headers=headers
    )
    uploads = channel.json()["items"][0]["contentDetails"]["relatedPlaylists"]["uploads"]
    assert uploads == fake.uploads_playlist_id
    assert uploads.startswith("UU")
    found, pages, token = None, 0, None
    while found is None:
        params = {"part": "snippet", "playlistId": uploads, "maxResults": "50"}
        if token:
            params["pageToken"] = token
        page = (
            await client.get("/youtube/v3/playlistItems", params=params, headers=headers)
        ).json()
        pages += 1
        assert page["pageInfo"]["totalResults"] == 121
        for item in page["items"]:
            if "vod:123456" in item["snippet"]["description"]:
                found = item["snippet"]["resourceId"]["videoId"]
        token = page.get("nextPageToken")
        if token is None:
            break
    assert found == target.id
    assert pages == 3
    assert token is None
    assert fake.quota_spent["playlistItems.list"] == 3
    bad = await client.get(
        "/youtube/v3/playlistItems",
        params={"part": "snippet", "playlistId": uploads, "pageToken": "!!"},
        headers=headers,
    )
    assert bad.json()["error"]["errors"][0]["reason"] == "invalidPageToken"


async def test_complete_but_fail_then_status_query_finds_the_video(
    client: httpx.AsyncClient, fake: FakeGoogle
) -> None:
    """The completing chunk stores the video but answers 503 (or is cut); a status query then answers 200 with it."""
    data = os.urandom(KIB256 + 5)
    uri = await session_uri(client, len(data))
    fake.complete_but_fail_response_next()
    lost = await put(client, uri, data, 0, len(data))
    assert lost.status_code == 503
    assert len(fake.videos) == 1
    recovered = await query(client, uri, len(data))
    assert recovered.status_code == 200
    assert recovered.json()["id"] in fake.videos
    second = await session_uri(client, len(data))
    fake.complete_but_fail_response_next(cut=True)
    with pytest.raises(httpx.TransportError):
        await put(client, second, data, 0, len(data))
    assert (await query(client, second, len(data))).status_code == 200
    assert len(fake.uploaded()) == 2


async def test_videos_list_reports_processing_states(
    client: httpx.AsyncClient, fake: FakeGoogle
) -> None:
    """videos.list shows uploaded, processed after n polls, failed and rejected states; unknown ids are omitted."""
    data = os.urandom(100)
    fake.reject_next_upload("duplicate")
    rejected = (await put(client, await session_uri(client, 100), data, 0, 100)).json()
    assert rejected["status"]["uploadStatus"] == "uploaded"
    plain = (await put(client, await session_uri(client, 100), data, 0, 100)).json()
    headers = await bearer(client)

    async def listed() -> dict[str, Any]:
        ids = f"{rejected['id']},{plain['id']},unknownid00"
        params = {"part": "status,processingDetails", "id": ids}
        body = (await client.get("/youtube/v3/videos", params=params, headers=headers)).json()
        assert body["kind"] == "youtube#videoListResponse"
        return {item["id"]: item for item in body["items"]}

    first = await listed()
    assert set(first) == {rejected["id"], plain["id"]}
    assert first[rejected["id"]]["status"] == {
        "uploadStatus": "rejected",
        "rejectionReason": "duplicate",
        "privacyStatus": "private",
        "license": "youtube",
        "embeddable": True,
        "publicStatsViewable": True,
        "madeForKids": False,
        "selfDeclaredMadeForKids": False,
    }
    assert first[plain["id"]]["processingDetails"] == {"processingStatus": "processing"}
    fake.processed_after_polls = 2
    assert (await listed())[plain["id"]]["processingDetails"] == {"processingStatus": "succeeded"}
    fake.set_processing(plain["id"], "failed", "codec")
    failed = (await listed())[plain["id"]]
    assert failed["status"]["failureReason"] == "codec"
    assert failed["processingDetails"] == {
        "processingStatus": "failed",
        "processingFailureReason": "other",
    }


async def test_playlist_items_insert_records_membership(
    client: httpx.AsyncClient, fake: FakeGoogle
) -> None:
    """playlistItems.insert adds a video to a known playlist; unknown playlists and videos answer 404; quota is counted."""
    playlist = fake.add_playlist("PLarchive")
    video = fake.add_existing_video("A", "B")
    headers = await bearer(client)

    async def insert(playlist_id: str, video_id: str) -> httpx.Response:
        body = {
            "snippet": {
                "playlistId": playlist_id,
                "resourceId": {"kind": "youtube#video", "videoId": video_id},
            }
        }
        return await client.post(
            "/youtube/v3/playlistItems", params={"part": "snippet"}, json=body, headers=headers
        )

    added = await insert(playlist, video.id)
    assert added.status_code == 200
    assert added.json()["snippet"]["resourceId"]["videoId"] == video.id
    assert fake.playlists == {"PLarchive": [video.id]}
    assert (await insert("PLnone", video.id)).json()["error"]["errors"][0][
        "reason"
    ] == "playlistNotFound"
    assert (await insert(playlist, "missing0000")).json()["error"]["errors"][0][
        "reason"
    ] == "videoNotFound"
    fake.answer_next("playlistItems.insert", "rateLimitExceeded")
    assert (await insert(playlist, video.id)).status_code == 403
    assert fake.quota_spent["playlistItems.insert"] == 50


async def test_inspection_routes_and_reset(client: httpx.AsyncClient, fake: FakeGoogle) -> None:
    """GET /_fake/videos and /_fake/stats report the recorded uploads; reset() clears records and knobs, all=True state."""
    data = os.urandom(1000)
    await put(client, await session_uri(client, 1000), data, 0, 1000)
    videos = (await client.get("/_fake/videos")).json()["videos"]
    assert [(v["size"], v["sha256"], v["upload_status"]) for v in videos] == [
        (1000, hashlib.sha256(data).hexdigest(), "uploaded")
    ]
    stats = (await client.get("/_fake/stats")).json()
    assert stats["bytes_received"] == 1000
    assert stats["counts"]["chunk"] == 1
    fake.fail_chunks(3)
    fake.reset()
    assert fake.requests == []
    assert fake.bytes_received == 0
    assert len(fake.videos) == 1
    uri = await session_uri(client, 10)
    assert (await put(client, uri, b"0123456789", 0, 10)).status_code == 200
    fake.reset(all=True)
    assert fake.videos == {}
    assert fake.sessions == {}
    assert (await refresh(client)).status_code == 200


async def test_standalone_process_serves_the_fake() -> None:
    """python -m tests.fakes.youtube prints its base URL and credentials, then takes an upload readable over /_fake."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.fakes.youtube", "--refresh-token", "bench-token",
        cwd=ROOT, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        base = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode().strip()
        lines = [(await proc.stdout.readline()).decode().strip() for _ in range(3)]
        settings = dict(line.split("=", 1) for line in lines)
        assert settings["GOOGLE_REFRESH_TOKEN"] == "bench-token"
        async with httpx.AsyncClient(base_url=base, timeout=5) as http:
            token = await http.post("/token", data={
                "grant_type": "refresh_token", "refresh_token": "bench-token",
                "client_id": settings["GOOGLE_CLIENT_ID"],
                "client_secret": settings["GOOGLE_CLIENT_SECRET"],
            })  # fmt: skip
            headers = {
                "Authorization": f"Bearer {token.json()['access_token']}",
                "X-Upload-Content-Length": "3",
            }
            created = await http.post(UPLOAD, json=video_resource(), headers=headers)
            done = await put(http, created.headers["location"], b"abc", 0, 3)
            assert done.status_code == 200
            videos = (await http.get("/_fake/videos")).json()["videos"]
            assert videos[0]["sha256"] == hashlib.sha256(b"abc").hexdigest()
            assert (await http.get("/_fake/stats")).json()["bytes_received"] == 3
    finally:
        proc.terminate()
        await proc.wait()
