"""Playback of a camera another node runs: what is redirected, what is relayed, what a relay
sends the owner and what it gives the client back (pure rules, no network)."""

from __future__ import annotations

from starlette.requests import HTTPConnection

from camgate.api.auth import ViewerSigner
from camgate.api.cluster import must_relay
from camgate.api.proxy import owner_query, relay_headers, without

SIGNER = ViewerSigner(b"k" * 32)


def connection(query: str, signed: bool = False) -> HTTPConnection:
    scope = {"type": "http", "path": "/hls/door/index.m3u8", "query_string": query.encode()}
    scope |= {"headers": [], "state": {"signed_query": "exp=1&sig=x"} if signed else {}}
    return HTTPConnection(scope)


def test_what_can_follow_a_redirect_is_redirected_and_the_rest_relayed() -> None:
    assert not must_relay("redirect", {})  # a player outside a browser, a signed link
    assert not must_relay("redirect", {"sec-fetch-mode": "navigate", "sec-fetch-site": "none"})
    assert must_relay("redirect", {"authorization": "Bearer t"})  # the token stays here
    # A page script's request (fetch, XHR, hls.js): a redirect would need CORS on the owner.
    assert must_relay("redirect", {"sec-fetch-mode": "cors", "sec-fetch-site": "same-origin"})
    assert must_relay("redirect", {"sec-fetch-mode": "cors", "sec-fetch-site": "cross-site"})
    # A <video> or <img> element follows a redirect to another origin without CORS.
    assert not must_relay("redirect", {"sec-fetch-mode": "no-cors", "sec-fetch-dest": "video"})
    assert must_relay("proxy", {})


def test_a_relay_never_sends_the_clients_credentials_on() -> None:
    client = {
        "authorization": "Bearer admin-token-0123456789",
        "cookie": "session=1",
        "content-type": "application/sdp",
        "origin": "http://gw2:8080",
        "x-forwarded-for": "10.0.0.9",
    }
    assert relay_headers("POST", client) == {
        "content-type": "application/sdp",
        "x-camgate-relayed": "1",
    }
    assert relay_headers("GET", client)["origin"] == "http://gw2:8080"  # CORS is the owner's
    assert "authorization" not in relay_headers("GET", client)


def test_a_clients_signature_goes_on_as_it_is() -> None:
    query, minted = owner_query(connection("ll=0&exp=1&sig=x", signed=True), SIGNER, "door")
    assert (query, minted) == ("ll=0&exp=1&sig=x", "")


def test_for_a_token_holder_the_relay_signs_for_the_one_camera_and_takes_it_out_again() -> None:
    query, minted = owner_query(connection("_HLS_msn=5&_HLS_part=2"), SIGNER, "door")
    assert query == f"_HLS_msn=5&_HLS_part=2&{minted}"
    exp, sig = (item.split("=", 1)[1] for item in minted.split("&"))
    assert SIGNER.verify("door", exp, sig).value == "valid"
    assert SIGNER.verify("yard", exp, sig).value == "invalid"  # for that camera only
    playlist = f'#EXT-X-MAP:URI="s1/init-0.mp4?{minted}"\ns1/part-3.m4s?{minted}\n'
    assert without(playlist, minted) == '#EXT-X-MAP:URI="s1/init-0.mp4"\ns1/part-3.m4s\n'
    assert without(f"/whep/door/abc?{minted}", minted) == "/whep/door/abc"
    assert without(f"/x?a=1&{minted}", minted) == "/x?a=1"
    assert without(f"/x?{minted}&a=1", minted) == "/x?a=1"
    assert without("unchanged", "") == "unchanged"
