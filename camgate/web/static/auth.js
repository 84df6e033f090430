// The API token of this browser, for the dashboard and the player page.
//
// camgate asks for a token only when it has tokens configured (it answers 401). The token is
// kept in this browser's localStorage for this origin and sent as an Authorization header:
// never in a URL, where it would end up in logs, history and Referer headers. Signed viewer
// URLs (?exp=…&sig=…) play without any token.
"use strict";

(function () {
  const KEY = "camgate.apiToken";

  function token() {
    try {
      return window.localStorage.getItem(KEY) || "";
    } catch (err) {
      return "";
    }
  }

  function setToken(value) {
    try {
      if (value) window.localStorage.setItem(KEY, value);
      else window.localStorage.removeItem(KEY);
    } catch (err) {
      /* private mode: the token lasts as long as the page */
    }
  }

  function headers(extra) {
    const result = Object.assign({}, extra || {});
    const current = token();
    if (current) result.Authorization = `Bearer ${current}`;
    return result;
  }

  // hls.js options that send the token with every playlist, segment and part request.
  function hlsConfig(config) {
    return Object.assign({}, config, {
      xhrSetup(xhr) {
        const current = token();
        if (current) xhr.setRequestHeader("Authorization", `Bearer ${current}`);
      },
      fetchSetup(context, init) {
        const options = Object.assign({}, init);
        options.headers = new Headers(options.headers || {});
        const current = token();
        if (current) options.headers.set("Authorization", `Bearer ${current}`);
        return new Request(context.url, options);
      },
    });
  }

  window.CamgateAuth = { token, setToken, headers, hlsConfig };
})();
