// The player page's controls: pause/play, mute, full screen and picture-in-picture, as buttons
// and as keys (k or space, m, f, p) when no form field has the focus. Space and Enter on a
// focused button stay that button's own click.
//
// CamgateControls.attach(elements, hooks) returns {update()}:
//   elements  {video, stage, play, mute, fullscreen, pip}: stage is what goes full screen
//   hooks     togglePause()  the page pauses (tearing its player down) or plays again
//             paused()       whether the viewer paused
//             playing()      whether a player runs (picture-in-picture needs one)
//             hasAudio()     whether the stream has sound (the mute button is off without)
//             onError(source, name)  a refused request (full screen, picture-in-picture)
// CamgateControls.freezeFrame(video) keeps the current picture as the video's poster.
"use strict";

(function () {
  function attach(elements, hooks) {
    const { video, stage, play, mute, fullscreen, pip } = elements;

    function update() {
      const paused = hooks.paused();
      play.textContent = paused ? "Play" : "Pause";
      play.title = paused ? "Play, back to live (k)" : "Pause (k)";
      play.setAttribute("aria-label", play.textContent);
      const audio = hooks.hasAudio();
      mute.disabled = !audio;
      mute.textContent = video.muted ? "Unmute" : "Mute";
      mute.title = audio ? `${mute.textContent} (m)` : "this stream has no audio";
      mute.setAttribute("aria-label", audio ? mute.textContent : "No audio");
      fullscreen.hidden = !document.fullscreenEnabled;
      const full = document.fullscreenElement === stage;
      fullscreen.textContent = full ? "Exit full screen" : "Full screen";
      pip.hidden = !document.pictureInPictureEnabled || video.disablePictureInPicture;
      pip.disabled = !hooks.playing();
      pip.textContent =
        document.pictureInPictureElement === video ? "Exit picture in picture" : "Picture in picture";
    }

    function toggleMute() {
      if (!hooks.hasAudio()) return;
      video.muted = !video.muted;
      if (!video.muted && video.volume === 0) video.volume = 1;
      update();
    }

    function toggleFullscreen() {
      const request = document.fullscreenElement ? document.exitFullscreen() : stage.requestFullscreen();
      request.catch((err) => hooks.onError("fullscreen", err.name));
    }

    function togglePip() {
      if (!hooks.playing()) return;
      const request =
        document.pictureInPictureElement === video
          ? document.exitPictureInPicture()
          : video.requestPictureInPicture();
      request.catch((err) => hooks.onError("pip", err.name)).then(update);
    }

    function togglePause() {
      // A paused page has no player, so its picture-in-picture window would stay black.
      if (!hooks.paused() && document.pictureInPictureElement === video) {
        document.exitPictureInPicture().catch(() => {});
      }
      hooks.togglePause();
      update();
    }

    const keys = { k: togglePause, " ": togglePause, m: toggleMute, f: toggleFullscreen, p: togglePip };

    function onKey(event) {
      if (event.ctrlKey || event.metaKey || event.altKey) return;
      const target = event.target;
      if (target && /^(INPUT|SELECT|TEXTAREA)$/.test(target.tagName)) return;
      if (target && target.tagName === "BUTTON" && (event.key === " " || event.key === "Enter")) return;
      const action = keys[event.key.length === 1 ? event.key.toLowerCase() : event.key];
      if (!action) return;
      event.preventDefault();
      action();
    }

    play.addEventListener("click", togglePause);
    mute.addEventListener("click", toggleMute);
    fullscreen.addEventListener("click", toggleFullscreen);
    pip.addEventListener("click", togglePip);
    document.addEventListener("keydown", onKey);
    document.addEventListener("fullscreenchange", update);
    video.addEventListener("volumechange", update);
    video.addEventListener("enterpictureinpicture", update);
    video.addEventListener("leavepictureinpicture", update);
    update();
    return { update };
  }

  // Keep the picture on screen while paused: the page tears its player down (no download, no
  // buffer growing behind a live stream), so the last frame becomes the poster.
  function freezeFrame(video) {
    if (!video.videoWidth || !video.videoHeight) return;
    const canvas = document.createElement("canvas");
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    canvas.getContext("2d").drawImage(video, 0, 0);
    video.poster = canvas.toDataURL("image/jpeg", 0.85);
  }

  window.CamgateControls = { attach, freezeFrame };
})();
