// Plays a camera over camgate's MSE WebSocket (/ws/<cameraId>) with Media Source Extensions.
//
// The server sends a JSON {"type":"init", "mime", ...} message, the init segment (binary), then
// fMP4 fragments (binary) from the latest keyframe on, as they arrive; {"type":"discontinuity"}
// when the camera's stream broke off (a new init follows). Each init starts a new MediaSource,
// so a camera that comes back with another resolution or codec plays on.
//
// The playhead is kept close behind the newest media: a little faster playback closes a small
// gap, a larger one (or a hole in the buffer) is jumped over. Old media is removed from the
// buffer. A dropped connection is retried with back-off for as long as the player runs.
//
// Credentials: a signed viewer URL (?exp=…&sig=…) from the page, or one fetched with
// POST /api/cameras/<id>/viewer-url and this browser's token in a header (auth.js); a server
// without tokens answers that without one. The token itself never goes into a URL.
//
// CamgateMse.supported() says whether this browser has MSE for H.264 in MP4;
// CamgateMse.play(video, options) returns {stop(), stats()}. Options:
//   basePath, cameraId, signature ({exp, sig} or null)
//   onState(state, detail)   "connecting", "playing", "waiting" (no stream yet), "reconnecting"
//   onFailure(reason)        MSE cannot play this camera here: the caller falls back
//   onAuthError(status)      the viewer-url API refused (401 no/invalid token, 403, 404)
"use strict";

(function () {
  const TARGET_LAG_S = 0.1; // how far behind the newest buffered media the playhead aims
  const CATCH_UP_LAG_S = 0.2; // behind more than this: play a little faster
  const JUMP_LAG_S = 0.5; // behind more than this: jump ahead
  const CATCH_UP_RATE = 1.1;
  const KEEP_BEHIND_S = 4; // played media kept in the buffer
  const TRIM_AFTER_S = 8; // ... and removed once there is this much
  const MAX_PENDING_BYTES = 16 * 1024 * 1024; // media the SourceBuffer has not taken yet
  const RETRY_MIN_S = 0.5;
  const RETRY_MAX_S = 8;
  const SILENT_RECONNECT_S = 10; // no message for this long: the connection is dead
  const FROZEN_RECONNECT_S = 10; // media arrives but the picture does not move
  // Connections in a row that ended before any media (refused, or dropped by a proxy that does
  // not pass WebSockets) before MSE is given up on, unless it played before.
  const EMPTY_CONNECTIONS_BEFORE_FAILURE = 2;
  const TICK_MS = 200;
  const PROBE_TYPE = 'video/mp4; codecs="avc1.42E01E"';
  // Close codes camgate uses (README, "MSE over WebSocket").
  const CLOSE_NO_STREAM = 4404;
  const CLOSE_NO_CAPACITY = 4503;

  function supported() {
    return (
      typeof window.MediaSource !== "undefined" &&
      typeof window.MediaSource.isTypeSupported === "function" &&
      window.MediaSource.isTypeSupported(PROBE_TYPE)
    );
  }

  function socketUrl(basePath, cameraId, signature) {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    const url = new URL(`${basePath}/ws/${encodeURIComponent(cameraId)}`, window.location.href);
    url.protocol = scheme;
    if (signature) {
      url.searchParams.set("exp", signature.exp);
      url.searchParams.set("sig", signature.sig);
    }
    return url.toString();
  }

  // A signature for this camera: {signature} or {status} when the API refused.
  async function fetchSignature(basePath, cameraId) {
    const id = encodeURIComponent(cameraId);
    const response = await fetch(`${basePath}/api/cameras/${id}/viewer-url`, {
      method: "POST",
      headers: CamgateAuth.headers({ "Content-Type": "application/json" }),
      body: "{}",
      cache: "no-store",
    });
    if (!response.ok) return { status: response.status };
    const signed = new URL((await response.json()).data.hls, window.location.href);
    return { signature: { exp: signed.searchParams.get("exp"), sig: signed.searchParams.get("sig") } };
  }

  function bufferedEnd(video) {
    const ranges = video.buffered;
    return ranges.length ? ranges.end(ranges.length - 1) : 0;
  }

  function play(video, options) {
    const noop = () => {};
    const onState = options.onState || noop;
    const onFailure = options.onFailure || noop;
    const onAuthError = options.onAuthError || noop;
    const counters = {
      connects: 0,
      messages: 0,
      bytesReceived: 0,
      inits: 0,
      appends: 0,
      jumps: 0,
      trims: 0,
      reconnects: 0,
    };
    let socket = null;
    let media = null; // {source, buffer, mime, pending: [], pendingBytes}
    let expectInit = null; // the announcement whose init segment comes next
    let stopped = false;
    let opened = false; // the current socket got past the handshake
    let gotMedia = false; // the current socket brought an init segment
    let emptyConnections = 0;
    let retryDelayS = RETRY_MIN_S;
    let retryTimer = null;
    let lastMessageMs = 0;
    let lastProgress = { time: -1, atMs: 0 };
    let firstFrameMs = null;
    let lastError = null;
    let state = "connecting";
    const ticker = setInterval(tick, TICK_MS);

    function setState(next, detail) {
      state = next;
      onState(next, detail);
    }

    function fail(reason) {
      lastError = reason;
      stop();
      onFailure(reason);
    }

    // ----- connection ----------------------------------------------------------------------

    async function connect() {
      if (stopped) return;
      setState(counters.connects ? "reconnecting" : "connecting");
      let signature = options.signature;
      if (!signature) {
        let answer;
        try {
          answer = await fetchSignature(options.basePath, options.cameraId);
        } catch (err) {
          answer = { status: 0 };
        }
        if (stopped) return;
        if (answer.status === 401 || answer.status === 403 || answer.status === 404) {
          stop();
          onAuthError(answer.status);
          return;
        }
        if (!answer.signature) {
          scheduleReconnect(`viewer URL: HTTP ${answer.status}`);
          return;
        }
        signature = answer.signature;
      }
      counters.connects += 1;
      opened = false;
      gotMedia = false;
      lastMessageMs = Date.now();
      const ws = new WebSocket(socketUrl(options.basePath, options.cameraId, signature));
      ws.binaryType = "arraybuffer";
      ws.onopen = () => {
        opened = true;
      };
      ws.onmessage = (event) => {
        if (socket === ws) onMessage(event.data);
      };
      ws.onclose = (event) => {
        if (socket === ws) onClose(event);
      };
      socket = ws;
    }

    function onClose(event) {
      socket = null;
      if (stopped) return;
      if (event.code === CLOSE_NO_STREAM || event.code === CLOSE_NO_CAPACITY) {
        setState("waiting", event.reason || "the camera has no stream");
        scheduleReconnect(null);
        return;
      }
      emptyConnections = gotMedia ? 0 : emptyConnections + 1;
      if (counters.inits === 0 && emptyConnections >= EMPTY_CONNECTIONS_BEFORE_FAILURE) {
        fail(opened ? "the WebSocket closed before any media" : "the WebSocket was refused");
        return;
      }
      scheduleReconnect(event.reason || `connection closed (${event.code})`);
    }

    function scheduleReconnect(reason) {
      if (stopped || retryTimer !== null) return;
      if (socket) {
        const old = socket;
        socket = null;
        old.close();
      }
      if (reason) {
        lastError = reason;
        setState("reconnecting", reason);
      }
      counters.reconnects += 1;
      retryTimer = setTimeout(() => {
        retryTimer = null;
        connect();
      }, retryDelayS * 1000);
      retryDelayS = Math.min(retryDelayS * 2, RETRY_MAX_S);
    }

    function onMessage(data) {
      counters.messages += 1;
      lastMessageMs = Date.now();
      if (typeof data === "string") {
        let message;
        try {
          message = JSON.parse(data);
        } catch (err) {
          return;
        }
        if (message.type === "init") expectInit = message;
        else if (message.type === "discontinuity") setState("reconnecting", "the camera's stream broke off");
        return;
      }
      counters.bytesReceived += data.byteLength;
      if (expectInit) {
        const announcement = expectInit;
        expectInit = null;
        startMedia(announcement, data);
        return;
      }
      if (media) queueAppend(data);
    }

    // ----- media ---------------------------------------------------------------------------

    function startMedia(announcement, initSegment) {
      const mime = announcement.mime;
      if (!window.MediaSource.isTypeSupported(mime)) {
        fail(`this browser cannot play ${mime} with MSE`);
        return;
      }
      counters.inits += 1;
      gotMedia = true;
      retryDelayS = RETRY_MIN_S;
      closeMedia();
      const source = new MediaSource();
      const session = { source, buffer: null, mime, pending: [initSegment], pendingBytes: 0 };
      media = session;
      const url = URL.createObjectURL(source);
      source.addEventListener(
        "sourceopen",
        () => {
          URL.revokeObjectURL(url);
          if (media !== session) return;
          try {
            session.buffer = source.addSourceBuffer(mime);
            // A live stream: Chromium then decodes and renders with the least delay.
            source.duration = Infinity;
          } catch (err) {
            fail(`MSE refused ${mime}: ${err.name}`);
            return;
          }
          session.buffer.addEventListener("updateend", () => {
            if (media !== session) return;
            keepLive();
            pump();
          });
          session.buffer.addEventListener("error", () => {
            if (media === session) scheduleReconnect("the media buffer failed");
          });
          pump();
        },
        { once: true },
      );
      video.src = url;
      watchFirstFrame();
    }

    function closeMedia() {
      if (!media) return;
      media = null;
      video.removeAttribute("src");
      video.load();
    }

    function queueAppend(data) {
      media.pending.push(data);
      media.pendingBytes += data.byteLength;
      if (media.pendingBytes > MAX_PENDING_BYTES) {
        scheduleReconnect("the browser does not keep up with the stream");
        return;
      }
      pump();
    }

    // Append everything waiting in one go: a burst of fragments costs one SourceBuffer update.
    function pump() {
      const session = media;
      if (!session || !session.buffer || session.buffer.updating || !session.pending.length) {
        return;
      }
      const chunks = session.pending;
      session.pending = [];
      session.pendingBytes = 0;
      let data = chunks[0];
      if (chunks.length > 1) {
        const joined = new Uint8Array(chunks.reduce((n, c) => n + c.byteLength, 0));
        let offset = 0;
        for (const chunk of chunks) {
          joined.set(new Uint8Array(chunk), offset);
          offset += chunk.byteLength;
        }
        data = joined;
      }
      try {
        session.buffer.appendBuffer(data);
        counters.appends += 1;
      } catch (err) {
        if (err.name === "QuotaExceededError") {
          session.pending.unshift(data);
          trim(true);
          return;
        }
        scheduleReconnect(`append failed: ${err.name}`);
      }
    }

    function trim(urgent) {
      const session = media;
      if (!session || !session.buffer || session.buffer.updating) return;
      const ranges = session.buffer.buffered;
      if (!ranges.length) return;
      const start = ranges.start(0);
      const keep = urgent ? 0.5 : KEEP_BEHIND_S;
      if (video.currentTime - start < (urgent ? keep : TRIM_AFTER_S)) return;
      session.buffer.remove(start, video.currentTime - keep);
      counters.trims += 1;
    }

    // Keep the playhead just behind the newest media; jump over holes and large delays.
    function keepLive() {
      const ranges = video.buffered;
      if (!ranges.length || video.seeking) return;
      const last = ranges.length - 1;
      const end = ranges.end(last);
      const lag = end - video.currentTime;
      if (video.currentTime < ranges.start(last) || lag > JUMP_LAG_S) {
        video.currentTime = Math.max(ranges.start(last), end - TARGET_LAG_S);
        counters.jumps += 1;
      }
      const rate = lag > CATCH_UP_LAG_S ? CATCH_UP_RATE : 1;
      if (video.playbackRate !== rate) video.playbackRate = rate;
      if (video.paused) {
        const playing = video.play();
        if (playing) playing.catch(() => {});
      }
    }

    function watchFirstFrame() {
      if (firstFrameMs !== null) return;
      const seen = () => {
        if (firstFrameMs === null) firstFrameMs = performance.now();
      };
      if (typeof video.requestVideoFrameCallback === "function") video.requestVideoFrameCallback(seen);
      else video.addEventListener("playing", seen, { once: true });
    }

    function onPlaying() {
      if (!stopped && media) setState("playing");
    }

    function onVideoError() {
      if (stopped || !media) return;
      const code = video.error ? video.error.code : "unknown";
      // Media the decoder refuses from the start will not play after a reconnect either.
      if (firstFrameMs === null) fail(`media error ${code}`);
      else scheduleReconnect(`media error ${code}`);
    }

    function tick() {
      if (stopped) return;
      const nowMs = Date.now();
      if (socket && opened && nowMs - lastMessageMs > SILENT_RECONNECT_S * 1000) {
        scheduleReconnect(`no media for ${SILENT_RECONNECT_S} s`);
        return;
      }
      if (!media || video.paused) {
        lastProgress = { time: video.currentTime, atMs: nowMs };
        return;
      }
      keepLive();
      trim(false);
      if (video.currentTime !== lastProgress.time) {
        lastProgress = { time: video.currentTime, atMs: nowMs };
      } else if (nowMs - lastProgress.atMs > FROZEN_RECONNECT_S * 1000) {
        lastProgress = { time: video.currentTime, atMs: nowMs };
        scheduleReconnect(`the picture stood still for ${FROZEN_RECONNECT_S} s`);
      }
    }

    function stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(ticker);
      if (retryTimer !== null) clearTimeout(retryTimer);
      retryTimer = null;
      video.removeEventListener("playing", onPlaying);
      video.removeEventListener("error", onVideoError);
      if (socket) {
        const old = socket;
        socket = null;
        old.close();
      }
      closeMedia();
      video.playbackRate = 1;
    }

    function stats() {
      const end = bufferedEnd(video);
      return Object.assign({}, counters, {
        state,
        connected: Boolean(socket && opened),
        firstFrameMs,
        lagS: end ? Math.max(0, end - video.currentTime) : null,
        playbackRate: video.playbackRate,
        lastError,
      });
    }

    video.addEventListener("playing", onPlaying);
    video.addEventListener("error", onVideoError);
    connect();
    return { stop, stats };
  }

  window.CamgateMse = { supported, play, socketUrl };
})();
