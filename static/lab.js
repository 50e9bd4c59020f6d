// tally's transport lab: follows one poll over WebSocket, SSE, long polling
// and short polling at the same time, casts votes at a chosen rate, and
// measures each follower from what this browser really receives — updates,
// vote-to-arrival latency, requests, bytes. Loaded from /static like app.js
// (the CSP allows no inline script); page data comes from data- attributes,
// and all text is set with textContent.
"use strict";

(function () {
  const root = document.getElementById("lab");
  if (!root) return;
  document.documentElement.classList.remove("no-js");

  const id = root.dataset.poll;
  const base = "/api/polls/" + encodeURIComponent(id);
  const instance = root.dataset.instance || "";
  const canVote = root.dataset.canVote === "true";
  const initial = JSON.parse(root.dataset.results);
  const optionCount = initial.options.length;
  const NAMES = ["ws", "sse", "longpoll", "poll"];
  const POLL_EVERY_MS = 2000; // as on the poll page (app.js)
  const LONGPOLL_SECS = 25;
  const STATS_EVERY_MS = 1000;
  const MAX_IN_FLIGHT = 100; // votes awaiting their answer
  const DRAIN_MS = 4000; // after stop: how long followers may catch up
  const HISTORY = 2000; // arrivals remembered per follower, for late answers
  const encoder = new TextEncoder();
  const LANG = document.documentElement.lang || "en";
  const numbers = new Intl.NumberFormat(LANG === "en" ? "en-US" : LANG);
  let PHRASES = {};
  try { PHRASES = JSON.parse(document.body.dataset.phrases) || {}; } catch (_) { /* English below */ }
  // The page's phrase `key` ({name} filled in), else the English given.
  function t(key, english, values) {
    let text = PHRASES[key] || english;
    Object.keys(values || {}).forEach(function (name) { text = text.split("{" + name + "}").join(String(values[name])); });
    return text;
  }

  const form = root.querySelector("[data-lab-form]");
  const rateInput = root.querySelector("[data-lab-rate]");
  const startButton = root.querySelector("[data-lab-start]");
  const stopButton = root.querySelector("[data-lab-stop]");
  const statusLine = root.querySelector("[data-lab-status]");
  const elapsedEl = root.querySelector("[data-lab-elapsed]");
  const serverVotesEl = root.querySelector("[data-server-votes]");
  const voteEls = {
    sent: root.querySelector('[data-lab-votes="sent"]'),
    accepted: root.querySelector('[data-lab-votes="accepted"]'),
    failed: root.querySelector('[data-lab-votes="failed"]'),
  };
  const chart = document.querySelector("[data-lab-chart]");

  let run = null; // the current (or last) run; null before the first start

  // ---- Byte counting: what each transport puts on the wire, as far as a
  // page can see it (the page explains each estimate). ----

  function utf8(text) {
    return encoder.encode(text).length;
  }

  // An HTTP/1.1 response as it arrived: status line, the headers the
  // browser exposes, the blank line, the body.
  function httpBytes(res, body) {
    let n = utf8("HTTP/1.1 " + res.status + " " + res.statusText + "\r\n") + 2;
    res.headers.forEach(function (value, name) { n += utf8(name + ": " + value + "\r\n"); });
    return n + utf8(body);
  }

  // The headers tally sends with a response the page cannot read them from
  // (an EventSource stream, a WebSocket's 101): an estimate, sized with
  // this page's instance name and a date of the usual length.
  function headerBlock(status, headers) {
    const all = headers.concat([
      "x-tally-instance: " + instance,
      "date: Thu, 01 Jan 2026 00:00:00 GMT",
    ]);
    return utf8(status + "\r\n" + all.join("\r\n") + "\r\n\r\n");
  }
  const SSE_HEADERS = headerBlock("HTTP/1.1 200 OK", [
    "content-type: text/event-stream",
    "cache-control: no-cache",
    "transfer-encoding: chunked",
  ]);
  const WS_HANDSHAKE = headerBlock("HTTP/1.1 101 Switching Protocols", [
    "connection: upgrade",
    "upgrade: websocket",
    "sec-websocket-accept: 0123456789012345678901234567",
  ]);

  // One HTTP/1.1 chunk: size in hex, CRLF, the data, CRLF.
  function chunked(n) {
    return n.toString(16).length + 2 + n + 2;
  }

  // The `retry: 2000` event each SSE stream opens with.
  const SSE_RETRY = chunked(utf8("retry: 2000\n\n"));

  // A `results` event exactly as tally writes it.
  function sseEventBytes(event) {
    const text = "event: " + event.type + "\nid: " + event.lastEventId + "\ndata: " + event.data + "\n\n";
    return chunked(utf8(text));
  }

  // A server-to-client frame: 2 header bytes, 2 or 8 more for long payloads.
  function wsFrameBytes(payload) {
    return payload + (payload < 126 ? 2 : payload < 65536 ? 4 : 10);
  }

  // ---- Measuring ----

  function newMeter(name) {
    const panel = document.querySelector('[data-transport="' + name + '"]');
    return {
      name: name,
      updates: 0,
      requests: 0,
      bytes: 0,
      reconnects: 0,
      seen: -1,
      arrivals: [], // {version, at}: the first arrival of each newer version
      samples: [], // {at, ms}: one per vote the lab cast
      early: 0, // arrivals that beat the vote's own answer
      state: "idle",
      note: "",
      panel: panel,
      el: {
        conn: panel.querySelector("[data-conn]"),
        note: panel.querySelector("[data-note]"),
        server: panel.querySelector("[data-server]"),
        updates: panel.querySelector('[data-metric="updates"]'),
        requests: panel.querySelector('[data-metric="requests"]'),
        p50: panel.querySelector('[data-metric="p50"]'),
        p99: panel.querySelector('[data-metric="p99"]'),
        bytes: panel.querySelector('[data-metric="bytes"]'),
        perUpdate: panel.querySelector('[data-metric="per-update"]'),
      },
    };
  }

  // Results arrived over a follower: count them and settle every vote of
  // the lab's that this version covers.
  function arrived(r, m, version) {
    if (r !== run) return;
    m.updates++;
    if (typeof version === "number" && version > m.seen) {
      const at = performance.now();
      m.seen = version;
      m.arrivals.push({ version: version, at: at });
      if (m.arrivals.length > HISTORY) m.arrivals.splice(0, m.arrivals.length - HISTORY);
      r.pending = r.pending.filter(function (vote) {
        if (!vote.waiting.has(m.name) || vote.version > version) return true;
        vote.waiting.delete(m.name);
        sample(r, m, vote, at);
        return vote.waiting.size > 0;
      });
    }
    changed(r);
  }

  function sample(r, m, vote, at) {
    let ms = at - vote.answeredAt;
    if (ms < 0) {
      ms = 0;
      m.early++;
    }
    m.samples.push({ at: vote.answeredAt - r.startedAt, ms: ms });
  }

  // A vote the lab cast was answered 200 at `answeredAt` with `version`:
  // for each follower, find the first arrival at least that new.
  function voteAnswered(r, version, answeredAt) {
    r.lastAccepted = Math.max(r.lastAccepted, version);
    const vote = { version: version, answeredAt: answeredAt, waiting: new Set() };
    r.meters.forEach(function (m) {
      const first = m.arrivals.find(function (a) { return a.version >= version; });
      if (first) sample(r, m, vote, first.at);
      else vote.waiting.add(m.name);
    });
    if (vote.waiting.size > 0) r.pending.push(vote);
  }

  function percentile(samples, p) {
    if (samples.length === 0) return null;
    const sorted = samples.map(function (s) { return s.ms; }).sort(function (a, b) { return a - b; });
    const rank = Math.ceil((p / 100) * sorted.length);
    return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
  }

  // ---- Rendering: at most once per animation frame. ----

  function changed(r) {
    if (r.frame) return;
    r.frame = requestAnimationFrame(function () {
      r.frame = 0;
      render(r);
    });
  }

  function msText(ms) {
    if (ms === null) return "—";
    if (ms >= 1000) return (ms / 1000).toFixed(2) + " s";
    return (ms < 10 ? ms.toFixed(1) : Math.round(ms).toString()) + " ms";
  }

  function bytesText(n) {
    if (n < 1000) return n + " B";
    if (n < 1e6) return (n / 1000).toFixed(1) + " kB";
    return (n / 1e6).toFixed(2) + " MB";
  }

  function setMetric(el, value, text) {
    el.dataset.value = value === null ? "" : String(value);
    el.textContent = text;
  }

  function render(r) {
    r.meters.forEach(function (m) {
      const p50 = percentile(m.samples, 50);
      const p99 = percentile(m.samples, 99);
      setMetric(m.el.updates, m.updates, numbers.format(m.updates));
      setMetric(m.el.requests, m.requests, numbers.format(m.requests));
      setMetric(m.el.p50, p50, msText(p50));
      setMetric(m.el.p99, p99, msText(p99));
      setMetric(m.el.bytes, m.bytes, bytesText(m.bytes));
      const per = m.updates > 0 ? m.requests / m.updates : null;
      setMetric(m.el.perUpdate, per, per === null ? "—"
        : per.toFixed(per < 0.1 ? 3 : 2) + " req · " + bytesText(Math.round(m.bytes / m.updates)));
      m.el.conn.dataset.state = m.state;
      m.el.conn.textContent = m.stateText || m.state;
      const notes = [];
      if (m.reconnects > 0) notes.push("Reconnected " + m.reconnects + (m.reconnects === 1 ? " time." : " times."));
      if (m.early > 0) notes.push(m.early + " of " + m.samples.length + " arrived before the vote's own answer (counted as 0 ms).");
      const missed = r.state === "stopped" ? r.pending.filter(function (v) { return v.waiting.has(m.name); }).length : 0;
      if (missed > 0) notes.push(missed + " of the lab's votes never arrived before it stopped.");
      if (m.note) notes.push(m.note);
      m.el.note.textContent = notes.join(" ");
      m.el.note.hidden = notes.length === 0;
    });
    voteEls.sent.textContent = numbers.format(r.votes.sent);
    voteEls.accepted.textContent = numbers.format(r.votes.accepted);
    voteEls.failed.textContent = numbers.format(r.votes.failed);
    const end = r.stoppedAt || performance.now();
    elapsedEl.textContent = ((end - r.startedAt) / 1000).toFixed(1) + " s";
    renderServer(r);
    drawChart();
  }

  function setState(r, m, state, text) {
    if (r !== run) return;
    m.state = state;
    m.stateText = text || state;
    changed(r);
  }

  // ---- Followers: one of each, instrumented; each returns its close(). ----

  function backoff(attempt) {
    return 250 + Math.random() * Math.min(5000, 500 * Math.pow(2, attempt));
  }

  function followWs(r, m) {
    if (!("WebSocket" in window)) {
      setState(r, m, "ended", "not supported");
      m.note = "This browser has no WebSocket.";
      return function () {};
    }
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const url = scheme + "//" + location.host + base + "/ws";
    let socket = null;
    let timer = null;
    let attempt = 0;
    let closed = false;
    function open() {
      if (closed) return;
      m.requests++;
      setState(r, m, attempt === 0 ? "connecting" : "reconnecting");
      const ws = new WebSocket(url);
      let wasOpen = false;
      socket = ws;
      ws.onopen = function () {
        wasOpen = true;
        attempt = 0;
        m.bytes += WS_HANDSHAKE;
        setState(r, m, "live");
      };
      ws.onmessage = function (event) {
        if (typeof event.data !== "string") return;
        m.bytes += wsFrameBytes(utf8(event.data));
        let msg;
        try { msg = JSON.parse(event.data); } catch (_) { return; }
        if (msg.type === "results") arrived(r, m, msg.version);
        else if (msg.type === "deleted") pollDeleted(r);
        else changed(r);
      };
      ws.onclose = function (event) {
        if (closed || socket !== ws) return;
        m.reconnects++;
        const delay = backoff(attempt++);
        m.note = (wasOpen ? "The connection closed (code " + event.code + ")" : "The connection could not be opened") +
          "; reconnecting.";
        setState(r, m, "reconnecting", "reconnecting in " + Math.ceil(delay / 1000) + " s");
        timer = setTimeout(open, delay);
      };
    }
    open();
    return function () {
      closed = true;
      clearTimeout(timer);
      if (socket) {
        socket.onclose = null;
        socket.onmessage = null;
        socket.close(1000);
      }
    };
  }

  function followSse(r, m) {
    if (!("EventSource" in window)) {
      setState(r, m, "ended", "not supported");
      m.note = "This browser has no EventSource.";
      return function () {};
    }
    let source = null;
    let timer = null;
    let attempt = 0;
    let closed = false;
    let opens = 0;
    function open() {
      if (closed) return;
      m.requests++;
      setState(r, m, attempt === 0 && opens === 0 ? "connecting" : "reconnecting");
      const es = new EventSource(base + "/events");
      source = es;
      es.onopen = function () {
        if (opens++ > 0) m.reconnects++;
        attempt = 0;
        m.bytes += SSE_HEADERS + SSE_RETRY;
        setState(r, m, "live");
      };
      es.addEventListener("results", function (event) {
        m.bytes += sseEventBytes(event);
        let results = null;
        try { results = JSON.parse(event.data); } catch (_) { return; }
        arrived(r, m, results.version);
      });
      es.addEventListener("deleted", function () { pollDeleted(r); });
      es.onerror = function () {
        if (closed || source !== es) return;
        if (es.readyState === EventSource.CONNECTING) {
          // The browser reconnects by itself (after the stream's `retry`),
          // sending Last-Event-ID: that is one more request.
          m.requests++;
          m.note = "The stream broke; the browser is reconnecting by itself.";
          setState(r, m, "reconnecting");
          return;
        }
        // Refused outright (an error status): reconnect with backoff.
        es.close();
        const delay = backoff(attempt++);
        m.note = "The stream was refused; reconnecting.";
        setState(r, m, "reconnecting", "reconnecting in " + Math.ceil(delay / 1000) + " s");
        timer = setTimeout(open, delay);
      };
    }
    open();
    return function () {
      closed = true;
      clearTimeout(timer);
      if (source) source.close();
    };
  }

  function sleep(ms, signal) {
    return new Promise(function (resolve) {
      const t = setTimeout(resolve, ms);
      signal.addEventListener("abort", function () { clearTimeout(t); resolve(); });
    });
  }

  // The loop both polling followers share: one request at a time, bytes
  // counted from the response the browser got.
  function followPolling(r, m, request, idleStatus, pause) {
    const stopper = new AbortController();
    (async function loop() {
      let attempt = 0;
      setState(r, m, "connecting");
      while (!stopper.signal.aborted) {
        const next = request(m);
        m.requests++;
        changed(r);
        let res;
        let body;
        try {
          res = await fetch(next.url, { headers: next.headers || {}, cache: "no-store", signal: stopper.signal });
          body = await res.text();
        } catch (_) {
          if (stopper.signal.aborted) return;
          m.reconnects++;
          const delay = backoff(attempt++);
          m.note = "A request failed; retrying.";
          setState(r, m, "reconnecting", "retrying in " + Math.ceil(delay / 1000) + " s");
          await sleep(delay, stopper.signal);
          continue;
        }
        if (stopper.signal.aborted) return;
        m.bytes += httpBytes(res, body);
        if (res.status === 200) {
          attempt = 0;
          setState(r, m, "live");
          let results = null;
          try { results = JSON.parse(body); } catch (_) { results = null; }
          if (results) arrived(r, m, results.version);
        } else if (res.status === idleStatus) {
          attempt = 0;
          setState(r, m, "live");
        } else if (res.status === 404) {
          return pollDeleted(r);
        } else {
          m.reconnects++;
          const delay = backoff(attempt++);
          m.note = "The server answered " + res.status + "; retrying.";
          setState(r, m, "reconnecting", "retrying in " + Math.ceil(delay / 1000) + " s");
          await sleep(delay, stopper.signal);
          continue;
        }
        const wait = pause(res.status);
        if (wait > 0) await sleep(wait, stopper.signal);
      }
    })();
    return function () { stopper.abort(); };
  }

  function followLongPoll(r, m) {
    return followPolling(r, m, function () {
      // The first request has no `since`: it answers at once (as on the
      // poll page), which confirms the connection; then each one waits.
      return {
        url: m.seen >= 0 ? base + "/changes?since=" + m.seen + "&timeout=" + LONGPOLL_SECS : base + "/changes",
      };
    }, 204, function () { return 0; });
  }

  function followShortPoll(r, m) {
    return followPolling(r, m, function () {
      // The page came with a version: the first question can already be
      // "anything newer than that?".
      const known = m.seen >= 0 ? m.seen : initial.version;
      return { url: base, headers: { "If-None-Match": '"' + known + '"' } };
    }, 304, function () { return POLL_EVERY_MS; });
  }

  const FOLLOW = { ws: followWs, sse: followSse, longpoll: followLongPoll, poll: followShortPoll };

  // ---- Voting at the chosen rate ----

  function readRate() {
    const rate = Number(rateInput.value);
    if (!Number.isInteger(rate) || rate < 1 || rate > 50) return null;
    return rate;
  }

  function randomKey() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, function (b) { return b.toString(16).padStart(2, "0"); }).join("");
  }

  // Votes go out on a fixed schedule (not "after the last answer"), so a
  // slow answer does not slow the rate down.
  function scheduleVotes(r, restart) {
    clearTimeout(r.voteTimer);
    if (restart) {
      r.scheduleFrom = performance.now();
      r.scheduled = 0;
    }
    const tick = function () {
      if (r !== run || !r.voting) return;
      const now = performance.now();
      const gap = 1000 / r.rate;
      while (r.scheduleFrom + r.scheduled * gap <= now) {
        r.scheduled++;
        castVote(r);
      }
      r.voteTimer = setTimeout(tick, Math.max(0, r.scheduleFrom + r.scheduled * gap - performance.now()));
    };
    tick();
  }

  // The n-th vote the lab casts, in the poll's own kind: an option in turn;
  // a word of a few; a value of the scale in turn; a ranking rotated by n.
  function ballot(n) {
    const opts = initial.options || [];
    switch (initial.kind) {
      case "wordcloud":
        return { entries: ["lab " + (n % 7)] };
      case "scale":
        return { value: opts[n % opts.length].id };
      case "ranking": {
        const ids = opts.map(function (o) { return o.id; }).sort(function (a, b) { return a - b; });
        const k = n % ids.length;
        return { ranking: ids.slice(k).concat(ids.slice(0, k)) };
      }
      default:
        return { option: n % optionCount };
    }
  }

  function castVote(r) {
    if (r.inFlight >= MAX_IN_FLIGHT) {
      r.votes.skipped++;
      return;
    }
    const body = ballot(r.votes.sent);
    r.votes.sent++;
    r.inFlight++;
    fetch(base + "/votes", {
      method: "POST",
      headers: { "Content-Type": "application/json", "Idempotency-Key": randomKey() },
      body: JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    }).then(function (res) {
      const answeredAt = performance.now();
      return res.json().catch(function () { return null; }).then(function (body) {
        if (r !== run) return;
        if (res.status === 200 && body && body.results) {
          r.votes.accepted++;
          voteAnswered(r, body.results.version, answeredAt);
        } else {
          r.votes.failed++;
          const code = body && body.error ? body.error.code : String(res.status);
          r.lastRefusal = code;
          if (code === "poll_closed" || code === "poll_not_found" || code === "already_voted") {
            stopVoting(r, "The server refused the votes (" + code + "); the lab stopped voting and keeps following.");
          }
        }
      });
    }, function () {
      if (r === run) r.votes.failed++;
    }).finally(function () {
      r.inFlight--;
      if (r === run) {
        changed(r);
        if (r.inFlight === 0 && r.onIdle) r.onIdle();
      }
    });
  }

  function stopVoting(r, why) {
    r.voting = false;
    clearTimeout(r.voteTimer);
    if (why) say(why);
  }

  // ---- The server's own figures (GET /api/stats) ----

  function fetchStats(r) {
    return fetch("/api/stats", { cache: "no-store" }).then(function (res) {
      return res.ok ? res.json() : null;
    }).then(function (stats) {
      if (!stats || r !== run) return;
      if (!r.baseline[stats.instance]) r.baseline[stats.instance] = { stats: stats, atStart: !r.startedStats };
      r.startedStats = true;
      r.server = stats;
      changed(r);
    }, function () { /* the next tick retries */ });
  }

  function renderServer(r) {
    const now = r.server;
    if (!now) return;
    const base0 = r.baseline[now.instance];
    const since = base0.atStart ? base0.stats : null;
    const delta = function (pick) { return since ? pick(now) - pick(since) : pick(now); };
    const prefix = since ? "+" : "";
    const where = "instance " + now.instance + (since ? ", since start" : ", since it started (first answer came mid-run)");
    serverVotesEl.textContent = prefix + numbers.format(delta(function (s) { return s.votes_accepted; })) +
      " votes accepted (" + where + ")";
    r.meters.forEach(function (m) {
      const t = function (s) { return s.transports[m.name]; };
      const open = t(now).followers;
      const sent = delta(function (s) { return t(s).deliveries; });
      let text = "Server (" + where + "): " + prefix + numbers.format(sent) + " results sent";
      if (m.name === "poll") {
        text += ", " + prefix + numbers.format(delta(function (s) { return t(s).not_modified; })) + " × 304";
      } else {
        text += ", " + open + " open now";
      }
      m.el.server.textContent = text + ".";
      m.el.server.dataset.deliveries = String(sent);
    });
  }

  // ---- Start and stop ----

  function say(text) {
    statusLine.textContent = text;
  }

  function start() {
    if (run && run.state !== "stopped") return;
    let rate = null;
    if (canVote) {
      rate = readRate();
      if (rate === null) {
        say(t("lab_say_rate", "Choose a rate from 1 to 50 votes per second."));
        rateInput.focus();
        return;
      }
    }
    if (run) closeFollowers(run);
    const r = {
      state: "running",
      startedAt: performance.now(),
      stoppedAt: 0,
      meters: NAMES.map(newMeter),
      closers: [],
      pending: [],
      lastAccepted: -1,
      votes: { sent: 0, accepted: 0, failed: 0, skipped: 0 },
      inFlight: 0,
      voting: canVote,
      rate: rate,
      baseline: {},
      startedStats: false,
      server: null,
      frame: 0,
    };
    run = r;
    root.dataset.labState = "running";
    startButton.disabled = true;
    stopButton.disabled = false;
    stopButton.focus();
    say(canVote ? t("lab_say_running", "Running: casting {rate} votes per second and following over all four transports.", { rate: rate })
      : t("lab_say_following", "Following over all four transports; this poll takes no votes from the lab."));
    // The baseline first, so the server's figures count from here.
    fetchStats(r).then(function () {
      if (r !== run || r.state === "stopped") return;
      r.meters.forEach(function (m) { r.closers.push(FOLLOW[m.name](r, m)); });
      whenConnected(r, function () {
        if (r.voting && r.state === "running") scheduleVotes(r, true);
      });
      r.statsTimer = setInterval(function () { fetchStats(r); }, STATS_EVERY_MS);
      r.clock = setInterval(function () { changed(r); }, 100);
    });
    changed(r);
  }

  // Votes start once every follower is connected (or after a few seconds),
  // so that no latency includes a connection still being set up.
  function whenConnected(r, then) {
    const deadline = performance.now() + 5000;
    const check = function () {
      if (r !== run) return;
      const ready = r.meters.every(function (m) { return m.state === "live" || m.state === "ended"; });
      if (ready || performance.now() >= deadline) then();
      else setTimeout(check, 20);
    };
    check();
  }

  // Stop: no more votes; the followers may catch up with the last vote
  // (briefly), then close, and the figures are final.
  function stop() {
    const r = run;
    if (!r || r.state !== "running") return;
    r.state = "draining";
    root.dataset.labState = "draining";
    stopVoting(r, null);
    stopButton.disabled = true;
    say(t("lab_say_stopping", "Stopping: no more votes; letting each follower catch up with the last one…"));
    const deadline = performance.now() + DRAIN_MS;
    const check = function () {
      if (r !== run) return;
      const caughtUp = r.inFlight === 0 && r.meters.every(function (m) {
        return m.seen >= r.lastAccepted || m.state === "ended";
      });
      if (caughtUp || performance.now() >= deadline) finish(r);
      else setTimeout(check, 50);
    };
    check();
  }

  function finish(r) {
    closeFollowers(r);
    clearInterval(r.clock);
    r.stoppedAt = performance.now();
    r.meters.forEach(function (m) { if (m.state !== "ended") { m.state = "ended"; m.stateText = "closed"; } });
    fetchStats(r).finally(function () {
      if (r !== run) return;
      r.state = "stopped";
      root.dataset.labState = "stopped";
      startButton.disabled = false;
      if (document.activeElement === stopButton || document.activeElement === document.body) startButton.focus();
      say(t("lab_say_stopped", "Stopped. The figures are final; start again for a new run."));
      render(r);
    });
  }

  function closeFollowers(r) {
    clearInterval(r.statsTimer);
    clearTimeout(r.voteTimer);
    r.voting = false;
    r.closers.forEach(function (close) { close(); });
    r.closers = [];
  }

  function pollDeleted(r) {
    if (r !== run) return;
    stopVoting(r, "This poll was deleted.");
    r.meters.forEach(function (m) { m.state = "ended"; m.stateText = "poll deleted"; });
    if (r.state === "running") stop();
  }

  // ---- The chart: inline SVG, log-scale latency over time. ----

  const SVG = "http://www.w3.org/2000/svg";
  const HEIGHT = 260;
  // The plot is drawn in the SVG's own CSS pixels, so its text stays
  // readable at any width; `right` follows the width on every draw.
  const PLOT = { left: 56, right: 628, top: 12, bottom: 224 };
  const TICKS = [1, 10, 100, 1000, 10000];

  function el(name, attrs, text) {
    const node = document.createElementNS(SVG, name);
    Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function yOf(ms) {
    const v = Math.log10(Math.min(10000, Math.max(1, ms)));
    return PLOT.bottom - (v / 4) * (PLOT.bottom - PLOT.top);
  }

  function drawChart() {
    if (!chart) return;
    const width = Math.max(300, Math.round(chart.getBoundingClientRect().width) || 640);
    chart.setAttribute("viewBox", "0 0 " + width + " " + HEIGHT);
    PLOT.right = width - 12;
    const r = run;
    const end = r ? ((r.stoppedAt || performance.now()) - r.startedAt) : 0;
    const span = Math.max(5000, Math.ceil(end / 5000) * 5000);
    const xOf = function (t) { return PLOT.left + (t / span) * (PLOT.right - PLOT.left); };
    const parts = [];
    TICKS.forEach(function (ms) {
      const y = yOf(ms);
      parts.push(el("line", { class: "grid", x1: PLOT.left, x2: PLOT.right, y1: y, y2: y }));
      parts.push(el("text", { class: "tick", x: PLOT.left - 6, y: y + 4, "text-anchor": "end" },
        ms >= 1000 ? ms / 1000 + " s" : ms + " ms"));
    });
    const step = span <= 10000 ? 1000 : span <= 30000 ? 5000 : span <= 120000 ? 10000 : 60000;
    for (let t = 0; t <= span; t += step) {
      parts.push(el("text", { class: "tick", x: xOf(t), y: PLOT.bottom + 18, "text-anchor": "middle" }, t / 1000 + " s"));
    }
    parts.push(el("line", { class: "axis", x1: PLOT.left, x2: PLOT.right, y1: PLOT.bottom, y2: PLOT.bottom }));
    parts.push(el("text", { class: "tick", x: PLOT.right, y: PLOT.bottom + 34, "text-anchor": "end" }, "time since start (vote answered)"));
    if (r) {
      r.meters.forEach(function (m) {
        if (m.samples.length === 0) return;
        const group = el("g", { class: "series series-" + m.name });
        const points = m.samples.map(function (s) { return xOf(s.at).toFixed(1) + "," + yOf(s.ms).toFixed(1); });
        group.appendChild(el("polyline", { points: points.join(" ") }));
        // At most the newest 400 dots per series keep the chart cheap.
        m.samples.slice(-400).forEach(function (s) {
          group.appendChild(el("circle", { cx: xOf(s.at).toFixed(1), cy: yOf(s.ms).toFixed(1), r: 2.5 }));
        });
        parts.push(group);
      });
    }
    chart.replaceChildren.apply(chart, parts);
  }

  // ---- Wiring (last: everything above is defined by now) ----

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    start();
  });
  stopButton.addEventListener("click", function () { stop(); });
  rateInput.addEventListener("change", function () {
    if (run && run.state === "running" && run.voting) {
      const rate = readRate();
      if (rate !== null) {
        run.rate = rate;
        scheduleVotes(run, true);
      }
    }
  });
  window.addEventListener("pagehide", function () { if (run) closeFollowers(run); });
  window.addEventListener("resize", function () { drawChart(); });
  drawChart();
})();
