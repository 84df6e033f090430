// The camgate player page: /watch/<cameraId>[?mode=webrtc|mse|ll|hls][&latency=1][&engine=…]
//
//   mode       webrtc: WHEP (whep.js), about a tenth of a second behind live; when it cannot
//              connect within a few seconds the page falls back to mse, then ll, by itself
//   mode       mse: fMP4 over a WebSocket into Media Source Extensions (mse.js), the lowest delay
//              ll:  LL-HLS, hls.js in low-latency mode (or the browser's own HLS player)
//              hls: plain HLS, the playlist without parts, hls.js without low-latency mode
//              default: mse where the browser has MSE, else ll (Safari on iPhone); when MSE
//              fails on this camera the page falls back to ll by itself
//   ll=0       the same as mode=hls
//   latency=1  overlay with the glass-to-glass latency read from the test camera's timecode
//   engine     force hls.js or the browser's own HLS player (default: hls.js wherever it runs)
//   exp, sig   a signed viewer URL (POST /api/cameras/<id>/viewer-url): passed on to the
//              playlist, which passes it on to every segment; otherwise the API token that
//              this browser keeps (auth.js) is sent as a header
//
// A camera that drops and comes back must not need a page reload: fatal errors tear the player
// down and build a new one after a back-off, for as long as the page is open.
// The state line says which mode plays. Tests read window.camgatePlayer = {hls, video, stats()}.
"use strict";

(function () {
  const RETRY_MIN_S = 1;
  const RETRY_MAX_S = 8;
  // hls.js reports no error while a live playlist simply stops moving; rebuild after this long
  // without progress while we should be playing.
  const FROZEN_REBUILD_S = 10;
  const MEDIA_RECOVERY_WINDOW_S = 5;
  const MAX_ERRORS_KEPT = 100;
  const MAX_LATENCY_SAMPLES_KEPT = 10000;
  const OVERLAY_WINDOW = 25;

  const video = document.getElementById("video");
  const stateEl = document.getElementById("state");
  const latencyEl = document.getElementById("latency");
  const cameraEl = document.getElementById("camera");

  const HLSJS_URL = "/static/vendor/hls.min.js";
  const MODE_NAMES = { webrtc: "WebRTC", mse: "MSE", ll: "LL-HLS", hls: "HLS" };

  const options = readOptions(window.location);
  const errors = [];
  const latencySamplesMs = [];
  let mode = chooseMode();
  let hls = null;
  let hlsjsLoaded = typeof Hls !== "undefined";
  let mse = null;
  let whep = null;
  let engine = null;
  let state = "connecting";
  let stalls = 0;
  let hasPlayed = false;
  let retryDelayS = RETRY_MIN_S;
  let retryTimer = null;
  let lastMediaRecoveryMs = 0;
  let lastProgress = { time: -1, atMs: Date.now() };
  let sampler = null;

  function readOptions(location) {
    const match = location.pathname.match(/^(.*)\/watch\/([^/]+)\/?$/);
    const query = new URLSearchParams(location.search);
    const asked = query.get("mode");
    return {
      basePath: match ? match[1] : "",
      cameraId: match ? decodeURIComponent(match[2]) : null,
      mode: ["webrtc", "mse", "ll", "hls"].includes(asked) ? asked : query.get("ll") === "0" ? "hls" : "auto",
      latencyOverlay: query.get("latency") === "1",
      engine: query.get("engine") || "auto",
      signature: query.has("sig") ? { exp: query.get("exp") || "", sig: query.get("sig") } : null,
    };
  }

  function chooseMode() {
    if (options.mode !== "auto") return options.mode;
    return typeof CamgateMse !== "undefined" && CamgateMse.supported() ? "mse" : "ll";
  }

  function lowLatency() {
    return mode !== "hls";
  }

  function playlistUrl() {
    const url = `${options.basePath}/hls/${encodeURIComponent(options.cameraId)}/index.m3u8`;
    const query = new URLSearchParams();
    if (!lowLatency()) query.set("ll", "0");
    if (options.signature) {
      query.set("exp", options.signature.exp);
      query.set("sig", options.signature.sig);
    }
    const text = query.toString();
    return text ? `${url}?${text}` : url;
  }

  function setState(next, detail) {
    state = next;
    stateEl.dataset.state = next;
    stateEl.dataset.mode = mode;
    const text = detail ? `${next}: ${detail}` : next;
    stateEl.textContent = next === "playing" ? `${text} · ${MODE_NAMES[mode]}${delayText()}` : text;
  }

  // The WebRTC receiver's own delay estimate, while WebRTC plays.
  function delayText() {
    const figures = whep ? whep.stats() : null;
    return figures && figures.delayMs != null ? ` · ${(figures.delayMs / 1000).toFixed(2)} s` : "";
  }

  function whepUrl() {
    const path = `${options.basePath}/whep/${encodeURIComponent(options.cameraId)}`;
    const url = new URL(path, window.location.href);
    if (options.signature) {
      url.searchParams.set("exp", options.signature.exp);
      url.searchParams.set("sig", options.signature.sig);
    }
    return url.toString();
  }

  function startWebrtc() {
    engine = "webrtc";
    whep = CamgateWhep.play(video, whepUrl(), {
      headers: options.signature ? {} : CamgateAuth.headers({}),
      onState(next) {
        if (next === "playing") onPlaying();
      },
      onFailure: onWebrtcFailure,
      onAuthError(status) {
        teardown();
        setState("error", authMessage(status));
      },
    });
  }

  function onWebrtcFailure(reason) {
    whep = null;
    if (hasPlayed) {
      scheduleRebuild(reason); // it worked here before: try WebRTC again
      return;
    }
    // UDP blocked, no common codec (H.265), or a limit: play MSE, else LL-HLS.
    const next = typeof CamgateMse !== "undefined" && CamgateMse.supported() ? "mse" : "ll";
    recordError("webrtc", `${reason}; falling back to ${MODE_NAMES[next]}`, false);
    mode = next;
    start();
  }

  function recordError(source, detail, fatal) {
    errors.push({ atMs: Date.now(), source, detail: String(detail), fatal: Boolean(fatal) });
    if (errors.length > MAX_ERRORS_KEPT) errors.shift();
  }

  function chooseEngine() {
    const hlsjs = typeof Hls !== "undefined" && Hls.isSupported();
    const native = video.canPlayType("application/vnd.apple.mpegurl") !== "";
    if (options.engine === "native") return native ? "native" : null;
    if (options.engine === "hlsjs") return hlsjs ? "hlsjs" : null;
    // Prefer hls.js wherever Media Source Extensions exist: recent Chromium also answers "maybe"
    // for HLS, but only hls.js honours the low-latency settings below. Safari without MSE (older
    // iPhones) plays HLS and LL-HLS natively.
    if (hlsjs) return "hlsjs";
    return native ? "native" : null;
  }

  function hlsConfig() {
    if (!lowLatency()) {
      // Plain HLS is played with hls.js defaults, so it can be compared with other HLS sources.
      return { lowLatencyMode: false, backBufferLength: 30 };
    }
    return {
      lowLatencyMode: true,
      // Keep little played media in the SourceBuffer: a live view never seeks back far.
      backBufferLength: 10,
      // Catch up gently after a stall instead of staying behind for the rest of the session.
      maxLiveSyncPlaybackRate: 1.2,
    };
  }

  function startHlsjs() {
    // With a signed URL the signature is the credential; otherwise send this browser's token.
    hls = new Hls(options.signature ? hlsConfig() : CamgateAuth.hlsConfig(hlsConfig()));
    hls.on(Hls.Events.ERROR, onHlsError);
    hls.on(Hls.Events.MANIFEST_PARSED, () => playVideo());
    hls.loadSource(playlistUrl());
    hls.attachMedia(video);
  }

  function onHlsError(_event, data) {
    recordError("hls.js", `${data.type}/${data.details}`, data.fatal);
    if (!data.fatal) return;
    const code = data.response && data.response.code;
    if (code === 401 || code === 403) {
      teardown();
      setState("error", authMessage(code));
      return;
    }
    const sinceRecoveryS = (Date.now() - lastMediaRecoveryMs) / 1000;
    if (data.type === Hls.ErrorTypes.MEDIA_ERROR && sinceRecoveryS > MEDIA_RECOVERY_WINDOW_S) {
      lastMediaRecoveryMs = Date.now();
      hls.recoverMediaError();
      return;
    }
    scheduleRebuild(data.details);
  }

  // The browser's own player cannot send a header: trade this browser's token for a signed URL.
  async function signatureFromToken() {
    const id = encodeURIComponent(options.cameraId);
    const response = await fetch(`${options.basePath}/api/cameras/${id}/viewer-url`, {
      method: "POST",
      headers: CamgateAuth.headers({ "Content-Type": "application/json" }),
      body: "{}",
      cache: "no-store",
    });
    if (!response.ok) return null;
    const hlsUrl = new URL((await response.json()).data.hls, window.location.href);
    return { exp: hlsUrl.searchParams.get("exp"), sig: hlsUrl.searchParams.get("sig") };
  }

  async function startNative() {
    if (!options.signature && CamgateAuth.token()) {
      options.signature = await signatureFromToken().catch(() => null);
    }
    video.src = playlistUrl();
    video.load();
    playVideo();
  }

  function onVideoError() {
    // mse.js and hls.js own the recovery of their own media errors.
    if (mse || hls || whep) return;
    const code = video.error ? video.error.code : "unknown";
    recordError("video", `MediaError ${code}`, true);
    scheduleRebuild(`media error ${code}`);
  }

  function startMse() {
    engine = "mse";
    mse = CamgateMse.play(video, {
      basePath: options.basePath,
      cameraId: options.cameraId,
      signature: options.signature,
      onState(next, detail) {
        if (next === "playing") onPlaying();
        else if (next !== "connecting" || !hasPlayed) setState(next, detail);
        if (detail) recordError("mse", detail, false);
      },
      onFailure: onMseFailure,
      onAuthError(status) {
        teardown();
        setState("error", authMessage(status));
      },
    });
  }

  function onMseFailure(reason) {
    mse = null;
    if (options.mode === "mse") {
      recordError("mse", reason, true);
      setState("error", reason);
      return;
    }
    // The browser or the network (a proxy without WebSockets) cannot do MSE: play LL-HLS.
    recordError("mse", `${reason}; falling back to LL-HLS`, false);
    mode = "ll";
    start();
  }

  function authMessage(status) {
    if (status === 404) return `no camera ${options.cameraId}`;
    return status === 401
      ? "not authorised: sign in on the dashboard or use a signed viewer link"
      : "this viewer link is expired or invalid: ask for a new one";
  }

  // hls.js is loaded only when HLS plays: compiling it would hold up the first MSE or WebRTC
  // picture by a tenth of a second or more on a slow machine.
  function loadHlsjs() {
    if (document.querySelector(`script[src="${HLSJS_URL}"]`)) return; // start() follows its load
    const script = document.createElement("script");
    script.src = HLSJS_URL;
    script.onload = script.onerror = () => {
      hlsjsLoaded = true; // without it, the browser's own HLS player is tried
      start();
    };
    document.body.appendChild(script);
  }

  function start() {
    lastProgress = { time: -1, atMs: Date.now() };
    if (mode === "webrtc" && typeof CamgateWhep !== "undefined" && CamgateWhep.supported()) {
      startWebrtc();
      return;
    }
    if (mode === "webrtc") mode = "mse"; // no WebRTC in this browser
    if (mode === "mse") {
      if (typeof CamgateMse === "undefined" || !CamgateMse.supported()) {
        setState("error", "this browser has no Media Source Extensions (try ?mode=ll)");
        return;
      }
      startMse();
      return;
    }
    if (!hlsjsLoaded) {
      loadHlsjs();
      return;
    }
    engine = chooseEngine();
    if (engine === null) {
      setState("error", "this browser cannot play HLS");
      return;
    }
    if (engine === "hlsjs") startHlsjs();
    else startNative();
  }

  function teardown() {
    if (whep) {
      whep.close();
      whep = null;
    } else if (mse) {
      mse.stop();
      mse = null;
    } else if (hls) {
      hls.destroy();
      hls = null;
    } else {
      video.removeAttribute("src");
      video.load();
    }
  }

  function scheduleRebuild(reason) {
    if (retryTimer !== null) return;
    setState("reconnecting", reason);
    teardown();
    retryTimer = setTimeout(() => {
      retryTimer = null;
      start();
    }, retryDelayS * 1000);
    retryDelayS = Math.min(retryDelayS * 2, RETRY_MAX_S);
  }

  function playVideo() {
    const promise = video.play();
    if (promise) promise.catch((err) => recordError("play", err.name, false));
  }

  function onPlaying() {
    hasPlayed = true;
    retryDelayS = RETRY_MIN_S;
    setState("playing");
  }

  function onWaiting() {
    if (hasPlayed && state === "playing") stalls += 1;
  }

  function watchProgress() {
    const nowMs = Date.now();
    // mse.js watches its own progress and reconnects.
    if (mse || video.currentTime !== lastProgress.time || video.paused || retryTimer !== null) {
      lastProgress = { time: video.currentTime, atMs: nowMs };
      return;
    }
    if (hasPlayed && nowMs - lastProgress.atMs > FROZEN_REBUILD_S * 1000) {
      recordError("watchdog", `no progress for ${FROZEN_REBUILD_S} s`, true);
      scheduleRebuild("stream stopped moving");
    }
  }

  function bufferedEnd() {
    const ranges = video.buffered;
    return ranges.length ? ranges.end(ranges.length - 1) : 0;
  }

  function median(values) {
    const sorted = [...values].sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)];
  }

  function startLatencyOverlay() {
    latencyEl.hidden = false;
    latencyEl.textContent = "latency …";
    sampler = new CamgateTimecode.FrameSampler(video, (ms) => {
      latencySamplesMs.push(ms);
      if (latencySamplesMs.length > MAX_LATENCY_SAMPLES_KEPT) latencySamplesMs.shift();
    });
    sampler.start();
    setInterval(() => {
      if (latencySamplesMs.length === 0) return;
      const recent = latencySamplesMs.slice(-OVERLAY_WINDOW);
      latencyEl.textContent = `latency ${(median(recent) / 1000).toFixed(2)} s`;
    }, 500);
  }

  function stats() {
    const result = {
      mode,
      engine,
      state,
      currentTime: video.currentTime,
      bufferedEnd: bufferedEnd(),
      stalls,
      errors: errors.slice(),
    };
    if (mse) result.mse = mse.stats();
    if (whep) result.webrtc = whep.stats();
    if (sampler) {
      result.latencySamplesMs = latencySamplesMs.slice();
      result.undecodableFrames = sampler.undecodable;
    }
    return result;
  }

  window.camgatePlayer = {
    get hls() {
      return hls;
    },
    video,
    stats,
  };

  if (options.cameraId === null) {
    setState("error", "no camera in the address (expected /watch/<cameraId>)");
    return;
  }
  cameraEl.textContent = options.cameraId;
  document.title = `${options.cameraId} · camgate`;
  video.addEventListener("playing", onPlaying);
  video.addEventListener("waiting", onWaiting);
  video.addEventListener("error", onVideoError);
  setInterval(watchProgress, 1000);
  setInterval(() => {
    if (whep && state === "playing") setState("playing");
  }, 1000);
  if (options.latencyOverlay) startLatencyOverlay();
  setState("connecting");
  start();
})();
