// JPEG snapshots in an <img>, refreshed while the page is visible: for dashboard tiles that show
// no live video.
//
//   const handle = CamgateSnapshot.attach(img, cameraId, {intervalS: 5, width: 320});
//   handle.detach();   // or CamgateSnapshot.detach(img)
//
// Options: intervalS (seconds between pictures, at least 1; default 5), width (scale down on the
// server), query (a signed viewer URL's "exp=…&sig=…", for pages opened by such a link),
// basePath (when camgate is served under a prefix), onState(state, detail) with state one of
// "ok", "waiting" (503: no keyframe yet, the camera is not streaming), "denied" (401/403),
// "error". The img also gets data-snapshot-state. An img taken out of the page stops by itself.
//
// The JPEG is fetched with the browser's API token in a header (auth.js), never in the URL, and
// shown through a blob: URL; each new picture revokes the previous one, so a page open for days
// holds one picture per tile. Failures back off up to RETRY_MAX_S; Retry-After is honoured.
"use strict";

(function () {
  const DEFAULT_INTERVAL_S = 5;
  const MIN_INTERVAL_S = 1;
  const RETRY_MAX_S = 30;
  const attached = new Map(); // img -> its refresher

  function snapshotUrl(cameraId, options) {
    const query = new URLSearchParams(options.query || "");
    if (options.width) query.set("width", String(options.width));
    const search = query.toString();
    const path = `${options.basePath || ""}/api/cameras/${encodeURIComponent(cameraId)}/snapshot.jpg`;
    return search ? `${path}?${search}` : path;
  }

  function stateOf(status) {
    if (status === 503) return "waiting";
    if (status === 401 || status === 403) return "denied";
    return "error";
  }

  class Refresher {
    constructor(img, cameraId, options) {
      this.img = img;
      this.url = snapshotUrl(cameraId, options);
      this.intervalS = Math.max(MIN_INTERVAL_S, Number(options.intervalS) || DEFAULT_INTERVAL_S);
      this.onState = typeof options.onState === "function" ? options.onState : null;
      this.blobUrl = null;
      this.timer = null;
      this.controller = null;
      this.failures = 0;
      this.stopped = false;
      this.onVisibility = () => {
        if (!document.hidden && this.timer === null && this.controller === null) this.refresh();
      };
      document.addEventListener("visibilitychange", this.onVisibility);
    }

    async refresh() {
      this.timer = null;
      if (this.stopped || document.hidden) return; // resumed by visibilitychange
      this.controller = new AbortController();
      let delayS = this.intervalS;
      try {
        const response = await fetch(this.url, {
          headers: window.CamgateAuth ? window.CamgateAuth.headers() : {},
          cache: "no-cache",
          signal: this.controller.signal,
        });
        if (response.ok) {
          this.show(await response.blob());
        } else {
          delayS = this.failed(stateOf(response.status), response);
        }
      } catch (err) {
        if (this.stopped) return;
        delayS = this.failed("error", null);
      } finally {
        this.controller = null;
      }
      if (!this.stopped) this.timer = window.setTimeout(() => this.next(), delayS * 1000);
    }

    // A tile removed from the page without detach stops here instead of polling forever.
    next() {
      if (this.img.isConnected) this.refresh();
      else detach(this.img);
    }

    show(blob) {
      if (this.stopped) return;
      const previous = this.blobUrl;
      this.blobUrl = URL.createObjectURL(blob);
      this.img.src = this.blobUrl;
      if (previous) URL.revokeObjectURL(previous);
      this.failures = 0;
      this.report("ok", null);
    }

    // The delay before the next try: doubling from the interval, at least Retry-After.
    failed(state, response) {
      this.failures += 1;
      const retryAfterS = response ? Number(response.headers.get("Retry-After")) || 0 : 0;
      const backoffS = Math.min(RETRY_MAX_S, this.intervalS * 2 ** (this.failures - 1));
      this.report(state, response ? response.status : null);
      return Math.max(retryAfterS, backoffS);
    }

    report(state, status) {
      this.img.dataset.snapshotState = state;
      if (this.onState) this.onState(state, { status, failures: this.failures });
    }

    stop() {
      this.stopped = true;
      document.removeEventListener("visibilitychange", this.onVisibility);
      if (this.timer !== null) window.clearTimeout(this.timer);
      if (this.controller) this.controller.abort();
      if (this.blobUrl) URL.revokeObjectURL(this.blobUrl);
      this.blobUrl = null;
      this.img.removeAttribute("src");
      delete this.img.dataset.snapshotState;
    }
  }

  function detach(img) {
    const refresher = attached.get(img);
    if (!refresher) return;
    attached.delete(img);
    refresher.stop();
  }

  function attach(img, cameraId, options) {
    detach(img);
    const refresher = new Refresher(img, cameraId, options || {});
    attached.set(img, refresher);
    refresher.refresh();
    return { detach: () => detach(img) };
  }

  window.CamgateSnapshot = { attach, detach };
})();
