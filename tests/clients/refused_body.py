#!/usr/bin/env python3
"""Sends bodies tally refuses, from real Python clients, and checks each one
reads the refusal.

A 1 MiB body to a JSON route is answered 413 before it is read, a body of
the wrong type 415. Without lingering close, the server's kernel resets the
connection while the client is still sending, and the client sees `Broken
pipe` / "Can not write request body" instead of the answer. This sends each
refusal from urllib, requests and aiohttp, with a Content-Length and
chunked, `--tries` times each, and prints one JSON line per combination:
{"client", "path", "refusal", "framing", "tries", "read", "failures"}.
Then one aiohttp `ClientSession` (one pool) sends `--rounds` rounds of a
too-large poll create followed by a normal one, and prints
{"client": "aiohttp-session", "requests", "answered", "failures"}: a
refused body's answer says `Connection: close`, so the session must never
send the next request on the connection the server closes.
Exits 1 unless every try read the expected status and JSON error body and
every pooled request was answered as expected.

Usage: refused_body.py BASE_URL PATH... [--tries N] [--size BYTES] [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import urllib.error
import urllib.request

import aiohttp
import requests

REFUSALS = {
    # name: (content type, expected status, expected error code)
    "too_large": ("application/json", 413, "payload_too_large"),
    "wrong_type": ("text/plain", 415, "unsupported_media_type"),
}
CHUNK = 64 * 1024


def chunks(size: int):
    """The body as an iterator of pieces, so the client sends it chunked."""
    sent = 0
    while sent < size:
        n = min(CHUNK, size - sent)
        sent += n
        yield b" " * n


def check(status: int, body: bytes, want_status: int, want_code: str) -> str | None:
    """None when the answer is the expected error, else what was wrong."""
    if status != want_status:
        return f"status {status}, wanted {want_status}"
    try:
        code = json.loads(body)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return f"body is not the JSON error: {body[:80]!r}"
    return None if code == want_code else f"code {code!r}, wanted {want_code!r}"


def with_urllib(url: str, ctype: str, size: int, chunked: bool) -> tuple[int, bytes]:
    data = chunks(size) if chunked else b" " * size
    req = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": ctype})
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            return res.status, res.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def with_requests(url: str, ctype: str, size: int, chunked: bool) -> tuple[int, bytes]:
    data = chunks(size) if chunked else b" " * size
    with requests.Session() as s:
        res = s.post(url, data=data, headers={"Content-Type": ctype}, timeout=10)
        return res.status_code, res.content


async def with_aiohttp(url: str, ctype: str, size: int, chunked: bool) -> tuple[int, bytes]:
    async def pieces():
        for piece in chunks(size):
            yield piece

    data = pieces() if chunked else b" " * size
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as s:
        async with s.post(url, data=data, headers={"Content-Type": ctype}) as res:
            return res.status, await res.read()


async def pooled_rounds(base: str, rounds: int, size: int) -> list[str]:
    """Rounds of a refused create then a normal one through one session;
    returns what went wrong (empty when all 2 × rounds were as expected)."""
    failures = []
    url = base + "/api/polls"
    small = {"question": "Which?", "options": ["a", "b"]}
    big = {"question": "q" * size, "options": ["a", "b"]}
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as s:
        for n in range(rounds):
            for what, body, want in (("refused", big, 413), ("normal", small, 201)):
                try:
                    async with s.post(url, json=body) as res:
                        await res.read()
                        if res.status != want:
                            failures.append(f"round {n} {what}: status {res.status}")
                        elif want == 413 and res.headers.get("Connection", "").lower() != "close":
                            failures.append(f"round {n} {what}: no Connection: close")
                except Exception as e:  # what the client raised is the finding
                    failures.append(f"round {n} {what}: {type(e).__name__}: {e}")
    return failures


def run(client: str, url: str, ctype: str, size: int, chunked: bool) -> tuple[int, bytes]:
    if client == "urllib":
        return with_urllib(url, ctype, size, chunked)
    if client == "requests":
        return with_requests(url, ctype, size, chunked)
    return asyncio.run(with_aiohttp(url, ctype, size, chunked))


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("base")
    p.add_argument("paths", nargs="+")
    p.add_argument("--tries", type=int, default=20)
    p.add_argument("--size", type=int, default=1024 * 1024)
    p.add_argument("--rounds", type=int, default=30)
    args = p.parse_args()
    ok = True
    for path in args.paths:
        for refusal, (ctype, want_status, want_code) in REFUSALS.items():
            for client in ("urllib", "requests", "aiohttp"):
                for chunked in (False, True):
                    failures = []
                    for _ in range(args.tries):
                        try:
                            status, body = run(client, args.base + path, ctype, args.size, chunked)
                            wrong = check(status, body, want_status, want_code)
                        except Exception as e:  # what the client raised is the finding
                            wrong = f"{type(e).__name__}: {e}"
                        if wrong:
                            failures.append(wrong)
                    ok &= not failures
                    print(json.dumps({
                        "client": client,
                        "path": path,
                        "refusal": refusal,
                        "framing": "chunked" if chunked else "content-length",
                        "tries": args.tries,
                        "read": args.tries - len(failures),
                        "failures": sorted(set(failures))[:3],
                    }), flush=True)
    failures = asyncio.run(pooled_rounds(args.base, args.rounds, args.size))
    ok &= not failures
    print(json.dumps({
        "client": "aiohttp-session",
        "requests": 2 * args.rounds,
        "answered": 2 * args.rounds - len(failures),
        "failures": failures[:3],
    }), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
