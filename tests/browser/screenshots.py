"""`make screenshots`: the dashboard, a VOD page and the chat viewer at 1280x800 into docs/.

A fresh database (DATABASE_URL's server, else an embedded one) is seeded with a small archive in
several states, a download under way, a failed VOD with its error, and a chat; a real daemon
serves it and Debian's chromium photographs the pages. Run again after changing the console.
"""

from __future__ import annotations

import asyncio
import base64
import sys
from pathlib import Path

import psycopg
from playwright.async_api import async_playwright

from bench.common import admin_database, drop_db, external_server, open_dir
from tests.browser.conftest import chromium_path
from tests.daemon import Daemon, base_env
from vodarchiver.db.migrate import migrate

DOCS = Path(__file__).resolve().parents[2] / "docs"
SEED = [
    """INSERT INTO channels (login, display_name, broadcaster_type, last_polled_at, last_success_at)
       VALUES ('alice', 'Alice', 'affiliate', now() - interval '40 s', now() - interval '40 s')""",
    """INSERT INTO vods (twitch_vod_id, channel, title, state, date, expires_at, duration_s,
                        retention_days, youtube_url, muted_segments)
       SELECT (2000000000 + g)::text, 'alice', 'Speedrun practice, day ' || g,
              (ARRAY['uploaded', 'uploaded', 'queued', 'uploaded', 'gone'])[1 + g % 5],
              now() - g * interval '1 day', now() - g * interval '1 day' + interval '14 days',
              10800 + g * 60, 14,
              CASE WHEN g % 5 IN (0, 1, 3) THEN 'https://www.youtube.com/watch?v=dQw4w9WgXc' || g END,
              CASE WHEN g % 5 = 1 THEN '[{"offset": 1800, "duration": 360}]'::jsonb ELSE '[]'::jsonb END
       FROM generate_series(1, 40) g""",
    """INSERT INTO vods (twitch_vod_id, channel, title, state, date, expires_at, duration_s,
                        retention_days, download_progress, download_progress_at)
       VALUES ('2100000001', 'alice', 'Late-night chat and chill', 'downloading',
               now() - interval '13 days 8 hours', now() + interval '16 hours', 14400, 14,
               '{"bytes_done": 1932735283, "bytes_total": 4617089843, "percent": 41.9,
                 "speed_bps": 23592960, "eta_s": 114, "fragment_index": 1006,
                 "fragment_count": 2400}'::jsonb, now())""",
    """INSERT INTO vods (twitch_vod_id, channel, title, state, date, expires_at, duration_s,
                        retention_days, processing_error, download_attempts)
       VALUES ('2100000002', 'alice', 'Charity marathon (part 2)', 'failed_retryable',
               now() - interval '12 days', now() + interval '2 days', 21600, 14,
               'yt-dlp exited with status 1: ERROR: [twitch:vod] 2100000002: Unable to download '
               'JSON metadata: HTTP Error 503: Service Unavailable (caused by HTTPError)', 2)""",
    """INSERT INTO chat_messages (msg_id, vod_id, channel, username, display_name, message, sent_at,
                                 offset_ms, deleted, raw_tags)
       SELECT 'c' || g, (SELECT id FROM vods WHERE twitch_vod_id = '2000000001'), 'alice',
              (ARRAY['mossyfrog', 'pixelkate', 'dr_tofu', 'nightowl42', 'quietriver'])[1 + g % 5],
              (ARRAY['MossyFrog', 'PixelKate', 'Dr_Tofu', 'NightOwl42', 'QuietRiver'])[1 + g % 5],
              (ARRAY['that split was clean', 'Kappa', 'gg', 'how many attempts today?',
                     'PogChamp new PB pace', 'hydrate!', 'LUL', 'the skip worked first try'])[1 + g % 8],
              now(), g * 4300, g = 9,
              CASE WHEN g % 3 = 0 THEN 'badges=subscriber/12,premium/1'
                   WHEN g % 3 = 1 THEN 'badges=moderator/1' ELSE '' END
       FROM generate_series(1, 500) g""",
]
PAGES = {
    "console-dashboard.png": "/",
    "console-vod.png": "/ui/vods/2100000002",
    "console-chat.png": "/ui/vods/2000000001/chat",
}


async def main() -> None:
    """Seed, serve, photograph."""
    DOCS.mkdir(exist_ok=True)
    async with external_server() as admin_url:
        name, url = await admin_database(admin_url, "shots")
        daemon = None
        try:
            await migrate(url)
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
                for statement in SEED:
                    await conn.execute(statement)
            # Uploads on, with a Google that does not answer: the dashboard shows them waiting
            # for a token, which is what Connect YouTube is for.
            env = base_env(DATABASE_URL=url, DATA_DIR=str(open_dir("shots")),
                           TWITCH_CHANNELS="alice", AT_RISK_WINDOW="3d",
                           YT_CLIENT_ID="screenshots", YT_CLIENT_SECRET="not-a-secret",
                           ENCRYPTION_KEY=base64.b64encode(bytes(32)).decode(),
                           GOOGLE_TOKEN_URL="http://127.0.0.1:9/token",
                           YOUTUBE_API_URL="http://127.0.0.1:9")  # fmt: skip
            daemon = await Daemon(env).start()
            base = await daemon.started()
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(
                    executable_path=chromium_path(), args=["--no-sandbox"]
                )
                page = await browser.new_page(viewport={"width": 1280, "height": 800})
                for file, path in PAGES.items():
                    await page.goto(base + path)
                    await page.wait_for_load_state("networkidle")
                    await page.screenshot(path=str(DOCS / file))
                    print(f"docs/{file}")
                await browser.close()
        finally:
            if daemon is not None:
                await daemon.stop()
            await drop_db(admin_url, name)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
