// Whether this browser can play a camera, from the camera's status.
//
// The server says whether browsers in general can (status.browserPlayback.playable: "all" for
// H.264, "some" for H.265, "none"); for "some" only this browser can tell, from the output's
// RFC 6381 codecs (status.codecs.output). Chromium without a hardware HEVC decoder, Firefox and
// older browsers cannot play H.265: the dashboard then offers the conversion to H.264 and the
// player page says so instead of failing with a decoder error.
//
// CamgateCodecs.playableHere(browserPlayback, outputCodecs) -> true / false
"use strict";

(function () {
  // A common H.265 Main profile string, for when the camera's own is not known yet.
  const HEVC_PROBE = "hvc1.1.6.L93.B0";

  function canPlay(codecs) {
    const type = `video/mp4; codecs="${codecs}"`;
    const source = window.MediaSource || window.ManagedMediaSource;
    if (source && typeof source.isTypeSupported === "function" && source.isTypeSupported(type)) {
      return true;
    }
    return document.createElement("video").canPlayType(type) !== "";
  }

  function playableHere(browserPlayback, outputCodecs) {
    const playable = browserPlayback ? browserPlayback.playable : null;
    if (playable === "none") return false;
    if (playable !== "some") return true; // "all", or not known yet
    return canPlay(outputCodecs || HEVC_PROBE);
  }

  window.CamgateCodecs = { playableHere, canPlay };
})();
