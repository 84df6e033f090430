// Reads the test camera's timecode out of video frames and turns it into glass-to-glass latency.
//
// The timecode (written by tests/support/camera.py) fills the top 80 rows of a 640x360 frame with
// `capture wall-clock ms % 2**32`, 32 bits MSB first: bit i is the block x = i*20 .. i*20+19,
// rows 0..39 white for 1 (black for 0) and rows 40..79 the inverse. A bit is 1 when the mean luma
// of its top block is above that of its bottom block. Like the Python decoder in
// tests/support/camera.py, it reads each block a few pixels in from its edges, where compression
// smears neighbouring blocks. This is the only browser-side decoder: watch.js (?latency=1) and
// the Playwright harness both use it.
"use strict";

(function (global) {
  const FRAME_WIDTH = 640;
  const FRAME_HEIGHT = 360;
  const BITS = 32;
  const BLOCK_WIDTH = 20;
  const BAND_ROWS = 40;
  const CODE_ROWS = 2 * BAND_ROWS;
  const INSET = 4;
  const WRAP = 4294967296; // 2**32, kept as a Number: JS bitwise operators are signed 32-bit.
  // A frame without a timecode (or a blurred one) has bands of similar luma; demand a clear edge
  // on every bit so such frames are skipped instead of decoded into nonsense.
  const MIN_BAND_CONTRAST = 48;

  function blockMeanLuma(rgba, x0, y0) {
    const width = BLOCK_WIDTH - 2 * INSET;
    const rows = BAND_ROWS - 2 * INSET;
    let sum = 0;
    for (let y = y0 + INSET; y < y0 + INSET + rows; y++) {
      let i = (y * FRAME_WIDTH + x0 + INSET) * 4;
      for (let x = 0; x < width; x++, i += 4) {
        sum += 0.299 * rgba[i] + 0.587 * rgba[i + 1] + 0.114 * rgba[i + 2];
      }
    }
    return sum / (width * rows);
  }

  // rgba: the top CODE_ROWS rows of a FRAME_WIDTH-wide frame (ImageData.data).
  // Returns the captured ms (mod 2**32), or null when the frame carries no readable timecode.
  function decode(rgba) {
    let value = 0;
    for (let bit = 0; bit < BITS; bit++) {
      const top = blockMeanLuma(rgba, bit * BLOCK_WIDTH, 0);
      const bottom = blockMeanLuma(rgba, bit * BLOCK_WIDTH, BAND_ROWS);
      if (Math.abs(top - bottom) < MIN_BAND_CONTRAST) return null;
      value = value * 2 + (top > bottom ? 1 : 0);
    }
    return value;
  }

  // Milliseconds from capture to nowMs, across the 2**32 wrap of the timecode.
  function latencyMs(capturedMod32, nowMs) {
    return (((nowMs % WRAP) - capturedMod32) % WRAP + WRAP) % WRAP;
  }

  // Calls onSample(latencyMs) for every new frame the video presents, until stop() is called.
  // Uses requestVideoFrameCallback where the browser has it (one call per presented frame),
  // otherwise requestAnimationFrame and skips repeats of the same frame.
  class FrameSampler {
    constructor(video, onSample) {
      this.video = video;
      this.onSample = onSample;
      this.undecodable = 0;
      this.running = false;
      this.lastMediaTime = -1;
      const canvas = document.createElement("canvas");
      canvas.width = FRAME_WIDTH;
      canvas.height = CODE_ROWS;
      this.context = canvas.getContext("2d", { willReadFrequently: true });
    }

    start() {
      this.running = true;
      this.schedule();
    }

    stop() {
      this.running = false;
    }

    schedule() {
      if (!this.running) return;
      if (typeof this.video.requestVideoFrameCallback === "function") {
        this.video.requestVideoFrameCallback((_now, meta) => this.onFrame(meta.mediaTime));
      } else {
        requestAnimationFrame(() => this.onFrame(this.video.currentTime));
      }
    }

    onFrame(mediaTime) {
      if (!this.running) return;
      const nowMs = Date.now();
      const video = this.video;
      if (mediaTime !== this.lastMediaTime && video.videoWidth > 0) {
        this.lastMediaTime = mediaTime;
        // Scale the source so the code rows land on a FRAME_WIDTH x CODE_ROWS canvas whatever
        // size the stream was encoded at.
        const sourceRows = (video.videoHeight * CODE_ROWS) / FRAME_HEIGHT;
        this.context.drawImage(video, 0, 0, video.videoWidth, sourceRows, 0, 0, FRAME_WIDTH, CODE_ROWS);
        const captured = decode(this.context.getImageData(0, 0, FRAME_WIDTH, CODE_ROWS).data);
        if (captured === null) {
          this.undecodable += 1;
        } else {
          this.onSample(latencyMs(captured, nowMs));
        }
      }
      this.schedule();
    }
  }

  // Collects latency samples (ms) from `video` for `seconds`, then resolves with them.
  function sampleFor(video, seconds) {
    return new Promise((resolve) => {
      const samples = [];
      const sampler = new FrameSampler(video, (ms) => samples.push(ms));
      sampler.start();
      setTimeout(() => {
        sampler.stop();
        resolve({ samplesMs: samples, undecodable: sampler.undecodable });
      }, seconds * 1000);
    });
  }

  global.CamgateTimecode = { decode, latencyMs, FrameSampler, sampleFor };
})(window);
