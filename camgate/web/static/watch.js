// The camgate player page: /watch/<cameraId>[?mode=webrtc|mse|ll|hls][&latency=1][&engine=…]
//
//   mode       webrtc: WHEP (whep.js), about a tenth of a second behind live; when it cannot
//              connect within a few seconds the page falls back to mse, then ll, by itself
//   mode       mse: fMP4 over a WebSocket into Media Source Extensions (mse.js), the lowest delay
//              ll:  LL-HLS, hls.js in low-latency mode (or the browser's own HLS player)
//              hls: plain HLS, the playlist without parts, hls.js without low-latency mode
//              default: webrtc for an H.264 stream where the browser has WebRTC, else mse
//              where it has MSE, else ll (Safari on iPhone); each falls back to the next by
//              itself when it cannot play this camera here
//   ll=0       the same as mode=hls
//   latency=1  overlay with the glass-to-glass latency read from the test camera's timecode
//   engine     force hls.js or the browser's own HLS player (default: hls.js wherever it runs)
//   exp, sig   a signed viewer URL (POST /api/cameras/<id>/viewer-url): passed on to the
//              playlist, which passes it on to every segment; otherwise the API token that
//              this browser keeps (auth.js) is sent as a header
//
// The page follows its camera's state from the server (/watch/<id>/events, server-sent events
// read by events.js): when the stream goes down (backoff, stopped, failed) the player is torn
// down and the page says why, in the stream's own words, and waits; when the stream runs again
// the player starts at once. WebRTC starts without waiting for that state (watch-early.js sends
// its offer from the page's head); the other modes start once the state says the camera runs. An H.265 camera this browser cannot play (codecs.js) is said so,
// not handed to a decoder that fails. Without that feed (an older or unreachable server) fatal
// errors tear the player down and build a new one after a back-off, for as long as the page is
// open.
//
// Controls (buttons, and keys when no field has the focus): k or space pause/play (pause
// freezes the picture and stops the download; play returns to live), m mute/unmute, f full
// screen, p picture-in-picture.
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
  // How long the first player start waits for the camera's state before going ahead anyway.
  const FEED_WAIT_MS = 1500;
  const FEED_RETRY_MIN_S = 1;
  const FEED_RETRY_MAX_S = 15;
  // Stream states in which there is nothing to play: the page says why and waits.
  const DOWN_STATES = new Set(["backoff", "stopping", "stopped", "failed"]);
  // The stream's reason, in words for a viewer.
  const REASONS = {
    unreachable: "camgate cannot reach the camera",
    timeout: "the camera stopped answering",
    "auth failed": "the camera refused camgate's user name or password",
    "not found": "the camera has no stream at that address",
    "unsupported codec": "the camera sends a codec camgate cannot serve",
    "no video": "the camera sends no video",
    "spawn failed": "camgate could not start FFmpeg",
    stalled: "the camera's picture stood still",
    unknown: "the camera's stream ended",
  };

  const video = document.getElementById("video");
  const stateEl = document.getElementById("state");
  const latencyEl = document.getElementById("latency");
  const cameraEl = document.getElementById("camera");
  const stageEl = document.getElementById("stage");
  const noticeEl = document.getElementById("notice");
  const noticeTitleEl = document.getElementById("notice-title");
  const noticeDetailEl = document.getElementById("notice-detail");

  const HLSJS_URL = "/static/vendor/hls.min.js";
  const MODE_NAMES = { webrtc: "WebRTC", mse: "MSE", ll: "LL-HLS", hls: "HLS" };

  const options = CamgateWatchEarly.options; // watch-early.js read them, in the page's head
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
  let playerOn = false; // a player runs, or is about to (a rebuild is scheduled)
  let userPaused = false;
  let streamStatus = null; // the camera's state as the feed last told it
  let feed = null;
  let feedOpen = false;
  let feedRetryS = FEED_RETRY_MIN_S;
  let feedDecided = false; // the first state arrived, or the feed cannot tell
  let controls = null; // controls.js

  function chooseMode() {
    if (options.mode !== "auto") return options.mode;
    if (typeof CamgateWhep !== "undefined" && CamgateWhep.supported()) return "webrtc";
    return typeof CamgateMse !== "undefined" && CamgateMse.supported() ? "mse" : "ll";
  }

  // WebRTC carries the camera's H.264 as it is; anything else (H.265) goes to MSE at once
  // rather than after the WebRTC connect timeout.
  function webrtcCanCarry() {
    const codecs = streamStatus ? streamStatus.codecs : null;
    return !codecs || codecs.startsWith("avc1");
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

  function startWebrtc() {
    engine = "webrtc";
    const url = CamgateWatchEarly.whepUrl();
    whep = CamgateWhep.play(video, url, {
      // The first start plays the session watch-early.js began before this script ran.
      prepared: CamgateWatchEarly.take(url),
      headers: options.signature ? {} : CamgateAuth.headers({}),
      onState(next) {
        if (next === "playing") onPlaying();
      },
      onFailure: onWebrtcFailure,
      onAuthError: refused,
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
    if (lowLatency()) hls.on(Hls.Events.FRAG_BUFFERED, steerToLiveEdge);
    hls.loadSource(playlistUrl());
    hls.attachMedia(video);
  }

  // hls.js aims PART-HOLD-BACK (three parts) behind live, adds a whole second to that for every
  // stall, lands 0.1-0.45 s behind its aim depending on the page load and never catches up (it
  // speeds up only with over a second buffered). This page aims two parts behind, lets a stall
  // cost one more part, and once playing jumps to its aim within what is buffered, at most every
  // few seconds (docs/llhls.md, latency).
  const LIVE_TARGET_PARTS = 2;
  const LIVE_EDGE_SLACK_S = 0.05;
  const LIVE_EDGE_MIN_AHEAD_S = 0.25; // never seek closer than this to the end of the buffer
  const LIVE_EDGE_SEEK_GAP_MS = 3000;
  let lastLiveEdgeSeekMs = 0;
  let aimedPlayer = null;
  function steerToLiveEdge() {
    const details = hls && hls.latestLevelDetails;
    const partTarget = details && details.partTarget;
    if (partTarget && aimedPlayer !== hls) {
      aimedPlayer = hls;
      hls.config.liveSyncOnStallIncrease = partTarget;
      hls.targetLatency = LIVE_TARGET_PARTS * partTarget;
    }
    const target = hls && hls.targetLatency;
    if (!target || video.paused || video.readyState < 3 || !video.buffered.length) return;
    if (hls.latency - target < LIVE_EDGE_SLACK_S) return;
    if (Date.now() - lastLiveEdgeSeekMs < LIVE_EDGE_SEEK_GAP_MS) return;
    const position = video.currentTime + hls.latency - target;
    if (!bufferedAhead(position, LIVE_EDGE_MIN_AHEAD_S)) return;
    lastLiveEdgeSeekMs = Date.now();
    video.currentTime = position;
  }

  // Whether `position` lies in one buffered range with at least `ahead` seconds after it in that
  // range: a seek into a hole between ranges would stand the video still until hls.js skips it.
  function bufferedAhead(position, ahead) {
    const ranges = video.buffered;
    for (let i = 0; i < ranges.length; i += 1) {
      if (ranges.start(i) <= position && ranges.end(i) - position >= ahead) return true;
    }
    return false;
  }

  function onHlsError(_event, data) {
    recordError("hls.js", `${data.type}/${data.details}`, data.fatal);
    if (!data.fatal) return;
    const code = data.response && data.response.code;
    if (code === 401 || code === 403) {
      refused(code);
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
      onAuthError: refused,
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

  // The server refused this viewer (or knows no such camera): nothing will play, say why.
  function refused(status) {
    stopPlayer();
    setState("error", authMessage(status));
    showNotice(authMessage(status), "");
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
    playerOn = true;
    lastProgress = { time: -1, atMs: Date.now() };
    const askedWebrtc = options.mode === "webrtc";
    if (mode === "webrtc" && typeof CamgateWhep !== "undefined" && CamgateWhep.supported()) {
      if (askedWebrtc || webrtcCanCarry()) {
        startWebrtc();
        return;
      }
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
    if (retryTimer !== null || !playerOn) return;
    // With the camera's state at hand the page waits for it (onStreamStatus), not for a timer;
    // a player's own error code (hls.js's manifestLoadError, ...) is no reason to show.
    setState("reconnecting", feedOpen ? null : reason);
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

  // No player, no timer: the page waits for the camera (or for the user to press play).
  function stopPlayer() {
    if (retryTimer !== null) clearTimeout(retryTimer);
    retryTimer = null;
    if (playerOn) teardown();
    playerOn = false;
    updateControls();
  }

  function onPlaying() {
    if (!playerOn) return;
    hasPlayed = true;
    retryDelayS = RETRY_MIN_S;
    video.removeAttribute("poster");
    hideNotice();
    setState("playing");
    updateControls();
  }

  // ----- the camera's state ------------------------------------------------------------------

  function feedUrl() {
    const path = `${options.basePath}/watch/${encodeURIComponent(options.cameraId)}/events`;
    const url = new URL(path, window.location.href);
    if (options.signature) {
      url.searchParams.set("exp", options.signature.exp);
      url.searchParams.set("sig", options.signature.sig);
    }
    return url.toString();
  }

  function openFeed() {
    if (!CamgateEvents.supported()) {
      decideWithoutFeed();
      return;
    }
    const stream = CamgateEvents.open(feedUrl(), {
      headers: options.signature ? {} : CamgateAuth.headers({}),
      onOpen() {
        feedOpen = true;
        feedRetryS = FEED_RETRY_MIN_S;
      },
      onEvent(type, data) {
        if (type === "deleted") onStreamGone();
        if (type !== "state") return;
        try {
          onStreamStatus(JSON.parse(data));
        } catch (err) {
          recordError("feed", err.name, false);
        }
      },
      onClose(status) {
        if (feed !== stream) return;
        feed = null;
        feedOpen = false;
        if (status === 401 || status === 403 || status === 404) {
          feedDecided = true;
          refused(status);
          return;
        }
        // The server is restarting, or too old for the feed: play (or keep playing) on the
        // player's own retries meanwhile, and ask again later.
        recordError("feed", status ? `HTTP ${status}` : "closed", false);
        decideWithoutFeed();
        setTimeout(openFeed, feedRetryS * 1000);
        feedRetryS = Math.min(feedRetryS * 2, FEED_RETRY_MAX_S);
      },
    });
    feed = stream;
  }

  function decideWithoutFeed() {
    if (feedDecided) return;
    feedDecided = true;
    if (!userPaused && !playerOn) start();
  }

  function onStreamGone() {
    streamStatus = null;
    refused(404);
  }

  // Follow the stream: play while it runs (an idle on-demand camera is woken by playing it),
  // wait with its reason while it is down, start at once when it is back.
  function onStreamStatus(status) {
    streamStatus = status;
    feedDecided = true;
    updateControls();
    if (userPaused) return;
    if (DOWN_STATES.has(status.state)) {
      stopPlayer();
      const [title, detail] = downText(status);
      showNotice(title, detail);
      setState("waiting", status.reason || status.state);
      return;
    }
    if (!CamgateCodecs.playableHere(status.browserPlayback, status.codecs)) {
      stopPlayer();
      const note = status.browserPlayback ? status.browserPlayback.note : null;
      showNotice("This camera's video (H.265) does not play in this browser.", note || "");
      setState("error", "not playable in this browser");
      return;
    }
    if (status.state === "starting" && !playerOn) {
      showNotice("The camera is starting…", "");
      setState("waiting", "the camera is starting");
      return;
    }
    if (playerOn && retryTimer !== null && status.state === "running") {
      clearTimeout(retryTimer); // the stream is back: no need to wait for the back-off
      retryTimer = null;
      playerOn = false;
    }
    if (!playerOn) {
      hideNotice();
      retryDelayS = RETRY_MIN_S;
      setState(hasPlayed ? "reconnecting" : "connecting");
      start();
    }
  }

  function downText(status) {
    const reason = status.reason ? REASONS[status.reason] || status.reason : null;
    const detail = status.message || "";
    if (status.state === "stopped" || status.state === "stopping") {
      return ["The camera is stopped.", reason ? `Last: ${reason}. ${detail}`.trim() : ""];
    }
    if (status.state === "failed") {
      return [`camgate gave up on this camera: ${reason || "it kept failing"}.`, detail];
    }
    const retry = Date.parse(status.nextRetryAt || "");
    const when = Number.isNaN(retry) ? "" : ` Next try at ${new Date(retry).toLocaleTimeString()}.`;
    return [`${reason || "The camera's stream is down"}; waiting for it to come back.${when}`, detail];
  }

  function showNotice(title, detail) {
    noticeTitleEl.textContent = title;
    noticeDetailEl.textContent = detail || "";
    noticeDetailEl.hidden = !detail;
    noticeEl.hidden = false;
  }

  function hideNotice() {
    noticeEl.hidden = true;
  }

  // ----- controls ----------------------------------------------------------------------------

  function hasAudio() {
    // Every mode carries the camera's sound: AAC over MSE and HLS, Opus over WebRTC.
    return !streamStatus || streamStatus.audioOutput !== false;
  }

  // Pause tears the player down and keeps the last picture; play follows the camera again.
  function togglePause() {
    userPaused = !userPaused;
    if (userPaused) {
      try {
        CamgateControls.freezeFrame(video);
      } catch (err) {
        recordError("pause", err.name, false);
      }
      stopPlayer();
      setState("paused");
      return;
    }
    hideNotice();
    if (streamStatus) onStreamStatus(streamStatus);
    else start();
  }

  function updateControls() {
    if (controls) controls.update();
  }

  function wireControls() {
    controls = CamgateControls.attach(
      {
        video,
        stage: stageEl,
        play: document.getElementById("play"),
        mute: document.getElementById("mute"),
        fullscreen: document.getElementById("fullscreen"),
        pip: document.getElementById("pip"),
      },
      {
        togglePause,
        paused: () => userPaused,
        playing: () => playerOn,
        hasAudio,
        onError: (source, name) => recordError(source, name, false),
      },
    );
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
      playerOn,
      userPaused,
      feedOpen,
      streamState: streamStatus ? streamStatus.state : null,
      notice: noticeEl.hidden ? null : noticeEl.textContent.trim().replace(/\s+/g, " "),
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
  wireControls();
  setState("connecting");
  openFeed();
  // WebRTC needs nothing from the feed to begin: its offer went out from the page's head
  // (watch-early.js), before this script ran, and plays now. The camera's state, when it comes, stops the player
  // like any other (camera down, H.265 not playable here); an H.265 camera this browser plays
  // refuses the offer and the page falls back to MSE by itself.
  if (mode === "webrtc" && typeof CamgateWhep !== "undefined" && CamgateWhep.supported()) start();
  // The camera's state normally arrives within milliseconds; without it, play anyway.
  setTimeout(decideWithoutFeed, FEED_WAIT_MS);
})();
