// Plays a camera over WebRTC with WHEP (RFC 9725): POST an SDP offer to /whep/<cameraId>, set
// the SDP answer, show the video track; DELETE the session's Location when done.
//
// The offer is sent at once, before this browser has gathered a candidate: camgate answers with
// every candidate of its own (no trickle ICE), and the browser's connectivity checks to those
// reveal its address to the server (a peer-reflexive candidate), which is all a browser's
// mDNS-named host candidates would have told it. Waiting for gathering cost 100-200 ms.
// The server sends H.264 video and, when the camera has audio, Opus.
//
// CamgateWhep.supported() says whether this browser has WebRTC;
// CamgateWhep.prepare(url, {headers}) starts a session before there is a player (the offer goes
// out at once); CamgateWhep.play(video, url, options) returns {close(), stats(), getStats()}.
// url is the WHEP endpoint, with a signed viewer URL's ?exp=…&sig=… when there is one. Options:
//   headers                  extra request headers (a bearer token from auth.js)
//   prepared                 a session from prepare() for the same url, to play instead of a new one
//   connectTimeoutS          no picture within this long: onFailure (default 4 s)
//   onState(state, detail)   "connecting", "playing"
//   onFailure(reason)        WebRTC cannot play here (refused, no connection, connection lost)
//   onAuthError(status)      the server refused the offer (401, 403, 404)
// stats() is the last figures read from getStats() once a second: framesDecoded, bytesReceived,
// codec, audioCodec and audioSamplesReceived (when the camera has audio), and delayMs, the
// receiver's own estimate (jitter buffer + decode + half the RTT).
"use strict";

(function () {
  const CONNECT_TIMEOUT_S = 4;
  const STATS_INTERVAL_MS = 1000;
  const DISCONNECTED_GRACE_MS = 3000; // "disconnected" often recovers by itself

  function supported() {
    return typeof window.RTCPeerConnection === "function";
  }

  // Starts a session for url without a video element: the peer connection, the offer and its
  // POST, the answer. The page may do this before its player exists (watch-early.js) and hand
  // the session to play() as options.prepared; until then tracks are gathered in its stream.
  function prepare(url, options) {
    const opts = options || {};
    const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle" });
    pc.addTransceiver("video", { direction: "recvonly" });
    pc.addTransceiver("audio", { direction: "recvonly" });
    const stream = new MediaStream();
    pc.addEventListener("track", (event) => {
      // Play as soon as a frame arrives: no extra buffering in front of the decoder.
      if ("jitterBufferTarget" in event.receiver) event.receiver.jitterBufferTarget = 0;
      stream.addTrack(event.track);
    });
    const session = { url, pc, stream, location: null, closed: false, adopted: false };
    session.headers = opts.headers || {};
    session.negotiated = negotiate(session, opts.headers || {});
    session.negotiated.catch(() => {}); // play() reports it; a session never played has no one
    // A session that no player took ends with the page, like one that plays.
    window.addEventListener("pagehide", () => {
      if (!session.adopted) end(session);
    });
    return session;
  }

  // The offer goes out while the browser applies it: it is complete as created (ICE
  // credentials, DTLS fingerprint), and applying it takes tens of milliseconds.
  async function negotiate(session, extraHeaders) {
    const { pc } = session;
    const offer = await pc.createOffer();
    if (session.closed) return { status: 0, text: "" };
    const applied = pc.setLocalDescription(offer);
    const headers = Object.assign({ "Content-Type": "application/sdp" }, extraHeaders);
    const response = await fetch(session.url, {
      method: "POST",
      headers,
      body: offer.sdp,
      cache: "no-store",
    });
    await applied;
    const text = await response.text();
    if (response.status !== 201) return { status: response.status, text };
    const where = response.headers.get("Location");
    session.location = where ? new URL(where, new URL(session.url, window.location.href)).toString() : null;
    if (session.closed) {
      endSession(session);
      return { status: response.status, text };
    }
    await pc.setRemoteDescription({ type: "answer", sdp: text });
    return { status: response.status, text };
  }

  function endSession(session) {
    if (session.location === null) return;
    // keepalive: the DELETE still goes out when the page is being left.
    fetch(session.location, { method: "DELETE", headers: session.headers || {}, keepalive: true }).catch(
      () => {},
    );
    session.location = null;
  }

  function end(session) {
    if (session.closed) return;
    session.closed = true;
    endSession(session);
    session.pc.close();
  }

  function play(video, url, options) {
    const opts = options || {};
    const onState = opts.onState || (() => {});
    const onFailure = opts.onFailure || (() => {});
    const onAuthError = opts.onAuthError || onFailure;
    const prepared = opts.prepared;
    const session = prepared && prepared.url === url && !prepared.closed ? prepared : prepare(url, opts);
    session.adopted = true;
    session.headers = opts.headers || {};
    const { pc, stream } = session;
    const figures = { state: "connecting", framesDecoded: 0, bytesReceived: 0, codec: null };
    let closed = false;
    let playing = false;
    let disconnectedTimer = null;

    function fail(reason) {
      if (closed) return;
      close();
      onFailure(reason);
    }

    const connectTimer = setTimeout(() => {
      if (!playing) fail(`no WebRTC picture within ${opts.connectTimeoutS || CONNECT_TIMEOUT_S} s`);
    }, (opts.connectTimeoutS || CONNECT_TIMEOUT_S) * 1000);

    function show() {
      if (closed || stream.getTracks().length === 0) return;
      if (video.srcObject !== stream) video.srcObject = stream;
      const promise = video.play();
      if (promise) promise.catch(() => {});
    }
    pc.addEventListener("track", show); // after prepare's listener has added the track
    show(); // the tracks that came before this player
    pc.addEventListener("connectionstatechange", () => {
      const state = pc.connectionState;
      if (state === "failed" || state === "closed") fail(`WebRTC connection ${state}`);
      if (state === "disconnected" && disconnectedTimer === null) {
        disconnectedTimer = setTimeout(() => {
          disconnectedTimer = null;
          if (pc.connectionState === "disconnected") fail("WebRTC connection lost");
        }, DISCONNECTED_GRACE_MS);
      }
    });
    video.addEventListener("playing", onPlaying);
    // Leaving the page ends the session at once (DELETE with keepalive), instead of the server
    // noticing only when the viewer's RTCP stops (15 s later).
    window.addEventListener("pagehide", close);

    function onPlaying() {
      if (closed || playing || !video.srcObject) return;
      playing = true;
      clearTimeout(connectTimer);
      figures.state = "playing";
      onState("playing");
    }

    onState("connecting");
    session.negotiated.then(
      (result) => {
        if (closed || result.status === 201) return;
        if ([401, 403, 404].includes(result.status)) {
          close();
          onAuthError(result.status);
          return;
        }
        fail(`WHEP offer refused (${result.status}): ${result.text.slice(0, 200)}`);
      },
      (err) => fail(`WHEP negotiation failed: ${err && err.message}`),
    );

    async function getStats() {
      const report = await pc.getStats();
      let rttS = null;
      report.forEach((entry) => {
        if (entry.type === "candidate-pair" && entry.nominated && entry.currentRoundTripTime) {
          rttS = entry.currentRoundTripTime;
        }
      });
      report.forEach((entry) => {
        if (entry.type === "inbound-rtp" && entry.kind === "audio") {
          const codec = entry.codecId && report.get(entry.codecId);
          figures.audioCodec = codec ? codec.mimeType : null;
          figures.audioSamplesReceived = entry.totalSamplesReceived || 0;
          return;
        }
        if (entry.type !== "inbound-rtp" || entry.kind !== "video") return;
        figures.framesDecoded = entry.framesDecoded || 0;
        figures.bytesReceived = entry.bytesReceived || 0;
        const codec = entry.codecId && report.get(entry.codecId);
        figures.codec = codec ? codec.mimeType : null;
        if (entry.jitterBufferEmittedCount) {
          const bufferS = entry.jitterBufferDelay / entry.jitterBufferEmittedCount;
          const decodeS = entry.framesDecoded ? entry.totalDecodeTime / entry.framesDecoded : 0;
          figures.delayMs = Math.round((bufferS + decodeS + (rttS || 0) / 2) * 1000);
        }
      });
      return Object.assign({}, figures);
    }

    const statsTimer = setInterval(() => {
      if (!closed) getStats().catch(() => {});
    }, STATS_INTERVAL_MS);

    function close() {
      if (closed) return;
      closed = true;
      clearTimeout(connectTimer);
      clearTimeout(disconnectedTimer);
      clearInterval(statsTimer);
      video.removeEventListener("playing", onPlaying);
      window.removeEventListener("pagehide", close);
      end(session);
      if (video.srcObject) video.srcObject = null;
      figures.state = "closed";
    }

    return { close, stop: close, stats: () => Object.assign({}, figures), getStats };
  }

  window.CamgateWhep = { supported, prepare, play };
})();
