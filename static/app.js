// tally: the one script of the pages. Loaded from /static (the CSP allows no
// inline script); everything it needs comes from data- attributes. Pages
// work without it: it only makes them live and saves round trips.
//
// On a poll page it follows changes over WebSocket, SSE, long polling or
// short polling (?transport=), falling back ws → sse → longpoll when one
// cannot connect at all, and reconnecting with exponential backoff plus
// random jitter so that the followers of an instance that died do not all
// come back in the same millisecond. User text is only ever set with
// textContent.
"use strict";

(function () {
  document.documentElement.classList.remove("no-js");

  // The page's phrases in its language (see src/pages/i18n.rs), with
  // {name} placeholders filled by `t`.
  const PHRASES = readJson(document.body.dataset.phrases) || {};
  const LANG = document.documentElement.lang || "en";

  function readJson(text) {
    try { return JSON.parse(text); } catch (_) { return null; }
  }

  function t(key, values) {
    let text = PHRASES[key] || key;
    Object.keys(values || {}).forEach(function (name) {
      text = text.split("{" + name + "}").join(String(values[name]));
    });
    return text;
  }

  document.querySelectorAll("[data-lang-switch]").forEach(enhanceLangSwitch);
  document.querySelectorAll("[data-local-time]").forEach(enhanceLocalTime);
  const createForm = document.querySelector("[data-create-form]");
  if (createForm) enhanceCreateForm(createForm);
  document.querySelectorAll("[data-copy]").forEach(enhanceCopyButton);
  applyStoredTheme();
  document.querySelectorAll("[data-follow]").forEach(function (root) {
    const follower = followPoll(root);
    if (root.querySelector("[data-manage-form]")) enhanceManage(root, follower);
  });
  document.querySelectorAll("[data-theme-toggle]").forEach(enhanceThemeToggle);
  document.querySelectorAll("[data-fullscreen]").forEach(enhanceFullscreen);

  // ---- Create form: add and remove option fields in place. ----

  function enhanceCreateForm(form) {
    const list = form.querySelector("[data-option-list]");
    const addButton = form.querySelector("[data-add-option]");
    const MIN = 2;
    const MAX = 20;

    function rows() {
      return Array.from(list.querySelectorAll("[data-option-row]"));
    }

    function renumber() {
      const all = rows();
      all.forEach(function (row, i) {
        const n = i + 1;
        const input = row.querySelector("input");
        const label = row.querySelector("label");
        const remove = row.querySelector("[data-remove-option]");
        input.id = "option-" + n;
        input.placeholder = t("option_n", { n: n });
        label.htmlFor = input.id;
        label.textContent = t("option_n", { n: n });
        remove.value = String(i);
        remove.setAttribute("aria-label", t("remove_option_n", { n: n }));
        remove.disabled = all.length <= MIN;
      });
      addButton.disabled = all.length >= MAX;
    }

    form.addEventListener("click", function (event) {
      const add = event.target.closest("[data-add-option]");
      const remove = event.target.closest("[data-remove-option]");
      if (add) {
        event.preventDefault();
        const all = rows();
        if (all.length >= MAX) return;
        const row = all[all.length - 1].cloneNode(true);
        row.querySelector("input").value = "";
        row.querySelector("input").removeAttribute("autofocus");
        list.appendChild(row);
        renumber();
        row.querySelector("input").focus();
      } else if (remove) {
        event.preventDefault();
        const all = rows();
        if (all.length <= MIN) return;
        const row = remove.closest("[data-option-row]");
        const next = row.nextElementSibling || row.previousElementSibling;
        row.remove();
        renumber();
        if (next) next.querySelector("input").focus();
      }
    });
  }

  // ---- Language switch: the cookie, then this very page again. ----

  // Without the script the link sets the cookie on the server and comes
  // back; with it, a reload keeps what the server cannot see (the manage
  // page's #token=…) and stays on a page a form answered.
  function enhanceLangSwitch(link) {
    link.addEventListener("click", function (event) {
      document.cookie = "tally_lang=" + link.dataset.langSwitch + "; path=/; max-age=31536000; samesite=lax";
      if (link.dataset.reload === "true") {
        event.preventDefault();
        location.reload();
      }
    });
  }

  // ---- Create form: "closes at" is typed in local time; say which. ----

  function enhanceLocalTime(input) {
    const offset = input.form && input.form.querySelector("[data-tz-offset]");
    if (!offset) return;
    const update = function () {
      const when = input.value ? new Date(input.value) : new Date();
      offset.value = isNaN(when) ? "" : String(when.getTimezoneOffset());
    };
    input.addEventListener("change", update);
    input.form.addEventListener("submit", update);
    update();
  }

  // ---- Created page: copy the link and the token. ----

  function enhanceCopyButton(button) {
    const input = document.getElementById(button.dataset.copy);
    if (!input || !navigator.clipboard) return;
    button.hidden = false;
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(input.value).then(
        function () {
          button.textContent = t("copied");
          setTimeout(function () { button.textContent = t("copy"); }, 2000);
        },
        function () {
          input.select();
        }
      );
    });
  }

  // ---- Presenter view: light or dark, full screen. ----

  // The system's scheme unless the presenter picked one (kept per browser).
  function applyStoredTheme() {
    let theme = null;
    try { theme = localStorage.getItem("tally:theme"); } catch (_) { /* private mode */ }
    if (theme === "light" || theme === "dark") document.documentElement.dataset.theme = theme;
  }

  function enhanceThemeToggle(button) {
    button.addEventListener("click", function () {
      const root = document.documentElement;
      const now = root.dataset.theme || (matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light");
      const next = now === "dark" ? "light" : "dark";
      root.dataset.theme = next;
      try { localStorage.setItem("tally:theme", next); } catch (_) { /* private mode */ }
    });
  }

  function enhanceFullscreen(button) {
    if (!document.documentElement.requestFullscreen) {
      button.hidden = true;
      return;
    }
    button.addEventListener("click", function () {
      if (document.fullscreenElement) document.exitFullscreen();
      else document.documentElement.requestFullscreen().catch(function () { /* refused */ });
    });
  }

  // ---- Manage page: the host's buttons, with the token from #token=… ----

  function enhanceManage(root, follower) {
    const id = root.dataset.poll;
    const base = "/api/polls/" + encodeURIComponent(id);
    const form = root.querySelector("[data-manage-form]");
    const tokenInput = form.querySelector("input[name=token]");
    const dialog = root.querySelector("[data-delete-dialog]");
    const notices = root.querySelector("[data-notices]");
    const fromLink = new URLSearchParams(location.hash.slice(1)).get("token");
    if (fromLink) {
      tokenInput.value = fromLink;
      root.querySelector("[data-token-field]").hidden = true;
      root.querySelector("[data-token-from-link]").hidden = false;
    }
    // Export sits outside the form (in the share card) and names it.
    root.querySelectorAll("[data-manage]").forEach(function (button) {
      button.addEventListener("click", function (event) {
        event.preventDefault();
        press(button.dataset.manage);
      });
    });
    root.addEventListener("tally:results", function (event) {
      showState(event.detail);
      if (event.detail && event.detail.results_hidden) refreshCounts();
    });
    const initial = readJson(root.dataset.results);
    if (initial && initial.results_hidden) refreshCounts();

    // The stream hides counts from everyone; the host asks with the token.
    function refreshCounts() {
      if (!token()) return;
      fetch(base, authorised("GET")).then(function (res) {
        return res.ok ? res.json().then(follower.show) : null;
      }, function () { /* the next change will try again */ });
    }
    root.addEventListener("tally:deleted", function () { ended(); });

    function say(text, kind) {
      const p = document.createElement("p");
      p.className = "notice " + kind;
      p.setAttribute("role", "status");
      p.textContent = text;
      notices.replaceChildren(p);
    }

    function button(action) {
      return root.querySelector("[data-manage=\"" + action + "\"]");
    }

    function showState(results) {
      if (!results) return;
      button("close").disabled = results.closed;
      button("reopen").disabled = !results.closed;
    }

    function ended() {
      root.querySelectorAll("[data-manage]").forEach(function (b) { b.disabled = true; });
    }

    function token() {
      return tokenInput.value.trim();
    }

    function press(action) {
      if (!token()) {
        say(t("missing_token"), "warn");
        root.querySelector("[data-token-field]").hidden = false;
        tokenInput.focus();
        return;
      }
      if (action === "delete") return confirmDelete();
      if (action === "export") return exportCsv();
      send("POST", base + "/" + action, action);
    }

    function confirmDelete() {
      if (!dialog.showModal) {
        if (window.confirm(t("delete_confirm"))) send("DELETE", base, "delete");
        return;
      }
      dialog.returnValue = "";
      dialog.addEventListener("close", function onClose() {
        dialog.removeEventListener("close", onClose);
        if (dialog.returnValue === "delete") send("DELETE", base, "delete");
      });
      dialog.showModal();
    }

    function authorised(method) {
      return {
        method: method,
        headers: { Authorization: "Bearer " + token() },
        cache: "no-store",
        credentials: "same-origin",
      };
    }

    function refused(res) {
      return res.json().catch(function () { return {}; }).then(function (body) {
        const err = (body && body.error) || {};
        if (res.status === 403 && err.code === "forbidden") say(t("wrong_token"), "warn");
        else if (res.status === 401) say(t("missing_token"), "warn");
        else say(t("manage_failed", { message: err.message || res.status }), "warn");
      });
    }

    function send(method, url, action) {
      fetch(url, authorised(method)).then(function (res) {
        if (!res.ok) return refused(res);
        if (action === "delete") {
          ended();
          say(t("done_deleted"), "ok");
          return;
        }
        return res.json().then(function (results) {
          follower.apply(results);
          showState(results);
          say(t(action === "close" ? "done_closed" : "done_reopened"), "ok");
        });
      }, function () { say(t("notice_network"), "warn"); });
    }

    // Fetched with the bearer (a plain link could not send it), then
    // handed to the browser as a download.
    function exportCsv() {
      fetch(base + "/results.csv", authorised("GET")).then(function (res) {
        if (!res.ok) return refused(res);
        return res.blob().then(function (blob) {
          const a = document.createElement("a");
          a.href = URL.createObjectURL(blob);
          a.download = "tally-" + id + ".csv";
          document.body.appendChild(a);
          a.click();
          a.remove();
          setTimeout(function () { URL.revokeObjectURL(a.href); }, 10000);
          say(t("done_exported"), "ok");
        });
      }, function () { say(t("notice_network"), "warn"); });
    }
  }

  // ---- Poll page (and every page that follows a poll: manage, present). ----

  function followPoll(root) {
    const id = root.dataset.poll;
    const base = "/api/polls/" + encodeURIComponent(id);
    const numbers = new Intl.NumberFormat(LANG === "en" ? "en-US" : LANG);
    const FALLBACK = { ws: "sse", sse: "longpoll" };
    const POLL_EVERY_MS = 2000;
    const LONGPOLL_SECS = 25;
    const VOTE_ACK_MS = 8000;

    let results = JSON.parse(root.dataset.results);
    let version = results.version;
    let deleted = false;
    const view = findElements(root);

    // Following: one live connection at a time. `generation` retires the
    // callbacks of a connection that was replaced.
    let transport = pickSupported(root.dataset.transport);
    let generation = 0;
    let closeCurrent = function () {};
    let failures = 0;
    let retryTimer = null;
    const everOpened = {};
    let socket = null;
    const pendingWs = new Map();

    restoreChoice();
    tidyUrl();
    render();
    connect();

    window.addEventListener("online", function () {
      if (retryTimer !== null) reconnectSoon(1000);
    });
    window.addEventListener("pagehide", function () { stop(); });
    window.addEventListener("pageshow", function (event) {
      if (event.persisted && !deleted) connect();
    });
    if (view.form) view.form.addEventListener("submit", onVoteSubmit);
    return { apply: apply, show: show };

    // -- Rendering --

    function findElements(root) {
      const rows = new Map();
      root.querySelectorAll("[data-option]").forEach(function (row) {
        rows.set(Number(row.dataset.option), {
          row: row,
          votes: row.querySelector("[data-votes]"),
          percent: row.querySelector("[data-percent]"),
          bar: row.querySelector("[role=meter]"),
          fill: row.querySelector("[data-fill]"),
          mine: row.querySelector("[data-mine]"),
          button: row.querySelector("button[name=option], input[data-pick]"),
          label: row.querySelector(".result-label"),
        });
      });
      return {
        rows: rows,
        form: root.querySelector("[data-vote-form]"),
        send: root.querySelector("[data-send-vote]"),
        total: root.querySelector("[data-total]"),
        badge: root.querySelector("[data-state-badge]"),
        notices: root.querySelector("[data-notices]"),
        version: root.querySelector("[data-version]"),
        transport: root.querySelector("[data-transport-used]"),
        conn: root.querySelector("[data-conn]"),
      };
    }

    function votesText(n) {
      if (typeof n !== "number") return t("hidden_count");
      return t(n === 1 ? "vote_one" : "vote_many", { n: numbers.format(n) });
    }

    function render() {
      const total = results.total;
      results.options.forEach(function (option) {
        const el = view.rows.get(option.id);
        if (!el) return;
        const share = total > 0 && typeof option.votes === "number" ? (option.votes * 100) / total : 0;
        const shareText = share.toFixed(1);
        el.votes.textContent = votesText(option.votes);
        el.percent.textContent = shareText + "%";
        el.fill.style.width = share + "%";
        el.bar.setAttribute("aria-valuenow", shareText);
        el.bar.setAttribute("aria-valuetext", votesText(option.votes) + ", " + shareText + "%");
      });
      view.total.textContent = votesText(total);
      if (view.version) view.version.textContent = String(version);
      showHidden();
      if (results.closed) showClosed();
      else showOpen();
      root.dispatchEvent(new CustomEvent("tally:results", { detail: results }));
    }

    // Applies results from any source, ignoring any not newer than shown.
    function apply(next) {
      if (deleted || !next || typeof next.version !== "number") return;
      if (next.version <= version) return;
      results = next;
      version = next.version;
      render();
    }

    // The same version with more in it: the counts the host's token (or a
    // vote just cast) may see, where the stream sent them hidden.
    function show(next) {
      if (deleted || !next || typeof next.version !== "number" || next.version < version) return;
      results = next;
      version = next.version;
      render();
    }

    // "Hidden until you vote / until close": the note and the bars follow
    // what the server sent this visitor.
    function showHidden() {
      const list = root.querySelector(".results");
      if (!list) return;
      list.classList.toggle("results-hidden", !!results.results_hidden);
      let note = root.querySelector("[data-hidden-note]");
      if (!results.results_hidden) {
        if (note) note.hidden = true;
        return;
      }
      if (!note) {
        note = document.createElement("p");
        note.className = "notice hidden-note";
        note.setAttribute("data-hidden-note", "");
        const at = view.form || list;
        at.parentNode.insertBefore(note, at);
      }
      note.textContent = t(results.results === "after_vote" ? "hidden_until_vote" : "hidden_until_close");
      note.hidden = false;
    }

    function disableVoting() {
      view.rows.forEach(function (el) { if (el.button) el.button.disabled = true; });
      if (view.send) view.send.disabled = true;
    }

    // A reopened poll takes votes again.
    function showOpen() {
      if (deleted || view.badge.textContent !== t("badge_closed")) return;
      view.badge.textContent = t("badge_open");
      view.badge.classList.add("open");
      view.rows.forEach(function (el) { if (el.button) el.button.disabled = false; });
      if (view.send) view.send.disabled = false;
      limitPicks();
      view.notices.replaceChildren();
    }

    function showClosed() {
      if (view.badge.textContent === t("badge_closed")) return;
      view.badge.textContent = t("badge_closed");
      view.badge.classList.remove("open");
      disableVoting();
      notice(t("poll_closed_final"), "");
    }

    function showDeleted() {
      deleted = true;
      stop();
      view.badge.textContent = t("badge_deleted");
      view.badge.classList.remove("open");
      disableVoting();
      setConn("ended", t("conn_deleted"));
      notice(t("poll_deleted"), "warn");
      root.dispatchEvent(new CustomEvent("tally:deleted"));
    }

    function notice(text, kind) {
      const p = document.createElement("p");
      p.className = "notice" + (kind ? " " + kind : "");
      p.setAttribute("role", "status");
      p.textContent = text;
      view.notices.replaceChildren(p);
    }

    function setConn(state, text) {
      if (!view.conn) return;
      view.conn.dataset.state = state;
      view.conn.textContent = text;
    }

    // `choice`: the options of the visitor's vote (one, or several).
    function markChoice(choice) {
      view.rows.forEach(function (el, key) {
        const mine = choice.indexOf(key) >= 0;
        el.row.classList.toggle("chosen", mine);
        if (el.mine) el.mine.hidden = !mine;
        if (el.button && el.button.type === "checkbox") el.button.checked = mine;
      });
      limitPicks();
    }

    function maxChoices() {
      return view.form ? Number(view.form.dataset.maxChoices) || 1 : 1;
    }

    // Checkboxes past max_choices cannot be ticked.
    function limitPicks() {
      if (maxChoices() < 2 || results.closed) return;
      const picked = Array.from(view.rows.values()).filter(function (el) { return el.button.checked; }).length;
      view.rows.forEach(function (el) {
        el.button.disabled = !el.button.checked && picked >= maxChoices();
      });
    }

    function picked() {
      return Array.from(view.rows.entries())
        .filter(function (entry) { return entry[1].button.checked; })
        .map(function (entry) { return entry[0]; });
    }

    // -- The visitor's own choice, remembered per poll. --

    function storageKey() {
      return "tally:choice:" + id;
    }

    // A poll that lets voters change their vote renders their choice from
    // the store; on other polls the page keeps it in this browser (and a
    // form vote's answer names it). What the server rendered wins.
    function remember(choice) {
      try { localStorage.setItem(storageKey(), JSON.stringify(choice)); } catch (_) { /* private mode */ }
    }

    function restoreChoice() {
      if (!view.form) return;
      view.form.addEventListener("change", function (event) {
        if (event.target.matches("[data-pick]")) limitPicks();
      });
      const shown = Array.from(root.querySelectorAll(".result.chosen"), function (r) { return Number(r.dataset.option); });
      if (shown.length) {
        remember(shown);
        limitPicks();
        return;
      }
      let stored = null;
      try { stored = readJson(localStorage.getItem(storageKey())); } catch (_) { /* private mode */ }
      if (typeof stored === "number") stored = [stored];
      if (Array.isArray(stored) && stored.every(function (o) { return view.rows.has(o); })) {
        markChoice(stored);
        changeOffered(stored.length > 0);
      }
      limitPicks();
    }

    // After a vote on a poll that allows changing it, the button says so.
    function changeOffered(voted) {
      if (view.send && voted && results.allow_change) view.send.textContent = t("change_vote");
    }

    // A form vote's ?notice=…&choice=… should not show again on reload.
    function tidyUrl() {
      const url = new URL(location.href);
      if (!url.searchParams.has("notice") && !url.searchParams.has("choice")) return;
      url.searchParams.delete("notice");
      url.searchParams.delete("choice");
      history.replaceState(null, "", url.pathname + url.search + url.hash);
    }

    // -- Following changes --

    function pickSupported(wanted) {
      let t = ["ws", "sse", "longpoll", "poll"].indexOf(wanted) >= 0 ? wanted : "ws";
      if (t === "ws" && !("WebSocket" in window)) t = "sse";
      if (t === "sse" && !("EventSource" in window)) t = "longpoll";
      return t;
    }

    function showTransport() {
      const asked = root.dataset.transport;
      if (!view.transport) return;
      view.transport.textContent = transport === asked ? transport : t("transport_fallback", { used: transport, asked: asked });
    }

    function connect() {
      stop();
      const gen = ++generation;
      showTransport();
      setConn(failures === 0 ? "connecting" : "reconnecting", t(failures === 0 ? "conn_connecting" : "conn_reconnecting"));
      const open = { ws: openWs, sse: openSse, longpoll: runLongPoll, poll: runShortPoll }[transport];
      closeCurrent = open(gen);
    }

    function stop() {
      generation++;
      if (retryTimer !== null) clearTimeout(retryTimer);
      retryTimer = null;
      closeCurrent();
      closeCurrent = function () {};
    }

    function current(gen) {
      return gen === generation && !deleted;
    }

    function opened(gen) {
      if (!current(gen)) return;
      failures = 0;
      everOpened[transport] = true;
      setConn("live", t("conn_live"));
    }

    // Exponential backoff with full jitter: 0.1 s plus a random share of a
    // window that doubles per failure, capped at 30 s.
    function backoff(attempt) {
      const windowMs = Math.min(30000, 1000 * Math.pow(2, attempt));
      return 100 + Math.random() * windowMs;
    }

    // A connection ended or could not be made: maybe fall back, then retry.
    function lost(gen, wasOpen) {
      if (!current(gen)) return;
      generation++;
      closeCurrent();
      closeCurrent = function () {};
      if (!wasOpen) checkStillExists();
      if (!wasOpen && !everOpened[transport] && failures >= 1 && FALLBACK[transport]) {
        transport = FALLBACK[transport];
        failures = 0;
        connect();
        return;
      }
      const delay = backoff(failures);
      failures++;
      setConn("reconnecting", t("conn_retry_in", { s: Math.ceil(delay / 1000) }));
      retryTimer = setTimeout(function () { retryTimer = null; connect(); }, delay);
    }

    function reconnectSoon(withinMs) {
      clearTimeout(retryTimer);
      retryTimer = setTimeout(function () { retryTimer = null; connect(); }, Math.random() * withinMs);
    }

    // A failed handshake does not say why; a deleted poll is one reason.
    function checkStillExists() {
      fetch(base, { cache: "no-store" }).then(function (res) {
        if (res.status === 404) showDeleted();
      }, function () { /* offline: the retry will tell */ });
    }

    function openWs(gen) {
      const scheme = location.protocol === "https:" ? "wss:" : "ws:";
      const ws = new WebSocket(scheme + "//" + location.host + base + "/ws");
      let wasOpen = false;
      ws.onopen = function () {
        wasOpen = true;
        socket = ws;
        opened(gen);
      };
      ws.onmessage = function (event) {
        let msg;
        try { msg = JSON.parse(event.data); } catch (_) { return; }
        if (msg.type === "results") apply(msg);
        else if (msg.type === "vote_ack") wsVoteAnswered(msg.request_id, null);
        else if (msg.type === "error") wsVoteAnswered(msg.request_id, msg);
        else if (msg.type === "deleted") showDeleted();
      };
      ws.onclose = function () {
        if (socket === ws) socket = null;
        resendPendingOverHttp();
        lost(gen, wasOpen);
      };
      return function () {
        ws.onclose = null;
        ws.onmessage = null;
        if (socket === ws) socket = null;
        ws.close(1000);
        resendPendingOverHttp();
      };
    }

    function openSse(gen) {
      const es = new EventSource(base + "/events");
      let wasOpen = false;
      es.onopen = function () {
        wasOpen = true;
        opened(gen);
      };
      es.addEventListener("results", function (event) {
        try { apply(JSON.parse(event.data)); } catch (_) { /* ignore a bad event */ }
      });
      es.addEventListener("deleted", function () { showDeleted(); });
      // EventSource would retry on its own after a fixed delay; close it
      // and reconnect with jittered backoff instead.
      es.onerror = function () {
        es.close();
        lost(gen, wasOpen);
      };
      return function () { es.close(); };
    }

    function sleep(ms) {
      return new Promise(function (resolve) { setTimeout(resolve, ms); });
    }

    // Fetch that can be cancelled by the connection's close and times out.
    function fetchFor(url, options, timeoutMs) {
      const controller = new AbortController();
      const timer = setTimeout(function () { controller.abort(); }, timeoutMs);
      const cancel = function () { controller.abort(); };
      const request = fetch(url, Object.assign({ signal: controller.signal, cache: "no-store" }, options));
      return { cancel: cancel, response: request.finally(function () { clearTimeout(timer); }) };
    }

    // The loop both polling transports share, one request at a time:
    // `request(wasOpen)` names the next request, `idleStatus` is the answer
    // that means "nothing new", and `pause(status, tookMs)` waits (or not)
    // before the next request.
    function runPolling(gen, request, idleStatus, pause) {
      let inflight = null;
      let wasOpen = false;
      (async function loop() {
        while (current(gen)) {
          const next = request(wasOpen);
          const started = Date.now();
          inflight = fetchFor(next.url, next.options, next.timeoutMs);
          let res;
          try {
            res = await inflight.response;
          } catch (_) {
            return lost(gen, wasOpen);
          }
          if (!current(gen)) return;
          if (res.status === 404) return showDeleted();
          if (res.status !== 200 && res.status !== idleStatus) return lost(gen, wasOpen);
          if (!wasOpen) {
            wasOpen = true;
            opened(gen);
          }
          if (res.status === 200) apply(await res.json().catch(function () { return null; }));
          await pause(res.status, Date.now() - started);
        }
      })();
      return function () { if (inflight) inflight.cancel(); };
    }

    function runLongPoll(gen) {
      return runPolling(gen, function (wasOpen) {
        // The first request has no `since`: it answers at once, which
        // confirms the connection and catches up on anything missed.
        return {
          url: wasOpen
            ? base + "/changes?since=" + version + "&timeout=" + LONGPOLL_SECS
            : base + "/changes",
          options: {},
          timeoutMs: (LONGPOLL_SECS + 15) * 1000,
        };
      }, 204, function (status, tookMs) {
        // An instant 204 means the instance is draining: do not spin, and
        // do not come back all at once.
        return status === 204 && tookMs < 1000 ? sleep(Math.random() * 1000) : null;
      });
    }

    function runShortPoll(gen) {
      return runPolling(gen, function () {
        return {
          url: base,
          options: { headers: { "If-None-Match": '"' + version + '"' } },
          timeoutMs: 10000,
        };
      }, 304, function () { return sleep(POLL_EVERY_MS); });
    }

    // -- Voting --

    function randomKey() {
      const bytes = new Uint8Array(16);
      crypto.getRandomValues(bytes);
      return Array.from(bytes, function (b) { return b.toString(16).padStart(2, "0"); }).join("");
    }

    // One vote button ({"option":N}), or "send" with the ticked boxes of
    // a multi-choice poll ({"options":[…]}).
    function onVoteSubmit(event) {
      const button = event.submitter;
      // Without the submitter, let the form post itself (the fallback).
      if (!button || (button.name !== "option" && !button.hasAttribute("data-send-vote"))) return;
      event.preventDefault();
      if (button.getAttribute("aria-busy") === "true" || deleted) return;
      const multi = button.hasAttribute("data-send-vote");
      const option = multi ? picked() : [Number(button.value)];
      if (option.length === 0) return notice(t("choose_one_first"), "warn");
      if (option.length > maxChoices()) return notice(t("too_many_choices", { n: maxChoices() }), "warn");
      const key = randomKey();
      button.setAttribute("aria-busy", "true");
      if (socket && socket.readyState === WebSocket.OPEN) {
        const timer = setTimeout(function () { resendOverHttp(key); }, VOTE_ACK_MS);
        pendingWs.set(key, { option: option, timer: timer });
        socket.send(JSON.stringify(Object.assign({ type: "vote", request_id: key }, voteBody(option))));
      } else {
        voteOverHttp(key, option, 0);
      }
    }

    function voteBody(choice) {
      return maxChoices() > 1 ? { options: choice } : { option: choice[0] };
    }

    function wsVoteAnswered(key, error) {
      const pending = pendingWs.get(key);
      if (!pending) return;
      pendingWs.delete(key);
      clearTimeout(pending.timer);
      if (error) voteRefused(pending.option, error.code, error.message);
      else voteCounted(pending.option);
    }

    // The answer may never come over a socket that closed; the same key
    // over HTTP gets the first outcome if the vote did count.
    function resendOverHttp(key) {
      const pending = pendingWs.get(key);
      if (!pending) return;
      pendingWs.delete(key);
      clearTimeout(pending.timer);
      voteOverHttp(key, pending.option, 0);
    }

    function resendPendingOverHttp() {
      Array.from(pendingWs.keys()).forEach(resendOverHttp);
    }

    function voteOverHttp(key, option, attempt) {
      const retry = function () {
        if (attempt >= 5) return voteRefused(option, "network", t("notice_network"));
        setTimeout(function () { voteOverHttp(key, option, attempt + 1); }, backoff(attempt));
      };
      fetch(base + "/votes", {
        method: "POST",
        headers: { "Content-Type": "application/json", "Idempotency-Key": key },
        body: JSON.stringify(voteBody(option)),
        credentials: "same-origin",
        cache: "no-store",
      }).then(function (res) {
        if (res.ok) {
          return res.json().then(function (body) {
            show(body.results);
            voteCounted(option);
          });
        }
        if (res.status === 503 || res.status === 429) return retry();
        return res.json().catch(function () { return {}; }).then(function (body) {
          const err = (body && body.error) || {};
          voteRefused(option, err.code || "error", err.message || t("notice_refused"));
        });
      }, retry);
    }

    function done(choice) {
      choice.forEach(function (option) {
        const el = view.rows.get(option);
        if (el) el.button.removeAttribute("aria-busy");
      });
      if (view.send) view.send.removeAttribute("aria-busy");
    }

    function labelOf(choice) {
      return choice.map(function (option) {
        const el = view.rows.get(option);
        return el ? el.label.textContent : "";
      }).join(LANG === "en" ? ", " : "、");
    }

    function voteCounted(option) {
      const wasHidden = results.results_hidden;
      done(option);
      remember(option);
      markChoice(option);
      changeOffered(true);
      notice(t("notice_voted_for", { label: labelOf(option) }), "ok");
      // A stream opened before the vote was told to hide the counts;
      // a new one is told this visitor has voted.
      if (wasHidden && results.results === "after_vote") connect();
    }

    function voteRefused(option, code, message) {
      done(option);
      switch (code) {
        case "already_voted":
          notice(t("notice_already_voted"), "warn");
          break;
        case "poll_closed":
          results = Object.assign({}, results, { closed: true });
          showClosed();
          notice(t("notice_closed_refused"), "warn");
          break;
        case "poll_not_found":
          showDeleted();
          break;
        default:
          notice(message, "warn");
      }
    }
  }
})();
