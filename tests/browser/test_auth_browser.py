"""A camgate with tokens, in headless Chromium: the dashboard asks for the token once and then
works (events, previews, actions) with the token sent as a header, never in a URL; a signed
viewer link plays on a browser that has no token; a page without either says why it cannot play.
The strict content security policy must not break any of it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Page, Request, expect

from tests.support.browser import chromium_path, launch_chromium, watch
from tests.support.camera import RtspCamera
from tests.support.ports import free_port
from tests.support.server import CamgateServer

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(chromium_path()), reason="no Chromium to run"),
]

ADMIN = "admin-7d1e0c9b8a7f6e5d"
CAMERA_ID = "gate"
DEADLINE_MS = 30_000
WATCH_S = 4.0


@pytest.fixture
def camera() -> Iterator[RtspCamera]:
    with RtspCamera(port=free_port(), gop_s=1.0) as cam:
        yield cam


@pytest.fixture
def server(tmp_path: Path, camera: RtspCamera) -> Iterator[CamgateServer]:
    env = {"CAMGATE_API_TOKENS": f"admin:{ADMIN}"}
    with CamgateServer(free_port(), tmp_path / "data", env) as srv:
        reply = httpx.put(
            f"{srv.base_url}/api/cameras/{CAMERA_ID}",
            json={"rtspUrl": camera.url},
            headers={"Authorization": f"Bearer {ADMIN}"},
        )
        assert reply.status_code == 200, reply.text
        yield srv


def record_urls(page: Page) -> list[str]:
    urls: list[str] = []

    def seen(request: Request) -> None:
        urls.append(request.url)

    page.on("request", seen)
    return urls


def page_errors(page: Page) -> list[str]:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    page.on(
        "console",
        lambda msg: (
            errors.append(msg.text)
            if msg.type == "error" and "status of 401" not in msg.text
            else None
        ),
    )
    return errors


async def test_dashboard_asks_for_the_token_once_then_works(server: CamgateServer) -> None:
    async with launch_chromium() as browser:
        context = await browser.new_context()
        page = await context.new_page()
        errors = page_errors(page)
        urls = record_urls(page)
        await page.goto(server.base_url + "/", wait_until="domcontentloaded")
        token_form = page.locator("#token-form")
        await expect(token_form).to_be_visible()
        await page.fill("#token-form [name=token]", ADMIN)
        await page.click("#token-form button[type=submit]")
        await expect(token_form).to_be_hidden()

        badge = page.locator(f'article.cam[data-camera="{CAMERA_ID}"] .badge')
        await expect(badge).to_have_text("running", timeout=DEADLINE_MS)
        await expect(page.locator("#link")).to_have_attribute("data-link", "live")
        video = f'article.cam[data-camera="{CAMERA_ID}"] video'
        await page.wait_for_function(
            "(s) => document.querySelector(s).currentTime > 0", arg=video, timeout=DEADLINE_MS
        )

        # A second visit in the same browser does not ask again.
        again = await context.new_page()
        await again.goto(server.base_url + "/", wait_until="domcontentloaded")
        await expect(again.locator(f'article.cam[data-camera="{CAMERA_ID}"]')).to_have_count(1)
        assert await again.locator("#token-form").is_hidden()

        await page.click(f'article.cam[data-camera="{CAMERA_ID}"] button[data-action=stop]')
        await expect(badge).to_have_text("stopped", timeout=DEADLINE_MS)

    assert errors == []
    assert urls and not any(ADMIN in url for url in urls)
    assert ADMIN not in server.log()


async def test_signed_link_plays_without_a_token_and_unsigned_page_says_why(
    server: CamgateServer,
) -> None:
    issued = httpx.post(
        f"{server.base_url}/api/cameras/{CAMERA_ID}/viewer-url",
        headers={"Authorization": f"Bearer {ADMIN}"},
        json={"ttlSeconds": 120},
    )
    link = issued.json()["data"]["watch"]
    async with launch_chromium() as browser:
        page = await browser.new_page()
        report = await watch(page, link, WATCH_S)
        assert report.started, report.errors
        assert report.advanced_s >= 0.5 * WATCH_S, report.samples
        assert [e for e in report.errors if "Content Security Policy" in e] == []

        bare = await browser.new_page()
        await bare.goto(f"{server.base_url}/watch/{CAMERA_ID}", wait_until="domcontentloaded")
        state = bare.locator("#state")
        await expect(state).to_have_attribute("data-state", "error", timeout=DEADLINE_MS)
        await expect(state).to_contain_text("not authorised")
