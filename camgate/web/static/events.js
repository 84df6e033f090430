// Reads a server-sent event stream (text/event-stream) with fetch, so that the API token can go
// in a header: EventSource cannot send one, and a token must never go into a URL.
//
// CamgateEvents.supported() says whether this browser can read a response as a stream.
// CamgateEvents.open(url, options) returns {close()}. Options:
//   headers          the request headers (e.g. CamgateAuth.headers({}))
//   onOpen()         the server accepted the stream
//   onEvent(type, data)  one event: its `event:` name and its `data:` text
//   onClose(status)  the stream ended or could not be opened: the HTTP status when the server
//                    refused it (401, 403, 404, ...), 0 for a network error or a closed stream;
//                    not called after close()
"use strict";

(function () {
  function supported() {
    return (
      typeof ReadableStream !== "undefined" &&
      typeof TextDecoderStream !== "undefined" &&
      typeof AbortController !== "undefined"
    );
  }

  // One `event:`/`data:` block of the stream; comment lines (": ...") carry nothing.
  function parseBlock(block) {
    let type = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith("event:")) type = line.slice(6).trim();
      else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
    }
    return data.length ? { type, data: data.join("\n") } : null;
  }

  function open(url, options) {
    const noop = () => {};
    const onOpen = options.onOpen || noop;
    const onEvent = options.onEvent || noop;
    const onClose = options.onClose || noop;
    const controller = new AbortController();
    let closed = false;

    async function read() {
      const response = await fetch(url, {
        headers: Object.assign({ Accept: "text/event-stream" }, options.headers || {}),
        cache: "no-store",
        signal: controller.signal,
      });
      if (!response.ok || !response.body) return response.status || 0;
      onOpen();
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return 0;
        buffer = (buffer + value).replace(/\r\n?/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const event = parseBlock(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
          if (event && !closed) onEvent(event.type, event.data);
        }
      }
    }

    read()
      .catch(() => 0)
      .then((status) => {
        if (!closed) onClose(status);
      });

    return {
      close() {
        closed = true;
        controller.abort();
      },
    };
  }

  window.CamgateEvents = { supported, open };
})();
