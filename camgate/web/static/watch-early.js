// The first part of the player page (/watch/<cameraId>) to run, from its <head>, with only
// auth.js and whep.js before it: it reads the page's options and, when the page is going to play
// WebRTC, sends the WHEP offer at once (CamgateWhep.prepare). Scripts at the end of the body run
// only once the stylesheets and every script before them have arrived, which on a busy machine
// was 0.1-0.3 s after this one; watch.js adopts the session started here (take).
//
// CamgateWatchEarly.options is the page's options (watch.js describes them); whepUrl() the
// camera's WHEP endpoint; take(url) the session started for url, once, else null.
"use strict";

(function () {
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

  function whepUrl(options) {
    const path = `${options.basePath}/whep/${encodeURIComponent(options.cameraId)}`;
    const url = new URL(path, window.location.href);
    if (options.signature) {
      url.searchParams.set("exp", options.signature.exp);
      url.searchParams.set("sig", options.signature.sig);
    }
    return url.toString();
  }

  // watch.js plays WebRTC first when asked to or by default, wherever the browser has it.
  function playsWebrtcFirst(options) {
    const supported = typeof CamgateWhep !== "undefined" && CamgateWhep.supported();
    return supported && options.cameraId !== null && ["webrtc", "auto"].includes(options.mode);
  }

  const options = readOptions(window.location);
  let early = null;
  if (playsWebrtcFirst(options)) {
    const url = whepUrl(options);
    const headers = options.signature ? {} : CamgateAuth.headers({});
    early = { url, session: CamgateWhep.prepare(url, { headers }) };
  }

  function take(url) {
    if (early === null || early.url !== url) return null;
    const session = early.session;
    early = null;
    return session;
  }

  window.CamgateWatchEarly = { options, whepUrl: () => whepUrl(options), take };
})();
