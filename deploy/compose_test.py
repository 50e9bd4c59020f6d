#!/usr/bin/env python3
"""End-to-end test of docker-compose.yml: three tally replicas, Redis and
HAProxy, driven only through the load balancer's published port.

It checks, in order:
  1. the stack comes up, with the `monitoring` profile: three healthy
     replicas, all three answering through the load balancer, and Prometheus
     (TALLY_PROMETHEUS_PORT) scraping each of them, every target up;
  2. followers on all four transports (6 WebSocket, 6 SSE, 2 long poll,
     2 short poll) get the demo poll, spread over several replicas;
  3. votes over HTTP (with Idempotency-Key, retried on failure with the same
     key) land on several replicas, and while they go on one replica is
     stopped (`docker stop`): its WebSocket and SSE followers reconnect through
     the load balancer, HAProxy takes the replica out, no acknowledged vote is
     lost or counted twice;
  4. every follower ends on the same final results, which equal the initial
     tallies plus the acknowledged votes, and so does Redis
     (`redis-cli HGETALL 'tally:poll:{lpl}:votes'`);
  5. with Redis paused, /readyz fails and HAProxy takes every replica out;
     with Redis back, they return and the followers, still connected, get the
     votes that follow;
  6. after `docker compose down` (volume kept) and `up` again, the tallies
     are still there.
It always ends with `docker compose down -v`.

Run it through deploy/compose-test.sh, which provides the images and a venv
with httpx and websockets. Options: --keep (leave the stack up at the end),
--no-build (use the tally:latest image as it is).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import websockets
from websockets.asyncio.client import connect as ws_connect

ROOT = Path(__file__).resolve().parent.parent
PROJECT = os.environ.get("TALLY_COMPOSE_PROJECT", "tallycomposetest")
POLL = "lpl"
REPLICAS = 3
STARTED = time.monotonic()
# Prometheus of the `monitoring` profile, published on loopback (set in main).
PROMETHEUS = ""


class Failure(Exception):
    """A check that did not hold."""


def log(msg: str) -> None:
    print(f"[{time.monotonic() - STARTED:6.1f}s] {msg}", flush=True)


def check(cond: bool, msg: str) -> None:
    if not cond:
        raise Failure(msg)
    log(f"ok: {msg}")


# ---------------------------------------------------------------- compose


def compose_command() -> list[str]:
    """`docker compose` (v2) when present, else the v1 `docker-compose`."""
    v2 = subprocess.run(["docker", "compose", "version"], capture_output=True)
    return ["docker", "compose"] if v2.returncode == 0 else ["docker-compose"]


COMPOSE = compose_command()


def compose(
    *args: str,
    timeout: float = 300,
    capture: bool = False,
    project: str = PROJECT,
    file: str = "docker-compose.yml",
) -> str:
    # The main file runs with its `monitoring` profile (Prometheus), in `up`
    # and `down` alike; compose v1 has profiles since 1.28.
    profile = ["--profile", "monitoring"] if file == "docker-compose.yml" else []
    cmd = [*COMPOSE, "-p", project, "-f", str(ROOT / file), *profile, *args]
    log("$ compose " + " ".join(args))
    done = subprocess.run(
        cmd,
        cwd=ROOT,
        text=True,
        timeout=timeout,
        stdout=subprocess.PIPE if capture else None,
    )
    if done.returncode != 0:
        raise Failure(f"compose {' '.join(args)} exited {done.returncode}")
    return done.stdout or ""


def docker(*args: str, timeout: float = 60) -> str:
    done = subprocess.run(["docker", *args], text=True, capture_output=True, timeout=timeout)
    if done.returncode != 0:
        raise Failure(f"docker {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def app_containers(**where: str) -> dict[str, str]:
    """Running app containers: instance id (the hostname) → container id.
    `where`: compose()'s project and file, for the cluster scenario."""
    ids = compose("ps", "-q", "app", capture=True, **where).split()
    found = {}
    for cid in ids:
        host, status = docker(
            "inspect", "-f", "{{.Config.Hostname}} {{.State.Status}}", cid
        ).split()
        if status == "running":
            found[host] = cid
    return found


def container_ip(cid: str) -> str:
    return docker(
        "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", cid
    ).strip()


async def prometheus_targets_up(prometheus: str, containers: dict[str, str]) -> bool:
    """Whether Prometheus's active `tally` targets are exactly the replicas,
    each last scraped up."""
    async with httpx.AsyncClient(timeout=3) as client:
        r = await client.get(f"{prometheus}/api/v1/targets", params={"state": "active"})
        r.raise_for_status()
    targets = [t for t in r.json()["data"]["activeTargets"] if t["labels"].get("job") == "tally"]
    health = {t["labels"]["instance"].rsplit(":", 1)[0]: t["health"] for t in targets}
    replicas = {container_ip(cid) for cid in containers.values()}
    log(f"prometheus targets: {health}")
    return set(health) == replicas and all(h == "up" for h in health.values())


def health(cid: str) -> str:
    return docker("inspect", "-f", "{{.State.Health.Status}}", cid).strip()


def redis_votes() -> list[int]:
    out = compose(
        "exec", "-T", "redis", "redis-cli", "HGETALL", f"tally:poll:{{{POLL}}}:votes", capture=True
    ).split()
    pairs = dict(zip(out[0::2], out[1::2], strict=True))
    return [int(pairs[k]) for k in sorted(pairs, key=int)]


def lb_up_servers(via: str) -> int:
    """Replica slots HAProxy has UP, read from its stats from inside the network."""
    csv = docker("exec", via, "busybox", "wget", "-q", "-O-", "http://lb:8404/stats;csv")
    rows = [line.split(",") for line in csv.splitlines() if line.startswith("app,app")]
    return sum(1 for r in rows if r[17] == "UP")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def eventually(what: str, probe, timeout: float, interval: float = 0.5, describe=None):
    """Polls `probe` (sync or async) until it returns a truthy value; on
    time-out, `describe()` (if given) tells what the state was."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = probe()
            if asyncio.iscoroutine(last):
                last = await last
            if last:
                return last
        except (httpx.HTTPError, Failure, OSError) as e:
            last = e
        await asyncio.sleep(interval)
    state = describe() if describe else repr(last)
    raise Failure(f"timed out after {timeout:.0f}s waiting for {what}: {state}")


# ---------------------------------------------------------------- followers


@dataclass
class Follower:
    """One client following the poll; what it saw, and where from."""

    transport: str
    index: int
    latest: dict | None = None
    instances: list[str] = field(default_factory=list)  # per (re)connection
    seen: set[str] = field(default_factory=set)  # every instance that answered
    drops: int = 0
    close_codes: list[int | None] = field(default_factory=list)  # WebSocket
    errors: list[str] = field(default_factory=list)
    last_drop: str = ""
    _conn_version: int = -1

    @property
    def name(self) -> str:
        return f"{self.transport}#{self.index}"

    def connected(self, instance: str | None) -> None:
        self.instances.append(instance or "?")
        if instance:
            self.seen.add(instance)
        self._conn_version = -1

    def answered_by(self, instance: str | None) -> None:
        self.seen.add(instance or "?")

    def see(self, results: dict, streaming: bool) -> None:
        v = results["version"]
        last = self.latest["version"] if self.latest else -1
        if v < last:
            self.errors.append(f"version went back from {last} to {v}")
        if streaming and v <= self._conn_version:
            self.errors.append(f"version {v} after {self._conn_version} on one connection")
        self._conn_version = v
        if v >= last:
            self.latest = results

    def dropped(self, why: object) -> None:
        self.drops += 1
        self.last_drop = repr(why)[:200]

    def state(self) -> str:
        version = self.latest["version"] if self.latest else None
        return (
            f"{self.name}: v{version} via {self.instances}, {self.drops} drop(s)"
            f" (last {self.last_drop}), errors {self.errors}"
        )


def describe(followers: list[Follower]) -> str:
    return "\n  " + "\n  ".join(f.state() for f in followers)


def results_of(msg: dict) -> dict:
    return {k: msg[k] for k in ("version", "total", "options", "closed")}


async def follow_ws(f: Follower, base: str) -> None:
    url = base.replace("http://", "ws://") + f"/api/polls/{POLL}/ws"
    while True:
        try:
            async with ws_connect(url, open_timeout=5, close_timeout=2) as ws:
                f.connected(ws.response.headers.get("x-tally-instance"))
                async for raw in ws:
                    msg = json.loads(raw)
                    if msg.get("type") == "results":
                        f.see(results_of(msg), streaming=True)
                f.close_codes.append(ws.close_code)
        except (TimeoutError, OSError, websockets.exceptions.WebSocketException) as e:
            f.dropped(e)
        else:
            f.dropped("closed")
        await asyncio.sleep(0.3)


async def follow_sse(f: Follower, base: str, poll: str = POLL) -> None:
    url = f"{base}/api/polls/{poll}/events"
    last_id: str | None = None
    timeout = httpx.Timeout(5, read=40)
    while True:
        headers = {"Accept": "text/event-stream"}
        if last_id is not None:
            headers["Last-Event-ID"] = last_id
        try:
            async with (
                httpx.AsyncClient(timeout=timeout) as client,
                client.stream("GET", url, headers=headers) as r,
            ):
                if r.status_code != 200:
                    raise httpx.HTTPStatusError("status", request=r.request, response=r)
                f.connected(r.headers.get("x-tally-instance"))
                event, data, eid = "message", [], None
                async for line in r.aiter_lines():
                    if line == "":
                        if event == "results" and data:
                            f.see(results_of(json.loads("\n".join(data))), streaming=True)
                            last_id = eid or last_id
                        event, data, eid = "message", [], None
                    elif line.startswith(":"):
                        continue
                    else:
                        key, _, value = line.partition(":")
                        value = value[1:] if value.startswith(" ") else value
                        if key == "event":
                            event = value
                        elif key == "data":
                            data.append(value)
                        elif key == "id":
                            eid = value
        except httpx.HTTPError as e:
            f.dropped(e)
        else:
            f.dropped("ended")
        await asyncio.sleep(0.3)


async def follow_longpoll(f: Follower, base: str) -> None:
    url = f"{base}/api/polls/{POLL}/changes"
    async with httpx.AsyncClient(timeout=httpx.Timeout(5, read=20)) as client:
        f.connected(None)
        since = None
        while True:
            params = {"timeout": "10"} | ({"since": str(since)} if since is not None else {})
            try:
                r = await client.get(url, params=params)
                f.answered_by(r.headers.get("x-tally-instance"))
                if r.status_code == 200:
                    res = r.json()
                    f.see(results_of(res), streaming=False)
                    since = res["version"]
                elif r.status_code != 204:
                    f.dropped(r.status_code)
                    await asyncio.sleep(0.3)
            except httpx.HTTPError as e:
                f.dropped(e)
                await asyncio.sleep(0.3)


async def follow_shortpoll(f: Follower, base: str) -> None:
    url = f"{base}/api/polls/{POLL}"
    async with httpx.AsyncClient(timeout=5) as client:
        f.connected(None)
        etag = None
        while True:
            try:
                r = await client.get(url, headers={"If-None-Match": etag} if etag else {})
                f.answered_by(r.headers.get("x-tally-instance"))
                if r.status_code == 200:
                    etag = r.headers.get("etag")
                    f.see(results_of(r.json()), streaming=False)
                elif r.status_code != 304:
                    f.dropped(r.status_code)
            except httpx.HTTPError as e:
                f.dropped(e)
            await asyncio.sleep(0.4)


FOLLOWERS = {
    "ws": (6, follow_ws),
    "sse": (6, follow_sse),
    "longpoll": (2, follow_longpoll),
    "shortpoll": (2, follow_shortpoll),
}


# ---------------------------------------------------------------- voters


@dataclass
class Ledger:
    """Every acknowledged vote, and who acknowledged it."""

    acked: list[int]
    instances: set[str] = field(default_factory=set)
    retries: int = 0

    def expected(self, initial: dict) -> list[int]:
        """The tallies there must be: the initial ones plus every acknowledged vote."""
        return [o["votes"] + n for o, n in zip(initial["options"], self.acked, strict=True)]


async def vote(client: httpx.AsyncClient, ledger: Ledger, option: int) -> None:
    """One vote, retried with the same Idempotency-Key until acknowledged."""
    key = uuid.uuid4().hex
    deadline = time.monotonic() + 30
    while True:
        try:
            r = await client.post(
                f"/api/polls/{POLL}/votes",
                json={"option": option},
                headers={"Idempotency-Key": key},
            )
            if r.status_code == 200:
                ledger.acked[option] += 1
                ledger.instances.add(r.headers.get("x-tally-instance", "?"))
                return
            if r.status_code not in (502, 503, 504):
                raise Failure(f"vote answered {r.status_code}: {r.text[:200]}")
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise Failure("a vote was not acknowledged within 30 s")
        ledger.retries += 1
        await asyncio.sleep(0.2)


async def vote_batch(base: str, ledger: Ledger, workers: int, each: int, pause: float) -> None:
    async def worker() -> None:
        async with httpx.AsyncClient(base_url=base, timeout=5) as client:
            for _ in range(each):
                await vote(client, ledger, random.randrange(len(ledger.acked)))
                await asyncio.sleep(pause)

    await asyncio.gather(*(worker() for _ in range(workers)))


# ---------------------------------------------------------------- scenario


async def current(base: str) -> dict:
    async with httpx.AsyncClient(timeout=5) as client:
        r = await client.get(f"{base}/api/polls/{POLL}")
        r.raise_for_status()
        return r.json()


async def all_replicas_answer(base: str) -> set[str]:
    """Every replica's instance id seen answering /readyz through the load balancer."""
    seen: set[str] = set()
    async with httpx.AsyncClient(timeout=3) as client:
        for _ in range(REPLICAS * 4):
            r = await client.get(f"{base}/readyz")
            if r.status_code == 200:
                seen.add(r.headers.get("x-tally-instance", "?"))
    return seen if len(seen) >= REPLICAS else set()


async def stack_up(base: str) -> dict[str, str]:
    compose("up", "-d", timeout=180)
    containers = await eventually(
        f"{REPLICAS} running app containers",
        lambda: (c := app_containers()) and len(c) == REPLICAS and c,
        60,
    )
    await eventually(
        "healthy app containers (Docker HEALTHCHECK)",
        lambda: all(health(c) == "healthy" for c in containers.values()),
        90,
    )
    seen = await eventually(
        "every replica answering through the load balancer", lambda: all_replicas_answer(base), 60
    )
    check(
        seen == set(containers),
        f"the load balancer reaches all {REPLICAS} replicas: {sorted(seen)}",
    )
    await eventually(
        f"Prometheus scraping all {REPLICAS} replicas, every target up",
        lambda: prometheus_targets_up(PROMETHEUS, containers),
        90,
        interval=2,
    )
    log(f"Prometheus ({PROMETHEUS}) has all {REPLICAS} replicas up")
    return containers


async def scenario(base: str) -> None:
    containers = await stack_up(base)
    initial = await current(base)
    log(f"initial: version {initial['version']}, votes {[o['votes'] for o in initial['options']]}")

    followers = [Follower(t, i) for t, (n, _) in FOLLOWERS.items() for i in range(n)]
    tasks = [asyncio.create_task(FOLLOWERS[f.transport][1](f, base)) for f in followers]
    try:
        final = await followers_phase(base, containers, initial, followers)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    compose("down", timeout=120)
    log("stack down (volume kept); up again")
    await stack_up(base)
    after = await current(base)
    votes = [o["votes"] for o in after["options"]]
    check(
        after["version"] == final["version"] and votes == final["votes"],
        f"after down/up the tallies are still {votes} at version {after['version']}",
    )
    check(redis_votes() == votes, "and Redis still holds them")


async def followers_phase(
    base: str, containers: dict[str, str], initial: dict, followers: list[Follower]
) -> dict:
    """Follow, vote, stop a replica mid-stream, and check everyone converged."""
    await eventually(
        "every follower's first results",
        lambda: all(f.latest for f in followers),
        20,
        describe=lambda: describe(followers),
    )
    streams = [f for f in followers if f.transport in ("ws", "sse")]
    spread = {f.instances[-1] for f in streams}
    check(len(spread) >= 2, f"WebSocket and SSE followers spread over {len(spread)} replicas")

    ledger = Ledger(acked=[0] * len(initial["options"]))
    await vote_batch(base, ledger, workers=4, each=30, pause=0.02)
    log(f"{sum(ledger.acked)} votes acknowledged by {sorted(ledger.instances)}")

    victim = pick_victim(streams, containers)
    on_victim = [f for f in streams if f.instances[-1] == victim]
    log(f"stopping replica {victim} mid-stream; it serves {[f.name for f in on_victim]}")
    voting = asyncio.create_task(vote_batch(base, ledger, workers=4, each=40, pause=0.05))
    await asyncio.sleep(1.0)
    started = time.monotonic()
    await asyncio.to_thread(docker, "stop", containers[victim])
    log(f"docker stop took {time.monotonic() - started:.1f}s")
    await voting
    await vote_batch(base, ledger, workers=4, each=20, pause=0.02)
    log(f"{sum(ledger.acked)} votes acknowledged in all, {ledger.retries} retries")

    survivor = next(c for h, c in containers.items() if h != victim)
    await eventually(
        "HAProxy taking the stopped replica out",
        lambda: lb_up_servers(survivor) == REPLICAS - 1,
        20,
    )
    log(f"HAProxy has {REPLICAS - 1} replicas UP")
    check(
        len(ledger.instances) >= 2,
        f"votes were answered by {len(ledger.instances)} distinct X-Tally-Instance values",
    )

    expected = ledger.expected(initial)
    final = await current(base)
    got = [o["votes"] for o in final["options"]]
    check(got == expected, f"no acknowledged vote lost or doubled: {got} == initial + acked")
    check(
        final["version"] == initial["version"] + sum(ledger.acked),
        f"version {final['version']} = {initial['version']} + {sum(ledger.acked)} votes",
    )

    await eventually(
        "every follower on the final results",
        lambda: all(f.latest and f.latest["version"] == final["version"] for f in followers),
        30,
        describe=lambda: describe(followers),
    )
    for f in followers:
        check(
            not f.errors and [o["votes"] for o in f.latest["options"]] == expected,
            f"{f.name} ends on {expected} (v{final['version']}), "
            f"{len(f.instances)} connection(s), {len(f.seen)} replica(s)",
        )
    for f in on_victim:
        check(
            len(f.instances) >= 2 and f.instances[-1] != victim,
            f"{f.name} reconnected from {victim} to {f.instances[-1]}",
        )
        if f.transport == "ws":
            check(f.close_codes[:1] == [1001], f"{f.name} was closed with 1001 (going away)")
    check(redis_votes() == expected, f"redis-cli HGETALL agrees: {expected}")
    return await redis_outage(base, survivor, followers, ledger, initial)


async def redis_outage(
    base: str, via: str, followers: list[Follower], ledger: Ledger, initial: dict
) -> dict:
    """Redis paused: /readyz fails, HAProxy takes every replica out; Redis back:
    they return, and followers that stayed connected get the next votes."""
    compose("pause", "redis")
    try:
        await eventually(
            "HAProxy taking out the replicas that lost Redis", lambda: lb_up_servers(via) == 0, 30
        )
        log("Redis paused: HAProxy has no replica UP")
    finally:
        compose("unpause", "redis")
    await eventually(
        "the replicas back in HAProxy after Redis returned",
        lambda: lb_up_servers(via) == REPLICAS - 1,
        30,
    )
    log(f"Redis back: HAProxy has {REPLICAS - 1} replicas UP")
    await vote_batch(base, ledger, workers=2, each=10, pause=0.02)
    expected = ledger.expected(initial)
    final = await current(base)
    got = [o["votes"] for o in final["options"]]
    check(got == expected, f"votes after the outage counted: {got}")
    await eventually(
        "every follower on the results after the outage",
        lambda: all(f.latest["version"] == final["version"] for f in followers),
        30,
        describe=lambda: describe(followers),
    )
    check(not any(f.errors for f in followers), "no follower saw a version go back")
    check(redis_votes() == expected, f"redis-cli HGETALL agrees: {expected}")
    return {"version": final["version"], "votes": got}


def pick_victim(streams: list[Follower], containers: dict[str, str]) -> str:
    """The replica with the most WebSocket + SSE followers, both kinds if any has."""

    def score(host: str) -> tuple[int, int]:
        mine = [f for f in streams if f.instances[-1] == host]
        kinds = {f.transport for f in mine}
        return len(kinds), len(mine)

    victim = max(containers, key=score)
    check(score(victim)[0] == 2, f"replica {victim} has both WebSocket and SSE followers")
    return victim


def run_stack(name: str, compose_fn, scenario, base: str, *, build: bool, keep: bool,
              timeout: float) -> int:
    """Runs `scenario(base)` on a fresh stack (`compose_fn` names the project
    and file), bounded by `timeout` seconds; always ends with `down -v`
    unless `keep`. Prints `NAME: 1 passed, 0 failed` (or the failure) and
    answers the exit status."""
    ok = False
    try:
        compose_fn("down", "-v", "--remove-orphans", timeout=120)
        if build:
            started = time.monotonic()
            compose_fn("build", "app", timeout=3600)
            log(f"image built in {time.monotonic() - started:.0f}s")
        asyncio.run(asyncio.wait_for(scenario(base), timeout=timeout))
        ok = True
    except Exception as e:  # any failure ends in the summary line and the logs
        if not isinstance(e, Failure | TimeoutError | subprocess.TimeoutExpired):
            traceback.print_exc()
        log(f"FAILED: {e}")
        with contextlib.suppress(Exception):  # the logs are a courtesy
            compose_fn("logs", "--tail", "40", timeout=60)
    finally:
        if not keep:
            compose_fn("down", "-v", "--remove-orphans", timeout=120)
    print(f"{name}: 1 passed, 0 failed" if ok else f"{name}: 0 passed, 1 failed")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keep", action="store_true", help="leave the stack up at the end")
    parser.add_argument("--no-build", action="store_true", help="do not build the tally image")
    args = parser.parse_args()

    port = int(os.environ.get("TALLY_TEST_PORT") or free_port())
    os.environ["TALLY_PORT"] = f"127.0.0.1:{port}"
    base = f"http://127.0.0.1:{port}"
    global PROMETHEUS
    prometheus_port = free_port()
    os.environ["TALLY_PROMETHEUS_PORT"] = f"127.0.0.1:{prometheus_port}"
    PROMETHEUS = f"http://127.0.0.1:{prometheus_port}"
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    log(f"compose: {' '.join(COMPOSE)}, project {PROJECT}, load balancer on {base}")

    return run_stack("compose-test", compose, scenario, base, build=not args.no_build,
                     keep=args.keep, timeout=600)


if __name__ == "__main__":
    sys.exit(main())
