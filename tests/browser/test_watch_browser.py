"""The player page /watch/<id> in headless Chromium, as a viewer uses it.

One camgate server and its cameras serve the whole module: a G.711 camera (its audio converted
to AAC) to play, pause, unmute, watch full screen and in picture-in-picture, and to restart
under the page; a camera whose password camgate does not know; and an id that is no camera.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, expect

from tests.support.browser import chromium_path, launch_chromium
from tests.support.camera import RtspCamera
from tests.support.ports import free_port
from tests.support.server import CamgateServer

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(chromium_path()), reason="no Chromium to run"),
    pytest.mark.asyncio(loop_scope="module"),  # one Chromium for the module
]

LIVE_ID = "porch"
LOCKED_ID = "locked"
RUNNING_DEADLINE_S = 40.0
DEADLINE_MS = 30_000
# The camera is back in a few seconds (RESTART_DELAY_MAX); the page then plays within this.
REPLAY_AFTER_RUNNING_MS = 10_000
SERVER_ENV = {"RESTART_DELAY_MIN": "0.5", "RESTART_DELAY_MAX": "2", "STALL_TIMEOUT": "5"}
PLAYING_JS = """() => {
  const v = document.getElementById("video");
  return !v.paused && v.readyState >= 2 && v.currentTime > 0;
}"""
STATS_JS = "() => window.camgatePlayer.stats()"
# The page's sound as the speakers would get it: a Web Audio analyser on the video element.
LISTEN_JS = """() => {
  const video = document.getElementById("video");
  const context = new AudioContext();
  const analyser = context.createAnalyser();
  analyser.fftSize = 2048;
  context.createMediaElementSource(video).connect(analyser);
  analyser.connect(context.destination);
  const samples = new Float32Array(analyser.fftSize);
  window.listening = () => context.currentTime;
  window.soundLevel = () => {
    analyser.getFloatTimeDomainData(samples);
    return Math.sqrt(samples.reduce((sum, x) => sum + x * x, 0) / samples.length);
  };
  return context.resume();
}"""
SILENCE_RMS = 0.001
# Muted: sound was decoded and went through the analyser for this long, and none came out.
HEARD_FOR_S = 0.5
AUDIO_FLOWS_JS = f"""() => window.listening() > {HEARD_FOR_S}
  && document.getElementById("video").webkitAudioDecodedByteCount > 0"""
TONE_RMS = 0.01


@pytest.fixture(scope="module")
def live_camera() -> Iterator[RtspCamera]:
    with RtspCamera(port=free_port(), gop_s=1.0, audio="pcma") as cam:
        yield cam


@pytest.fixture(scope="module")
def locked_camera() -> Iterator[RtspCamera]:
    with RtspCamera(port=free_port(), user="admin", password="right-password") as cam:
        yield cam


@pytest.fixture(scope="module")
def server(
    live_camera: RtspCamera, locked_camera: RtspCamera, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CamgateServer]:
    data_dir: Path = tmp_path_factory.mktemp("watch") / "data"
    with CamgateServer(free_port(), data_dir, SERVER_ENV) as srv:
        for camera_id, url in (
            (LIVE_ID, live_camera.url),
            (LOCKED_ID, locked_camera.url_with_credentials("admin", "wrong-password")),
        ):
            reply = srv.service(cameraId=camera_id, rtspUrl=url, action="start")
            assert reply.status_code == 200, reply.text
        srv.wait_state(LIVE_ID, {"running"}, RUNNING_DEADLINE_S)
        yield srv


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with launch_chromium() as chromium:
        yield chromium


@pytest_asyncio.fixture(loop_scope="module")
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context()
    yield await context.new_page()
    await context.close()


async def open_playing(page: Page, server: CamgateServer) -> None:
    # MSE: the sound check listens through Web Audio on the video element (what WebRTC's
    # remote stream does not feed); the controls are the same in every mode.
    await page.goto(f"{server.base_url}/watch/{LIVE_ID}?mode=mse", wait_until="domcontentloaded")
    await page.wait_for_function(PLAYING_JS, timeout=DEADLINE_MS, polling=100)


async def test_the_player_unmutes_g711_audio_pauses_goes_full_screen_and_picture_in_picture(
    server: CamgateServer, page: Page
) -> None:
    status = server.status(LIVE_ID)
    assert status["transcodes"] == {"video": False, "audio": True}, status["transcodes"]
    assert status["transcoding"] is True and status["browserPlayback"]["playable"] == "all"
    await open_playing(page, server)
    await page.evaluate(LISTEN_JS)
    mute = page.locator("#mute")
    await expect(mute).to_be_enabled()
    await expect(mute).to_have_text("Unmute")
    assert await page.evaluate("() => document.getElementById('video').muted")
    await page.wait_for_function(AUDIO_FLOWS_JS, timeout=DEADLINE_MS, polling=100)
    silent = await page.evaluate("() => window.soundLevel()")

    # Unmute with the keyboard: the camera's 440 Hz tone reaches the speakers.
    await page.keyboard.press("m")
    await expect(mute).to_have_text("Mute")
    assert not await page.evaluate("() => document.getElementById('video').muted")
    await page.wait_for_function(
        f"() => window.soundLevel() > {TONE_RMS}", timeout=DEADLINE_MS, polling=100
    )
    assert silent < SILENCE_RMS, silent

    # Full screen (f, then the button), and picture-in-picture where this Chromium has it.
    await page.keyboard.press("f")
    await page.wait_for_function("() => document.fullscreenElement?.id === 'stage'")
    await expect(page.locator("#fullscreen")).to_have_text("Exit full screen")
    await page.click("#fullscreen")
    await page.wait_for_function("() => document.fullscreenElement === null")
    if await page.evaluate("() => document.pictureInPictureEnabled"):
        await page.click("#pip")
        await page.wait_for_function("() => document.pictureInPictureElement?.id === 'video'")
        await expect(page.locator("#pip")).to_have_text("Exit picture in picture")
        await page.keyboard.press("p")
        await page.wait_for_function("() => document.pictureInPictureElement === null")
    else:
        await expect(page.locator("#pip")).to_be_hidden()

    # Pause by clicking: the picture stays (as the poster), nothing is downloaded.
    await page.click("#play")
    await expect(page.locator("#play")).to_have_text("Play")
    await expect(page.locator("#state")).to_have_attribute("data-state", "paused")
    paused = await page.evaluate(STATS_JS)
    assert paused["userPaused"] and not paused["playerOn"], paused
    assert await page.evaluate("() => document.getElementById('video').paused")
    assert (await page.get_attribute("#video", "poster") or "").startswith("data:image/jpeg")
    await page.wait_for_function(
        "() => window.camgatePlayer.stats().mse === undefined", timeout=DEADLINE_MS
    )

    # Play again with the keyboard (k), then pause with the focused button's own Enter key.
    await page.keyboard.press("k")
    await page.wait_for_function(PLAYING_JS, timeout=DEADLINE_MS, polling=100)
    await expect(page.locator("#play")).to_have_text("Pause")
    await page.focus("#play")
    await page.keyboard.press("Enter")
    await expect(page.locator("#play")).to_have_text("Play")


async def test_no_such_camera_is_a_404_page_and_a_failing_one_shows_its_reason(
    server: CamgateServer, page: Page
) -> None:
    response = await page.goto(f"{server.base_url}/watch/doesnotexist")
    assert response is not None and response.status == 404
    await expect(page.locator("#notice")).to_contain_text(
        "There is no camera doesnotexist on this camgate"
    )
    await expect(page.locator("video")).to_have_count(0)

    status = server.wait_state(LOCKED_ID, {"backoff"}, RUNNING_DEADLINE_S)
    assert status["reason"] == "auth failed", status
    await page.goto(f"{server.base_url}/watch/{LOCKED_ID}", wait_until="domcontentloaded")
    notice = page.locator("#notice")
    await expect(notice).to_contain_text("refused camgate's user name or password")
    await expect(notice).to_contain_text(status["lastError"])
    await expect(page.locator("#state")).to_have_text("waiting: auth failed")
    stats = await page.evaluate(STATS_JS)
    # Between two attempts or in one (the camera keeps refusing): not playing either way.
    assert not stats["playerOn"] and stats["streamState"] in ("backoff", "starting"), stats
    text = await page.locator("body").inner_text()
    assert "manifestLoadError" not in text and "right-password" not in text

    # Stopped through the API: the page says so at once, from the event stream.
    assert server.client.post(f"/api/cameras/{LOCKED_ID}/stop").is_success
    await expect(notice).to_contain_text("The camera is stopped.")


async def test_the_player_waits_while_the_camera_is_down_and_plays_when_it_is_back(
    server: CamgateServer, live_camera: RtspCamera, page: Page
) -> None:
    await open_playing(page, server)

    live_camera.stop()  # the camera reboots
    try:
        await page.wait_for_function(
            "() => window.camgatePlayer.stats().streamState === 'backoff'",
            timeout=DEADLINE_MS,
        )
        await expect(page.locator("#notice")).to_contain_text("waiting for it to come back")
        await expect(page.locator("#state")).to_have_attribute("data-state", "waiting")
        assert not (await page.evaluate(STATS_JS))["playerOn"]  # no blind retries
    finally:
        live_camera.start()

    recovered = server.wait_state(LIVE_ID, {"running"}, RUNNING_DEADLINE_S)
    assert recovered["reason"] is None and recovered["lastError"], recovered  # history kept
    await page.wait_for_function(PLAYING_JS, timeout=REPLAY_AFTER_RUNNING_MS, polling=100)
    await expect(page.locator("#notice")).to_be_hidden()
    await expect(page.locator("#state")).to_contain_text("playing")
