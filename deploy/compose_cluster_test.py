#!/usr/bin/env python3
"""End-to-end test of docker-compose.cluster.yml: six Redis nodes forming a
cluster, three tally replicas and HAProxy, driven through the load balancer.

It checks, in order:
  1. the cluster forms on start (the one-shot cluster-init exits 0 and every
     node says cluster_state:ok), and three healthy replicas all answer
     through the load balancer;
  2. several new polls, voted on through the load balancer, have their keys
     on more than one master (`redis-cli -c` in a node), and Redis counts
     equal the acknowledged votes;
  3. an SSE follower of a hot poll through the load balancer gets its votes;
  4. while votes flow, the master owning the hot poll is killed (`docker
     kill`): its replica is promoted, the other polls keep being acknowledged,
     and once the killed node is started again (it rejoins as a replica, which
     TALLY_REDIS_WAIT_REPLICAS=1 waits for) the hot poll's writes resume within
     a bound; no acknowledged vote is lost or counted twice, in the API, in
     Redis and for the follower.
It always ends with `down -v`. Run through deploy/compose-test.sh, after
deploy/compose_test.py (which builds tally:latest); --build builds it here.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import sys
import time
import uuid
from dataclasses import dataclass, field

import httpx

import compose_test as ct
from compose_test import Failure, Follower, check, eventually, log

PROJECT = os.environ.get("TALLY_COMPOSE_CLUSTER_PROJECT", "tallycomposecluster")
FILE = "docker-compose.cluster.yml"
NODES = [f"redis-{i}" for i in range(1, 7)]
POLLS = 6
REPLICAS = 3
FORM_BOUND = 90  # s: the cluster created and every node ok
RESUME_BOUND = 45  # s: hot-poll writes back after the killed node is started


def compose(*args: str, timeout: float = 300, capture: bool = False) -> str:
    return ct.compose(*args, timeout=timeout, capture=capture, project=PROJECT, file=FILE)


CONTAINERS: dict[str, str] = {}


def container(service: str) -> str:
    """A service's container id (asked once: `compose ps` takes ~1 s)."""
    if service not in CONTAINERS:
        ids = compose("ps", "-q", service, capture=True).split()
        if not ids:
            raise Failure(f"no container for {service}")
        CONTAINERS[service] = ids[0]
    return CONTAINERS[service]


def cli(node: str, *args: str) -> str:
    """redis-cli -c inside a node's container (follows MOVED to the owner)."""
    return ct.docker("exec", container(node), "redis-cli", "-c", *args, timeout=30)


IPS: dict[str, str] = {}


def node_ips() -> dict[str, str]:
    """Cluster-network address → compose service, for every node container;
    remembered, so a killed (address-less) node is still named."""
    found = IPS
    for node in NODES:
        ip = ct.docker(
            "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            container(node),
        ).strip()
        if ip:
            found[ip] = node
    return found


def masters(via: str) -> dict[str, list[tuple[int, int]]]:
    """Live masters (service name) → their slot ranges, from CLUSTER NODES."""
    ips = node_ips()
    out: dict[str, list[tuple[int, int]]] = {}
    for line in cli(via, "cluster", "nodes").splitlines():
        parts = line.split()
        if "master" not in parts[2] or "fail" in parts[2]:
            continue
        ranges = []
        for r in parts[8:]:
            if r.startswith("["):
                continue
            lo, _, hi = r.partition("-")
            ranges.append((int(lo), int(hi or lo)))
        if ranges:
            ip = parts[1].split("@")[0].rsplit(":", 1)[0]
            out[ips.get(ip, ip)] = ranges
    return out


def owner(poll: str, via: str) -> str:
    slot = int(cli(via, "cluster", "keyslot", votes_key(poll)).strip())
    for node, ranges in masters(via).items():
        if any(lo <= slot <= hi for lo, hi in ranges):
            return node
    raise Failure(f"no live master owns slot {slot} of {poll}")


def votes_key(poll: str) -> str:
    return f"tally:poll:{{{poll}}}:votes"


def redis_counts(poll: str, options: int, via: str) -> list[int]:
    out = cli(via, "hgetall", votes_key(poll)).split()
    pairs = dict(zip(out[0::2], out[1::2], strict=True))
    return [int(pairs.get(str(i), 0)) for i in range(options)]


def cluster_ok(via: str) -> bool:
    return "cluster_state:ok" in cli(via, "cluster", "info")


@dataclass
class Poll:
    """A poll this test made, and every vote acknowledged on it (when)."""

    id: str
    acked: list[int]
    ack_times: list[float] = field(default_factory=list)


async def create_polls(client: httpx.AsyncClient) -> list[Poll]:
    """POLLS polls, and a few more if the random ids all fell on one master
    (about 0.4 % of runs), so the spread check tests tally, not luck."""
    polls = []
    for i in range(POLLS + 6):
        if len(polls) >= POLLS and len({owner(p.id, "redis-2") for p in polls}) >= 2:
            break
        r = await client.post(
            "/api/polls",
            json={
                "question": f"cluster poll {i}?",
                "options": ["a", "b", "c"],
                "vote_limit": "unlimited",
            },
        )
        check(r.status_code == 201, f"poll {i} created through the load balancer ({r.status_code})")
        polls.append(Poll(r.json()["poll"]["id"], [0, 0, 0]))
    return polls


async def vote(client: httpx.AsyncClient, poll: Poll, give_up: float = 90) -> None:
    """One vote, retried with the same Idempotency-Key until acknowledged."""
    key = uuid.uuid4().hex
    option = random.randrange(len(poll.acked))
    deadline = time.monotonic() + give_up
    while True:
        try:
            r = await client.post(
                f"/api/polls/{poll.id}/votes",
                json={"option": option},
                headers={"Idempotency-Key": key},
            )
            if r.status_code == 200:
                poll.acked[option] += 1
                poll.ack_times.append(time.monotonic())
                return
            if r.status_code not in (502, 503, 504):
                raise Failure(f"vote on {poll.id} answered {r.status_code}: {r.text[:200]}")
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise Failure(f"a vote on {poll.id} was not acknowledged within {give_up:.0f} s")
        await asyncio.sleep(0.2)


async def voters(base: str, polls: list[Poll], stop: asyncio.Event, each: int | None) -> None:
    """One worker per poll, voting until `stop` is set (or `each` votes)."""

    async def worker(poll: Poll) -> None:
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            n = 0
            while not stop.is_set() and (each is None or n < each):
                await vote(client, poll)
                n += 1
                await asyncio.sleep(0.05)

    await asyncio.gather(*(worker(p) for p in polls))


async def api_counts(base: str, poll: Poll) -> list[int]:
    async with httpx.AsyncClient(timeout=5) as client:
        r = await client.get(f"{base}/api/polls/{poll.id}")
        r.raise_for_status()
        return [o["votes"] for o in r.json()["options"]]


async def stack_up(base: str) -> None:
    started = time.monotonic()
    compose("up", "-d", timeout=240)
    init = container("cluster-init")
    await eventually(
        "cluster-init to finish",
        lambda: ct.docker("inspect", "-f", "{{.State.Status}}", init).strip() == "exited",
        FORM_BOUND,
    )
    code = ct.docker("inspect", "-f", "{{.State.ExitCode}}", init).strip()
    check(code == "0", f"cluster-init exited {code}")
    await eventually("every node cluster_state:ok", lambda: all(map(cluster_ok, NODES)), 30)
    formed = time.monotonic() - started
    log(f"FIGURE cluster formed {formed:.1f}s after up")
    check(len(masters("redis-1")) == 3, "three masters share the slots")
    containers = await eventually(
        f"{REPLICAS} running app containers",
        lambda: (c := ct.app_containers(project=PROJECT, file=FILE)) and len(c) == REPLICAS and c,
        60,
    )
    await eventually(
        "healthy app containers",
        lambda: all(ct.health(c) == "healthy" for c in containers.values()),
        90,
    )
    seen = await eventually(
        "every replica answering through the load balancer",
        lambda: ct.all_replicas_answer(base),
        60,
    )
    check(seen == set(containers), f"the load balancer reaches all {REPLICAS} replicas")


async def scenario(base: str) -> None:
    await stack_up(base)
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        polls = await create_polls(client)
    stop = asyncio.Event()
    await voters(base, polls, stop, each=10)
    owners = {p.id: owner(p.id, "redis-2") for p in polls}
    check(
        len(set(owners.values())) >= 2,
        f"the polls' keys sit on {len(set(owners.values()))} masters: {owners}",
    )
    for p in polls:
        got = redis_counts(p.id, 3, "redis-2")
        check(got == p.acked, f"redis-cli -c on {p.id} ({owners[p.id]}): {got} == acked")

    hot = polls[0]
    follower = Follower("sse", 0)
    follow = asyncio.create_task(ct.follow_sse(follower, base, hot.id))
    try:
        await eventually("the SSE follower's first results", lambda: follower.latest, 20)
        await kill_phase(base, polls, hot, owners[hot.id], stop)
        final = await api_counts(base, hot)
        await eventually(
            "the SSE follower on the hot poll's final results",
            lambda: [o["votes"] for o in follower.latest["options"]] == final,
            30,
            describe=follower.state,
        )
        check(not follower.errors, f"the follower saw no version go back ({follower.state()})")
    finally:
        follow.cancel()
        await asyncio.gather(follow, return_exceptions=True)

    via = next(n for n in NODES if n != owners[hot.id])
    total = counted = 0
    for p in polls:
        api, red = await api_counts(base, p), redis_counts(p.id, 3, via)
        total, counted = total + sum(p.acked), counted + sum(red)
        check(api == p.acked and red == p.acked, f"{p.id}: API {api} and Redis {red} == acked")
    log(f"FIGURE votes acknowledged {total}, counted {counted}")


async def kill_phase(base: str, polls: list[Poll], hot: Poll, victim: str, stop: asyncio.Event):
    """Kill the hot poll's master mid-stream; the rest keep voting; start it again."""
    others = [p for p in polls if owner(p.id, "redis-2" if victim != "redis-2" else "redis-3")
              != victim]
    flowing = asyncio.create_task(voters(base, polls, stop, each=None))
    try:
        await eventually("votes flowing", lambda: len(hot.ack_times) >= 20, 20)
        log(f"docker kill {victim}, master of hot poll {hot.id}")
        killed = time.monotonic()
        ct.docker("kill", container(victim))
        via = next(n for n in NODES if n != victim)
        await eventually(
            "a replica promoted in the killed master's place",
            lambda: len(masters(via)) == 3 and victim not in masters(via) and cluster_ok(via),
            30,
        )
        log(f"FIGURE failover (replica promoted) {time.monotonic() - killed:.1f}s after the kill")
        if others:
            before = {p.id: len(p.ack_times) for p in others}
            await eventually(
                "the other shards' polls acknowledged after the kill",
                lambda: all(len(p.ack_times) > before[p.id] + 5 for p in others),
                30,
            )
            log(f"ok: polls on other masters kept voting ({len(others)} polls)")
        restarted = time.monotonic()
        compose("start", victim, timeout=60)
        await eventually(
            "hot-poll writes resuming",
            lambda: hot.ack_times and hot.ack_times[-1] > restarted,
            RESUME_BOUND,
        )
        # The outage is the longest pause between acknowledgements from the
        # kill on (a vote in flight may still be acknowledged just after it).
        after = [killed] + sorted(t for t in hot.ack_times if t > killed)
        gap_start, resumed = max(zip(after, after[1:]), key=lambda g: g[1] - g[0])
        log(
            f"FIGURE hot poll: no vote acknowledged for {resumed - gap_start:.1f}s; writes resumed "
            f"{resumed - killed:.1f}s after the kill, {resumed - restarted:.1f}s after the killed "
            f"node was started"
        )
        await eventually("the killed node back as a replica", lambda: all(map(cluster_ok, NODES)), 30)
        check(victim not in masters(via), f"{victim} rejoined as a replica")
    finally:
        stop.set()
        await flowing


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keep", action="store_true", help="leave the stack up at the end")
    parser.add_argument("--build", action="store_true", help="build the tally image first")
    args = parser.parse_args()

    port = int(os.environ.get("TALLY_TEST_CLUSTER_PORT") or ct.free_port())
    os.environ["TALLY_PORT"] = f"127.0.0.1:{port}"
    base = f"http://127.0.0.1:{port}"
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    log(f"cluster: project {PROJECT}, load balancer on {base}")

    return ct.run_stack("compose-cluster-test", compose, scenario, base, build=args.build,
                        keep=args.keep, timeout=420)


if __name__ == "__main__":
    sys.exit(main())
