// The camgate dashboard at /: every camera's health, live previews, and the camera actions.
//
// Updates arrive as server-sent events (/api/events, read by events.js with fetch so that the
// API token goes in a header); each event refreshes the one camera it names. While the event stream is down
// the page polls the whole list every POLL_S seconds. When camgate asks for a token (401) the
// page shows the token form; the token is kept by auth.js, never put in a URL.
// Nothing from the API or the user is ever inserted as HTML: text goes in with textContent.
// The URL the user types is sent once and never shown; cards show the API's redacted URL.
// Previews play over MSE (mse.js) where the browser has it, else (or when MSE fails for a
// camera) over LL-HLS with hls.js.
// Tests read window.camgateDashboard.stats().
"use strict";

(function () {
  const POLL_S = 5;
  // With events flowing, still refresh the list now and then for the counters that change
  // without an event (bytes received, segments held).
  const LIVE_REFRESH_S = 10;
  const SSE_REOPEN_S = 5;
  // A browser opens at most 6 HTTP/1.1 connections per host, and every LL-HLS preview keeps a
  // blocking playlist request open besides the event stream: more previews would starve each
  // other and the API calls.
  const MAX_PREVIEWS = 4;
  const PREVIEW_RETRY_S = 3;
  // Tiles beyond MAX_PREVIEWS show a JPEG snapshot, refreshed this often, this wide.
  const STILL_REFRESH_S = 5;
  const STILL_WIDTH = 480;
  const EVENT_TYPES = [
    "started", "ready", "stalled", "exited", "restarting", "restarted",
    "stopped", "failed", "state", "deleted",
  ];
  const TONES = {
    running: "ok",
    starting: "warn",
    backoff: "warn",
    stopping: "idle",
    stopped: "idle",
    idle: "idle",
    failed: "bad",
    stalled: "bad",
  };
  const ACTIVE = new Set(["starting", "running", "backoff", "stopping"]);

  const basePath = window.location.pathname.replace(/\/(index\.html)?$/, "");
  const grid = document.getElementById("cameras");
  const emptyEl = document.getElementById("empty");
  const summaryEl = document.getElementById("summary");
  const linkEl = document.getElementById("link");
  const form = document.getElementById("add-form");
  const addError = document.getElementById("add-error");
  const template = document.getElementById("card-template");
  const tokenForm = document.getElementById("token-form");
  const tokenNote = document.getElementById("token-note");

  const cards = new Map(); // cameraId -> card (see makeCard)
  // cameraId -> when its card was removed: answers to requests sent before that are stale and
  // must not bring a deleted camera back.
  const removedAtMs = new Map();
  const counters = { events: 0, polls: 0, refreshes: 0 };
  let link = "connecting";
  let events = null; // the open event stream (events.js)
  let pollTimer = null;
  let reopenTimer = null;

  // ----- API -------------------------------------------------------------------------------

  function apiUrl(path) {
    return `${basePath}/api${path}`;
  }

  function cameraPath(id) {
    return `/cameras/${encodeURIComponent(id)}`;
  }

  // Resolves with the envelope's data; rejects with an Error carrying the API's message.
  async function api(method, path, body) {
    const init = {
      method,
      headers: CamgateAuth.headers({ Accept: "application/json" }),
      cache: "no-store",
    };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(apiUrl(path), init);
    } catch (err) {
      throw new Error("camgate did not answer (network error)");
    }
    let envelope = null;
    try {
      envelope = await response.json();
    } catch (err) {
      envelope = null;
    }
    if (envelope && envelope.success === true) return envelope.data;
    const message = envelope && typeof envelope.error === "string" ? envelope.error : null;
    if (response.status === 401) askForToken(message);
    const error = new Error(message || `HTTP ${response.status} ${response.statusText}`.trim());
    error.status = response.status;
    throw error;
  }

  // ----- formatting ------------------------------------------------------------------------

  function formatDuration(totalS) {
    const s = Math.max(0, Math.floor(totalS));
    const d = Math.floor(s / 86400);
    const h = Math.floor((s % 86400) / 3600);
    const m = Math.floor((s % 3600) / 60);
    const pad = (n) => String(n).padStart(2, "0");
    if (d > 0) return `${d} d ${pad(h)} h`;
    if (h > 0) return `${h} h ${pad(m)} m`;
    if (m > 0) return `${m} m ${pad(s % 60)} s`;
    return `${s} s`;
  }

  function formatBytes(n) {
    if (typeof n !== "number" || !Number.isFinite(n)) return "–";
    const units = ["B", "kB", "MB", "GB", "TB"];
    let value = n;
    let unit = 0;
    while (value >= 1000 && unit < units.length - 1) {
      value /= 1000;
      unit += 1;
    }
    return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
  }

  function formatVideo(codecs) {
    const v = codecs && codecs.video;
    if (!v) return "–";
    const parts = [v.codec || "?"];
    if (v.width && v.height) parts.push(`${v.width}×${v.height}`);
    if (v.fps) parts.push(`${Math.round(v.fps * 100) / 100} fps`);
    return parts.join(" · ");
  }

  function formatAudio(codecs) {
    const a = codecs && codecs.audio;
    if (!a) return codecs && codecs.video ? "none" : "–"; // nothing is known before the probe
    return a.sampleRate ? `${a.codec} · ${a.sampleRate} Hz` : String(a.codec);
  }

  // What the in-memory HLS output holds (older servers named the fields in snake_case).
  function formatHls(hls) {
    if (!hls) return "–";
    const segments = hls.segments ?? hls.segments_held;
    const bytes = hls.bytesHeld ?? hls.bytes_held;
    if (typeof segments !== "number") return "–";
    return `${segments} segment${segments === 1 ? "" : "s"} · ${formatBytes(bytes)}`;
  }

  // What FFmpeg does with the video and the audio: copy, or convert (and to what).
  function formatMode(status) {
    const overrides = status.overrides || {};
    const detail = Object.keys(overrides)
      .sort()
      .map((key) => `${key} ${overrides[key]}`)
      .join(", ");
    const transcodes = status.transcodes || { video: status.transcoding, audio: false };
    const parts = [transcodes.video ? "video → H.264" : "video copy"];
    const hasAudio = Boolean(status.codecs && status.codecs.audio);
    if (overrides.audio === "none") parts.push("no audio");
    else if (hasAudio) parts.push(transcodes.audio ? "audio → AAC" : "audio copy");
    const mode = parts.join(" · ");
    return detail ? `${mode} (${detail})` : mode;
  }

  // Whether this browser plays the camera (codecs.js): an H.265 camera may not.
  function playableHere(status) {
    return CamgateCodecs.playableHere(status.browserPlayback, status.codecs && status.codecs.output);
  }

  function formatRetry(iso) {
    const at = Date.parse(iso);
    if (Number.isNaN(at)) return "";
    const inS = Math.ceil((at - Date.now()) / 1000);
    const clock = new Date(at).toLocaleTimeString();
    return inS > 0 ? `next retry in ${formatDuration(inS)} (${clock})` : `retrying (${clock})`;
  }

  // ----- cards -----------------------------------------------------------------------------

  function makeCard(id) {
    const root = template.content.firstElementChild.cloneNode(true);
    const q = (selector) => root.querySelector(selector);
    const card = {
      id,
      root,
      status: null,
      fetchedAtMs: 0,
      askedAtMs: 0, // when the request behind `status` was sent: older answers are dropped
      busy: false,
      inFlight: null,
      again: false,
      preview: null,
      still: null, // the snapshot refresher of a tile without live video
      el: {
        id: q(".cam-id"),
        badge: q(".badge"),
        video: q(".cam-preview video"),
        still: q(".cam-preview .cam-still"),
        note: q(".cam-preview-note"),
        problem: q(".cam-problem"),
        reason: q(".cam-reason"),
        lastError: q(".cam-last-error"),
        retry: q(".cam-retry"),
        url: q(".cam-url"),
        uptime: q(".cam-uptime"),
        restarts: q(".cam-restarts"),
        mode: q(".cam-mode"),
        video_: q(".cam-video"),
        audio: q(".cam-audio"),
        bytes: q(".cam-bytes"),
        hls: q(".cam-hls"),
        watch: q(".cam-watch"),
        error: q(".cam-error"),
        codec: q(".cam-codec"),
        codecNote: q(".cam-codec-note"),
        convert: q(".cam-convert"),
        buttons: root.querySelectorAll("button[data-action]"),
      },
    };
    card.el.convert.addEventListener("click", () => convertToH264(card));
    root.dataset.camera = id;
    card.el.id.textContent = id;
    card.el.watch.href = `${basePath}/watch/${encodeURIComponent(id)}`;
    for (const button of card.el.buttons) {
      button.addEventListener("click", () => runAction(card, button.dataset.action));
    }
    return card;
  }

  function placeCard(card) {
    const after = [...cards.keys()].sort((a, b) => a.localeCompare(b));
    const next = after.find((other) => other.localeCompare(card.id) > 0);
    grid.insertBefore(card.root, next ? cards.get(next).root : null);
  }

  // Show `status`, the answer to a request sent at askedAtMs, unless a newer one is shown.
  function upsert(status, askedAtMs) {
    let card = cards.get(status.cameraId);
    if (!card) {
      if (askedAtMs < (removedAtMs.get(status.cameraId) ?? -1)) return null;
      card = makeCard(status.cameraId);
      placeCard(card);
      cards.set(card.id, card);
    }
    if (askedAtMs < card.askedAtMs) return card;
    card.askedAtMs = askedAtMs;
    card.status = status;
    card.fetchedAtMs = Date.now();
    render(card);
    return card;
  }

  function removeCard(id) {
    const card = cards.get(id);
    if (!card) return;
    stopPreview(card);
    syncStill(card, false);
    card.root.remove();
    cards.delete(id);
    removedAtMs.set(id, performance.now());
    emptyEl.hidden = cards.size > 0;
  }

  function uptimeS(card) {
    const s = card.status;
    if (!s || s.state !== "running") return 0;
    return (s.uptimeSeconds || 0) + (Date.now() - card.fetchedAtMs) / 1000;
  }

  function render(card) {
    const s = card.status;
    const el = card.el;
    el.badge.textContent = s.state;
    el.badge.dataset.tone = TONES[s.state] || "idle";
    card.root.dataset.state = s.state;

    const troubled = s.state !== "running" && (s.reason || s.lastError);
    el.problem.hidden = !troubled && !s.nextRetryAt;
    el.reason.textContent = s.reason ? `reason: ${s.reason}` : "";
    el.reason.hidden = !troubled || !s.reason;
    el.lastError.textContent = s.lastError || "";
    el.lastError.hidden = !troubled || !s.lastError;
    el.retry.hidden = !s.nextRetryAt;

    el.url.textContent = s.rtspUrl || "–";
    el.url.title = s.rtspUrl || "";
    const attempts = s.attempt ? ` (attempt ${s.attempt})` : "";
    el.restarts.textContent = `${s.restartCount ?? 0}${attempts}`;
    el.mode.textContent = formatMode(s);
    el.mode.title = el.mode.textContent;
    el.video_.textContent = formatVideo(s.codecs);
    el.audio.textContent = formatAudio(s.codecs);
    el.bytes.textContent = formatBytes(s.bytesReceived);
    el.hls.textContent = formatHls(s.hls);
    renderCodecGuidance(card);

    for (const button of el.buttons) {
      const action = button.dataset.action;
      let enabled = !card.busy;
      if (action === "start") enabled = enabled && !ACTIVE.has(s.state);
      if (action === "stop") enabled = enabled && !["stopped", "stopping", "idle"].includes(s.state);
      button.disabled = !enabled;
    }
    tick(card);
    syncPreviews();
  }

  // An output this browser cannot play (H.265 here): say so, and offer the conversion.
  function renderCodecGuidance(card) {
    const s = card.status;
    const el = card.el;
    const playable = playableHere(s);
    card.root.dataset.playable = playable ? "yes" : "no";
    el.codec.hidden = playable;
    if (playable) return;
    const video = (s.codecs && s.codecs.video && s.codecs.video.codec) || "this video";
    const name = video === "hevc" ? "H.265" : video;
    el.codecNote.textContent =
      `${name}: not playable in this browser (the preview shows snapshots). ` +
      "Converting to H.264 costs about 13 % of a core for 720p." +
      (s.source === "file" ? " The camera file wins at its next reload: set videoCodec: h264 there too." : "");
    el.convert.disabled = card.busy;
  }

  // One click: the videoCodec h264 override, kept with the others, and a restart.
  async function convertToH264(card) {
    const overrides = Object.assign({}, card.status.overrides || {}, { videoCodec: "h264" });
    showCardError(card, "");
    card.busy = true;
    render(card);
    try {
      const askedAtMs = performance.now();
      upsert(await api("POST", `${cameraPath(card.id)}/restart`, { overrides }), askedAtMs);
    } catch (err) {
      showCardError(card, `conversion failed: ${err.message}`);
    } finally {
      card.busy = false;
      if (cards.get(card.id) === card && card.status) render(card);
    }
  }

  // The parts that move with the clock: uptime and the retry countdown.
  function tick(card) {
    const s = card.status;
    card.el.uptime.textContent = s.state === "running" ? formatDuration(uptimeS(card)) : "–";
    card.el.retry.textContent = s.nextRetryAt ? formatRetry(s.nextRetryAt) : "";
  }

  function showCardError(card, message) {
    card.el.error.textContent = message || "";
    card.el.error.hidden = !message;
  }

  function renderSummary(data) {
    if (data) {
      // Only running streams count as running: starting and backoff are said apart.
      const states = data.streams.map((s) => s.state);
      const running = states.filter((state) => state === "running").length;
      const trying = states.filter((state) => state === "starting" || state === "backoff").length;
      summaryEl.textContent =
        `${running} of ${data.maxConcurrentStreams} streams running · ` +
        (trying ? `${trying} starting or reconnecting · ` : "") +
        `${data.totalCount} camera${data.totalCount === 1 ? "" : "s"}`;
    }
    emptyEl.hidden = cards.size > 0;
  }

  // ----- refreshing ------------------------------------------------------------------------

  async function refreshAll() {
    counters.polls += 1;
    const askedAtMs = performance.now();
    let data;
    try {
      data = await api("GET", "/cameras");
    } catch (err) {
      summaryEl.textContent = `cannot reach camgate: ${err.message}`;
      return;
    }
    const seen = new Set();
    for (const status of data.streams) {
      seen.add(status.cameraId);
      upsert(status, askedAtMs);
    }
    for (const [id, card] of [...cards]) {
      if (!seen.has(id) && card.askedAtMs < askedAtMs) removeCard(id);
    }
    renderSummary(data);
  }

  // Refresh one camera; events in a burst collapse into at most one more request.
  function refreshCamera(id) {
    const card = cards.get(id);
    if (card && card.inFlight) {
      card.again = true;
      return card.inFlight;
    }
    const request = (async () => {
      counters.refreshes += 1;
      const askedAtMs = performance.now();
      try {
        upsert(await api("GET", cameraPath(id)), askedAtMs);
      } catch (err) {
        if (err.status === 404) removeCard(id);
      }
    })();
    if (card) card.inFlight = request;
    return request.finally(() => {
      const current = cards.get(id);
      if (!current || current.inFlight !== request) return undefined;
      current.inFlight = null;
      if (!current.again) return undefined;
      current.again = false;
      return refreshCamera(id);
    });
  }

  let summaryTimer = null;
  // The counts in the header change with any event; fetch them at most once a second.
  function refreshSummarySoon() {
    if (summaryTimer !== null) return;
    summaryTimer = setTimeout(async () => {
      summaryTimer = null;
      try {
        const data = await api("GET", "/cameras");
        renderSummary(data);
      } catch (err) {
        /* the next poll or event tries again */
      }
    }, 1000);
  }

  // ----- live updates ----------------------------------------------------------------------

  function setLink(next) {
    link = next;
    linkEl.dataset.link = next;
    linkEl.textContent = { live: "live", polling: `polling every ${POLL_S} s`, connecting: "connecting" }[next];
  }

  function startPolling(intervalS) {
    stopPolling();
    pollTimer = setInterval(refreshAll, intervalS * 1000);
  }

  function stopPolling() {
    if (pollTimer !== null) clearInterval(pollTimer);
    pollTimer = null;
  }

  function onEvent(message) {
    let event;
    try {
      event = JSON.parse(message.data);
    } catch (err) {
      return;
    }
    counters.events += 1;
    if (!event || typeof event.cameraId !== "string") return;
    if (event.type === "deleted") removeCard(event.cameraId);
    else refreshCamera(event.cameraId);
    refreshSummarySoon();
  }

  function onEventsOpen() {
    setLink("live");
    startPolling(LIVE_REFRESH_S);
    // Whatever happened while we were not listening.
    refreshAll();
  }

  function onEventsLost() {
    events = null;
    if (link !== "polling") {
      setLink("polling");
      startPolling(POLL_S);
      refreshAll();
    }
    if (reopenTimer === null) {
      reopenTimer = setTimeout(() => {
        reopenTimer = null;
        openEvents();
      }, SSE_REOPEN_S * 1000);
    }
  }

  function openEvents() {
    if (!CamgateEvents.supported()) {
      setLink("polling");
      startPolling(POLL_S);
      return;
    }
    if (events) events.close();
    const stream = CamgateEvents.open(apiUrl("/events"), {
      headers: CamgateAuth.headers({}),
      onOpen: onEventsOpen,
      onEvent(type, data) {
        if (EVENT_TYPES.includes(type)) onEvent({ data });
      },
      onClose(status) {
        if (status === 401) askForToken(null);
        if (events === stream) onEventsLost();
      },
    });
    events = stream;
  }

  // ----- token -----------------------------------------------------------------------------

  function askForToken(message) {
    tokenNote.textContent = CamgateAuth.token()
      ? `That token was not accepted${message ? ` (${message})` : ""}. Enter another.`
      : "camgate needs an API token (CAMGATE_API_TOKENS on the server).";
    if (tokenForm.hidden) {
      tokenForm.hidden = false;
      tokenForm.elements.token.focus();
    }
  }

  tokenForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const value = tokenForm.elements.token.value.trim();
    if (!value) return;
    CamgateAuth.setToken(value);
    tokenForm.reset();
    tokenForm.hidden = true;
    for (const card of cards.values()) stopPreview(card);
    refreshAll();
    openEvents();
  });

  // ----- previews --------------------------------------------------------------------------

  function playlistUrl(id) {
    return `${basePath}/hls/${encodeURIComponent(id)}/index.m3u8`;
  }

  function canMse() {
    return typeof CamgateMse !== "undefined" && CamgateMse.supported();
  }

  function canHls() {
    return typeof Hls !== "undefined" && Hls.isSupported();
  }

  function canPreview() {
    return canMse() || canHls();
  }

  function previewPlays(preview) {
    return Boolean(preview && (preview.hls || preview.mse));
  }

  // Give the first MAX_PREVIEWS running cameras (in page order) a preview; tear down the rest.
  function syncPreviews() {
    const visible = document.visibilityState !== "hidden";
    let slots = MAX_PREVIEWS;
    for (const id of [...cards.keys()].sort((a, b) => a.localeCompare(b))) {
      const card = cards.get(id);
      const running = card.status && card.status.state === "running";
      const live = running && playableHere(card.status); // an unplayable camera shows stills
      const wanted = visible && live && slots > 0 && canPreview();
      if (live && slots > 0) slots -= 1;
      if (wanted && !card.preview) startPreview(card);
      if (!wanted && card.preview) stopPreview(card);
      // Beyond the live previews (or without them), a running camera shows a still picture.
      syncStill(card, running && visible && !wanted);
      card.el.note.textContent = previewNote(card, running, visible);
      card.el.note.hidden = previewPlays(card.preview) || card.still !== null;
    }
  }

  function syncStill(card, wanted) {
    if (wanted && card.still === null && typeof CamgateSnapshot !== "undefined") {
      card.el.still.hidden = false;
      card.still = CamgateSnapshot.attach(card.el.still, card.id, {
        intervalS: STILL_REFRESH_S,
        width: STILL_WIDTH,
        basePath,
      });
    } else if (!wanted && card.still !== null) {
      card.still.detach();
      card.still = null;
      card.el.still.hidden = true;
      card.el.still.removeAttribute("src");
    }
  }

  function previewNote(card, running, visible) {
    if (!running) return card.status ? card.status.state : "";
    if (!canPreview()) return "no preview in this browser";
    if (!visible) return "paused";
    if (card.preview) return "reconnecting preview…";
    return `preview limited to ${MAX_PREVIEWS} cameras`;
  }

  function startPreview(card) {
    if (canMse() && !card.mseFailed) startMsePreview(card);
    else if (canHls()) startHlsPreview(card);
  }

  // Start over a little later if the camera is still running by then.
  function retryPreview(card) {
    stopPreview(card);
    card.preview = { hls: null, mse: null, retryTimer: null };
    card.preview.retryTimer = setTimeout(() => {
      card.preview = null;
      syncPreviews();
    }, PREVIEW_RETRY_S * 1000);
    syncPreviews();
  }

  function startMsePreview(card) {
    const preview = { hls: null, mse: null, retryTimer: null, mode: "mse" };
    card.preview = preview;
    preview.mse = CamgateMse.play(card.el.video, {
      basePath,
      cameraId: card.id,
      signature: null,
      onFailure() {
        if (card.preview !== preview) return;
        preview.mse = null;
        card.mseFailed = true; // this camera previews over LL-HLS from now on
        retryPreview(card);
      },
      onAuthError(status) {
        if (card.preview !== preview) return;
        preview.mse = null;
        if (status === 401) askForToken(null);
        retryPreview(card);
      },
    });
    card.root.classList.add("has-preview");
  }

  function startHlsPreview(card) {
    const video = card.el.video;
    const hls = new Hls(
      CamgateAuth.hlsConfig({
        lowLatencyMode: true,
        backBufferLength: 4,
        maxBufferLength: 6,
        maxLiveSyncPlaybackRate: 1.2,
      }),
    );
    const preview = { hls, mse: null, retryTimer: null, recovered: false, mode: "ll" };
    card.preview = preview;
    hls.on(Hls.Events.MANIFEST_PARSED, () => {
      const playing = video.play();
      if (playing) playing.catch(() => {});
    });
    hls.on(Hls.Events.ERROR, (_event, data) => {
      if (!data.fatal || card.preview !== preview) return;
      if (data.type === Hls.ErrorTypes.MEDIA_ERROR && !preview.recovered) {
        preview.recovered = true;
        hls.recoverMediaError();
        return;
      }
      retryPreview(card);
    });
    hls.loadSource(playlistUrl(card.id));
    hls.attachMedia(video);
    card.root.classList.add("has-preview");
  }

  function stopPreview(card) {
    const preview = card.preview;
    if (!preview) return;
    card.preview = null;
    if (preview.retryTimer !== null) clearTimeout(preview.retryTimer);
    if (preview.hls) preview.hls.destroy();
    if (preview.mse) preview.mse.stop();
    const video = card.el.video;
    video.removeAttribute("src");
    video.load();
    card.root.classList.remove("has-preview");
  }

  document.addEventListener("visibilitychange", syncPreviews);

  // ----- actions ---------------------------------------------------------------------------

  async function runAction(card, action) {
    if (action === "delete" && !window.confirm(`Delete camera ${card.id}? It stops and is forgotten.`)) {
      return;
    }
    showCardError(card, "");
    card.busy = true;
    render(card);
    try {
      if (action === "delete") {
        await api("DELETE", cameraPath(card.id));
        removeCard(card.id);
        renderSummary(null);
      } else {
        const askedAtMs = performance.now();
        upsert(await api("POST", `${cameraPath(card.id)}/${action}`), askedAtMs);
      }
      refreshSummarySoon();
    } catch (err) {
      showCardError(card, `${action} failed: ${err.message}`);
      refreshCamera(card.id);
    } finally {
      card.busy = false;
      if (cards.get(card.id) === card && card.status) render(card);
    }
  }

  function showAddError(message) {
    addError.textContent = message || "";
    addError.hidden = !message;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showAddError("");
    const id = form.elements.cameraId.value.trim();
    const audio = form.elements.audio.value;
    if (!id) {
      showAddError("Camera id is required.");
      return;
    }
    if (cards.has(id) && !window.confirm(`Camera ${id} exists. Replace its URL and settings?`)) {
      return;
    }
    const overrides = audio && audio !== "auto" ? { audio } : {};
    if (form.elements.video.value) overrides.videoCodec = form.elements.video.value;
    const body = {
      rtspUrl: form.elements.rtspUrl.value.trim(),
      enabled: true,
      onDemand: form.elements.onDemand.checked,
      overrides,
    };
    const submit = form.querySelector("button[type=submit]");
    submit.disabled = true;
    try {
      const askedAtMs = performance.now();
      const status = await api("PUT", cameraPath(id), body);
      // The typed URL may hold a password: clear it, the card shows the redacted one.
      form.reset();
      upsert(status, askedAtMs);
      renderSummary(null);
      refreshSummarySoon();
    } catch (err) {
      showAddError(err.message);
    } finally {
      body.rtspUrl = null;
      submit.disabled = false;
    }
  });

  // ----- start -----------------------------------------------------------------------------

  setInterval(() => {
    for (const card of cards.values()) if (card.status) tick(card);
  }, 1000);

  window.camgateDashboard = {
    stats() {
      return {
        link,
        ...counters,
        cameras: [...cards.keys()],
        previews: [...cards.values()].filter((c) => previewPlays(c.preview)).map((c) => c.id),
        stills: [...cards.values()].filter((c) => c.still !== null).map((c) => c.id),
        previewModes: Object.fromEntries(
          [...cards.values()]
            .filter((c) => previewPlays(c.preview))
            .map((c) => [c.id, c.preview.mode]),
        ),
      };
    },
  };

  setLink("connecting");
  refreshAll();
  openEvents();
})();
