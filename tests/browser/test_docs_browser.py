"""The interactive API docs work offline: everything comes from camgate itself, under the same
strict content security policy as every other page."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Route

from tests.support.browser import chromium_path, launch_chromium
from tests.support.ports import free_port
from tests.support.server import CamgateServer

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(chromium_path()), reason="no Chromium to run"),
]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[CamgateServer]:
    with CamgateServer(free_port(), tmp_path / "data") as srv:
        yield srv


async def test_docs_render_with_no_request_leaving_camgate(server: CamgateServer) -> None:
    elsewhere: list[str] = []

    async def only_camgate(route: Route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            await route.continue_()
        else:
            elsewhere.append(route.request.url)
            await route.abort()

    async with launch_chromium() as browser:
        page = await browser.new_page()
        errors: list[str] = []
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.route("**/*", only_camgate)
        await page.goto(server.base_url + "/docs", wait_until="domcontentloaded")
        await page.wait_for_selector(".opblock", timeout=20_000)
        operations = await page.locator(".opblock").count()

    assert operations >= 12
    assert elsewhere == [] and errors == []
