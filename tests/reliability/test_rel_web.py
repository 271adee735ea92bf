"""Hostile requests to the web interface of a running node (issue 23), without a browser:
each is refused and changes nothing (no folder paused, no device added, no session)."""

from __future__ import annotations

import httpx
from nodes import FOLDER, running_cluster, wait_for

from p2psync.api.auth import read_api_key
from p2psync.web.sessions import MAX_FAILURES, cookie_name


async def test_web_interface_refuses_hostile_requests(tmp_path, outcomes) -> None:
    async with running_cluster(tmp_path, ["a"]) as c:
        node = c.nodes["a"]
        await wait_for(lambda: node.api_address, what="API address")
        address = str(node.api_address)
        base = f"http://{address}"
        key = read_api_key(c.homes["a"])
        cookie = cookie_name(address)
        async with httpx.AsyncClient(base_url=base, timeout=10, trust_env=False) as web:
            signed = await web.post("/signin", data={"key": key})
            assert signed.status_code == 303
            token = signed.cookies[cookie]
            web.cookies.clear()
            session = {"Cookie": f"{cookie}={token}"}
            page = (await web.get("/", headers=session)).text
            csrf = page.split('"X-CSRF-Token": "', 1)[1].split('"', 1)[0]
            pause = f"/ui/folders/{FOLDER}/pause"
            calls = {
                "page without a session": ("GET", "/", {}, None, 303),
                "action without a session": ("POST", pause, {"X-CSRF-Token": csrf}, None, 401),
                "action without the CSRF token": ("POST", pause, session, None, 403),
                "action with a wrong CSRF token": (
                    "POST",
                    pause,
                    {**session, "X-CSRF-Token": csrf[:-2] + "xx"},
                    None,
                    403,
                ),
                "action from another origin (Origin: evil.example)": (
                    "POST",
                    pause,
                    {**session, "X-CSRF-Token": csrf, "Origin": "http://evil.example"},
                    None,
                    403,
                ),
                "action with Sec-Fetch-Site: cross-site": (
                    "POST",
                    pause,
                    {**session, "X-CSRF-Token": csrf, "Sec-Fetch-Site": "cross-site"},
                    None,
                    403,
                ),
                "page with Host: evil.example (rebinding)": (
                    "GET",
                    "/",
                    {**session, "Host": "evil.example"},
                    None,
                    403,
                ),
                "session cookie used on the JSON API": ("GET", "/api/folders", session, None, 401),
                "used-up one-time sign-in link": ("GET", "/signin?ticket=made-up", {}, None, 401),
            }
            for what, (method, url, headers, body, status) in calls.items():
                web.cookies.clear()  # only the headers above carry a session
                r = await web.request(method, url, headers=headers, data=body)
                assert r.status_code == status, f"{what}: {r.status_code} {r.text[:200]}"
                assert "Traceback" not in r.text
                shown = "redirected to sign-in" if status == 303 else "refused"
                outcomes.record("web", what, f"{shown} ({r.status_code})")

            # an open redirect after sign-in: only paths on this site are followed
            web.cookies.clear()
            away = await web.post("/signin", data={"key": key, "next": "//evil.example/x"})
            assert away.status_code == 303 and away.headers["location"] == "/"
            outcomes.record("web", "sign-in with next=//evil.example", "redirected to / only")

            # guessing the key: refused, then throttled; the right key waits too
            web.cookies.clear()
            for _ in range(MAX_FAILURES + 1):
                wrong = await web.post("/signin", data={"key": "guess"})
                assert wrong.status_code == 401
            throttled = await web.post("/signin", data={"key": key})
            assert throttled.status_code == 429 and cookie not in throttled.cookies
            outcomes.record(
                "web",
                f"{MAX_FAILURES + 1} wrong API keys at sign-in within a minute",
                "refused (401), then throttled (429)",
                trials=MAX_FAILURES + 1,
            )
        assert node.config.folder(FOLDER).paused is False
