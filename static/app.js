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

  // ---- Question kinds: drawing and input, shared with event.js. ----

  const NUMBERS = new Intl.NumberFormat(LANG === "en" ? "en-US" : LANG);

  function votesText(n) {
    if (typeof n !== "number") return t("hidden_count");
    return t(n === 1 ? "vote_one" : "vote_many", { n: NUMBERS.format(n) });
  }

  const Kinds = {
    // A new element with its class and text (text only ever as text).
    el: function (tag, className, text) {
      const e = document.createElement(tag);
      if (className) e.className = className;
      if (text !== undefined) e.textContent = text;
      return e;
    },

    // Fills `list` with `items`, or with one line saying there is nothing yet.
    fill: function (list, items, emptyClass) {
      if (items.length === 0) items = [Kinds.el("li", emptyClass, t("cloud_empty"))];
      list.replaceChildren.apply(list, items);
    },

    // A word cloud: its entries as words sized 1–5 by votes against the
    // most voted (classes: the CSP forbids style attributes), or a line
    // saying there are none yet. Hidden entries (the host's view) are marked.
    drawCloud: function (list, entries) {
      const top = Array.isArray(entries) ? entries : [];
      const most = Math.max.apply(null, [1].concat(top.map(function (e) { return e.votes; })));
      Kinds.fill(list, top.map(function (entry) {
        const li = Kinds.el("li", "word size-" + (1 + Math.floor((entry.votes * 4) / most)) + (entry.hidden ? " word-hidden" : ""));
        li.dataset.votes = String(entry.votes);
        li.append(entry.text, " ", Kinds.el("span", "sr-only", votesText(entry.votes)));
        return li;
      }), "cloud-empty muted");
    },

    // What a bar is a share of: all points given for a ranking, else the total.
    barBase: function (results) {
      if (results.kind !== "ranking") return results.total;
      return results.options.reduce(function (sum, o) { return sum + (typeof o.points === "number" ? o.points : 0); }, 0);
    },

    // An option's count as shown: a ranking's points, else votes.
    countText: function (results, n) {
      if (typeof n !== "number" || results.kind !== "ranking") return votesText(n);
      return t(n === 1 ? "points_one" : "points_many", { n: NUMBERS.format(n) });
    },

    firstText: function (option) {
      return typeof option.first === "number" ? t("first_places", { n: NUMBERS.format(option.first) }) : "";
    },

    // A scale's mean or median: one decimal, a dash without votes.
    statText: function (v) {
      return typeof v === "number" ? v.toFixed(1) : "–";
    },

    // Moves the rows into the order of `options` (a ranking's, by points),
    // touching nothing when they are in it already.
    sortRows: function (list, options, rowOf) {
      if (!list) return;
      const rows = options.map(function (o) { return rowOf(o.id); }).filter(Boolean);
      const now = Array.from(list.children).filter(function (r) { return rows.indexOf(r) >= 0; });
      if (rows.every(function (r, i) { return now[i] === r; })) return;
      rows.forEach(function (r) { list.appendChild(r); });
    },

    // A ranking input: each item ([data-rank-option], its text in
    // .rank-name) gets its place, move-up and move-down buttons, and can
    // be dragged. Moves are announced politely; the no-JS place fields
    // follow, so the form still says the same order.
    enhanceRanking: function (list) {
      let off = false;
      let dragged = null;
      const status = Kinds.el("p", "sr-only");
      status.setAttribute("aria-live", "polite");
      list.after(status);
      items().forEach(function (li) {
        const place = Kinds.el("span", "rank-place");
        place.setAttribute("aria-hidden", "true");
        li.insertBefore(place, li.firstChild);
        const moves = Kinds.el("span", "rank-moves");
        [["up", "↑", "rank_move_up"], ["down", "↓", "rank_move_down"]].forEach(function (m) {
          const b = Kinds.el("button", "icon-button rank-move", m[1]);
          b.type = "button";
          b.dataset.rankMove = m[0];
          b.setAttribute("aria-label", t(m[2], { label: nameOf(li) }));
          moves.appendChild(b);
        });
        li.appendChild(moves);
      });
      list.addEventListener("click", function (event) {
        const b = event.target.closest("[data-rank-move]");
        if (!b || off) return;
        event.preventDefault();
        const li = b.closest("[data-rank-option]");
        const up = b.dataset.rankMove === "up";
        const other = up ? li.previousElementSibling : li.nextElementSibling;
        if (!other) return;
        if (up) list.insertBefore(li, other);
        else list.insertBefore(other, li);
        renumber();
        // Focus stays on the button pressed, or its pair at an end.
        (b.disabled ? li.querySelector("[data-rank-move]:not(:disabled)") : b).focus();
        announce(li);
      });
      list.addEventListener("dragstart", function (event) {
        const li = event.target.closest && event.target.closest("[data-rank-option]");
        if (!li || off) return;
        dragged = li;
        li.classList.add("dragging");
        event.dataTransfer.effectAllowed = "move";
        event.dataTransfer.setData("text/plain", li.dataset.rankOption);
      });
      list.addEventListener("dragover", function (event) {
        if (!dragged) return;
        event.preventDefault();
        const over = event.target.closest && event.target.closest("[data-rank-option]");
        if (!over || over === dragged) return;
        const box = over.getBoundingClientRect();
        list.insertBefore(dragged, event.clientY > box.top + box.height / 2 ? over.nextElementSibling : over);
        renumber();
      });
      list.addEventListener("drop", function (event) {
        if (dragged) event.preventDefault();
      });
      list.addEventListener("dragend", function () {
        if (!dragged) return;
        const li = dragged;
        dragged = null;
        li.classList.remove("dragging");
        renumber();
        announce(li);
      });
      renumber();

      function items() {
        return Array.from(list.querySelectorAll("[data-rank-option]"));
      }
      function nameOf(li) {
        const name = li.querySelector(".rank-name");
        return name ? name.textContent.trim() : "";
      }
      function renumber() {
        const all = items();
        all.forEach(function (li, i) {
          li.querySelector(".rank-place").textContent = String(i + 1);
          li.draggable = !off;
          const select = li.querySelector("select");
          if (select) select.value = String(i + 1);
          li.querySelector("[data-rank-move=up]").disabled = off || i === 0;
          li.querySelector("[data-rank-move=down]").disabled = off || i === all.length - 1;
        });
      }
      function announce(li) {
        const all = items();
        status.textContent = t("rank_moved", { label: nameOf(li), n: all.indexOf(li) + 1, total: all.length });
      }
      return {
        order: function () { return items().map(function (li) { return Number(li.dataset.rankOption); }); },
        label: function () { return items().map(nameOf).join(" > "); },
        enable: function (on) { off = !on; renumber(); },
      };
    },
  };
  window.tallyKinds = Kinds;
  // The event pages announce their question's results the same calm way.
  Kinds.liveSummary = liveSummary;

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

    // The kind picker shows the fields of the kind picked (all of them
    // without the script; the server reads only the picked kind's).
    function showKind() {
      const picked = form.querySelector("[data-kind-pick]:checked");
      const kind = picked ? picked.value : "choice";
      form.querySelectorAll("[data-kind-only]").forEach(function (el) {
        el.hidden = el.dataset.kindOnly.split(" ").indexOf(kind) < 0;
      });
    }
    form.addEventListener("change", function (event) {
      if (event.target.matches("[data-kind-pick]")) showKind();
    });
    showKind();

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
    const entryList = root.querySelector("[data-entry-list]");
    if (entryList) enhanceHostEntries();

    // A word cloud's entries as the host sees them (hidden ones too), each
    // with a hide or show button; read with the token after every change.
    function enhanceHostEntries() {
      let reading = null;
      let again = false;
      root.addEventListener("tally:results", readEntries);
      tokenInput.addEventListener("change", readEntries);
      readEntries();
      entryList.addEventListener("click", function (event) {
        const b = event.target.closest("[data-entry-toggle]");
        if (!b) return;
        const hide = b.dataset.hide === "true";
        const text = b.dataset.text;
        const request = authorised(hide ? "POST" : "DELETE");
        request.headers["Content-Type"] = "application/json";
        request.body = JSON.stringify({ text: text });
        b.setAttribute("aria-busy", "true");
        fetch(base + "/hidden", request).then(function (res) {
          b.removeAttribute("aria-busy");
          if (!res.ok) return refused(res);
          return res.json().then(function (host) {
            drawEntries(host);
            say(t(hide ? "done_hidden" : "done_shown", { text: text }), "ok");
          });
        }, function () {
          b.removeAttribute("aria-busy");
          say(t("notice_network"), "warn");
        });
      });

      function readEntries() {
        if (!token()) return;
        if (reading) {
          again = true;
          return;
        }
        reading = fetch(base, authorised("GET")).then(function (res) {
          return res.ok ? res.json().then(drawEntries) : null;
        }, function () { /* the next change tries again */ }).finally(function () {
          reading = null;
          if (again) {
            again = false;
            setTimeout(readEntries, 300);
          }
        });
      }

      function drawEntries(host) {
        if (!host || !Array.isArray(host.entries)) return;
        Kinds.fill(entryList, host.entries.map(function (entry) {
          const li = Kinds.el("li", "entry-row" + (entry.hidden ? " is-hidden" : ""));
          li.append(Kinds.el("span", "entry-text", entry.text), Kinds.el("span", "entry-votes muted", votesText(entry.votes)));
          if (entry.hidden) li.appendChild(Kinds.el("span", "badge", t("entry_hidden")));
          const b = Kinds.el("button", "button secondary small-button", t(entry.hidden ? "entry_show" : "entry_hide"));
          b.type = "button";
          b.dataset.entryToggle = "";
          b.dataset.text = entry.text;
          b.dataset.hide = entry.hidden ? "false" : "true";
          b.setAttribute("aria-label", t(entry.hidden ? "entry_show_label" : "entry_hide_label", { text: entry.text }));
          li.appendChild(b);
          return li;
        }), "muted");
      }
    }

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

  // ---- Screen readers hear the results change at a calm pace. ----

  // A visually hidden polite live region under `root` that says the total
  // of the `current()` results (and the leading option) when they change:
  // the first change at once, then at most one announcement every
  // ANNOUNCE_EVERY_MS however fast the votes come, never one per vote.
  const ANNOUNCE_EVERY_MS = 5000;

  function liveSummary(root, current) {
    const region = document.createElement("p");
    region.className = "sr-only";
    region.setAttribute("aria-live", "polite");
    region.setAttribute("data-live-summary", "");
    root.appendChild(region);
    let last = 0;
    let timer = null;

    function text() {
      const r = current();
      if (!r) return "";
      let out = typeof r.total === "number"
        ? t(r.total === 1 ? "vote_one" : "vote_many", { n: NUMBERS.format(r.total) })
        : t("hidden_count");
      if (r.kind !== "wordcloud" && r.kind !== "scale" && Array.isArray(r.options)) {
        let top = null;
        r.options.forEach(function (o) {
          if (typeof o.votes === "number" && o.votes > 0 && (top === null || o.votes > top.votes)) top = o;
        });
        if (top && typeof top.label === "string") out += " · " + top.label;
      }
      return out;
    }

    function say() {
      timer = null;
      last = Date.now();
      const next = text();
      if (next !== region.textContent) region.textContent = next;
    }

    return {
      changed: function () {
        if (timer !== null) return;
        timer = setTimeout(say, Math.max(0, last + ANNOUNCE_EVERY_MS - Date.now()));
      },
    };
  }

  // ---- Poll page (and every page that follows a poll: manage, present). ----

  function followPoll(root) {
    const id = root.dataset.poll;
    const base = "/api/polls/" + encodeURIComponent(id);
    const FALLBACK = { ws: "sse", sse: "longpoll" };
    const POLL_EVERY_MS = 2000;
    const LONGPOLL_SECS = 25;
    const VOTE_ACK_MS = 8000;

    let results = JSON.parse(root.dataset.results);
    let version = results.version;
    let deleted = false;
    const view = findElements(root);
    const ranking = view.ranking ? Kinds.enhanceRanking(view.ranking) : null;
    const announcer = liveSummary(root, function () { return results; });

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
          button: row.querySelector("button[name=option], button[name=value], input[data-pick]"),
          label: row.querySelector(".result-label"),
          first: row.querySelector("[data-first]"),
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
        list: root.querySelector("ol.results"),
        cloud: root.querySelector("[data-cloud]"),
        entries: Array.from(root.querySelectorAll("[data-entry]")),
        mean: root.querySelector("[data-mean]"),
        median: root.querySelector("[data-median]"),
        ranking: root.querySelector("[data-ranking]"),
      };
    }

    function render() {
      const base = Kinds.barBase(results);
      results.options.forEach(function (option) {
        const el = view.rows.get(option.id);
        if (!el) return;
        const share = base > 0 && typeof option.votes === "number" ? (option.votes * 100) / base : 0;
        const shareText = share.toFixed(1);
        el.votes.textContent = Kinds.countText(results, option.votes);
        if (el.first) el.first.textContent = Kinds.firstText(option);
        el.percent.textContent = shareText + "%";
        el.fill.style.width = share + "%";
        el.bar.setAttribute("aria-valuenow", shareText);
        el.bar.setAttribute("aria-valuetext", Kinds.countText(results, option.votes) + ", " + shareText + "%");
      });
      if (results.kind === "ranking") {
        Kinds.sortRows(view.list, results.options, function (o) { return view.rows.has(o) ? view.rows.get(o).row : null; });
      }
      if (view.cloud) Kinds.drawCloud(view.cloud, results.entries);
      if (view.mean) view.mean.textContent = Kinds.statText(results.mean);
      if (view.median) view.median.textContent = Kinds.statText(results.median);
      view.total.textContent = votesText(results.total);
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
      announcer.changed();
    }

    // The same version with more in it: the counts the host's token (or a
    // vote just cast) may see, where the stream sent them hidden.
    function show(next) {
      if (deleted || !next || typeof next.version !== "number" || next.version < version) return;
      results = next;
      version = next.version;
      render();
      announcer.changed();
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
      view.entries.forEach(function (input) { input.disabled = true; });
      if (ranking) ranking.enable(false);
    }

    // A reopened poll takes votes again.
    function showOpen() {
      if (deleted || view.badge.textContent !== t("badge_closed")) return;
      view.badge.textContent = t("badge_open");
      view.badge.classList.add("open");
      view.rows.forEach(function (el) { if (el.button) el.button.disabled = false; });
      if (view.send) view.send.disabled = false;
      view.entries.forEach(function (input) { input.disabled = false; });
      if (ranking) ranking.enable(true);
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

    // One vote button ({"option":N}; a scale's {"value":N}), or "send":
    // the ticked boxes of a multi-choice poll ({"options":[…]}), the words
    // of a word cloud ({"entries":[…]}), the order of a ranking
    // ({"ranking":[…]}).
    function onVoteSubmit(event) {
      const button = event.submitter;
      // Without the submitter, let the form post itself (the fallback).
      if (!button || (button.name !== "option" && button.name !== "value" && !button.hasAttribute("data-send-vote"))) return;
      event.preventDefault();
      if (button.getAttribute("aria-busy") === "true" || deleted) return;
      const ballot = ballotOf(button);
      if (!ballot) return;
      const key = randomKey();
      button.setAttribute("aria-busy", "true");
      if (socket && socket.readyState === WebSocket.OPEN) {
        const timer = setTimeout(function () { resendOverHttp(key); }, VOTE_ACK_MS);
        pendingWs.set(key, { ballot: ballot, timer: timer });
        socket.send(JSON.stringify(Object.assign({ type: "vote", request_id: key }, ballot.body)));
      } else {
        voteOverHttp(key, ballot, 0);
      }
    }

    // The vote `button` sends, with what the notice names and the options
    // it marks as the visitor's; null (after saying why) when there is none.
    function ballotOf(button) {
      const sep = LANG === "en" ? ", " : "、";
      if (results.kind === "wordcloud") {
        const entries = view.entries.map(function (i) { return i.value.trim(); }).filter(Boolean);
        if (entries.length === 0) return notice(t("cloud_entry_first"), "warn");
        return { body: { entries: entries }, label: entries.join(sep), button: button, choice: null };
      }
      if (results.kind === "ranking" && ranking) {
        return { body: { ranking: ranking.order() }, label: ranking.label(), button: button, choice: null };
      }
      if (button.name === "value") {
        const value = Number(button.value);
        return { body: { value: value }, label: String(value), button: button, choice: [value] };
      }
      const option = button.hasAttribute("data-send-vote") ? picked() : [Number(button.value)];
      if (option.length === 0) return notice(t("choose_one_first"), "warn");
      if (option.length > maxChoices()) return notice(t("too_many_choices", { n: maxChoices() }), "warn");
      const body = maxChoices() > 1 ? { options: option } : { option: option[0] };
      return { body: body, label: labelOf(option), button: button, choice: option };
    }

    function wsVoteAnswered(key, error) {
      const pending = pendingWs.get(key);
      if (!pending) return;
      pendingWs.delete(key);
      clearTimeout(pending.timer);
      if (error) voteRefused(pending.ballot, error.code, error.message);
      else voteCounted(pending.ballot);
    }

    // The answer may never come over a socket that closed; the same key
    // over HTTP gets the first outcome if the vote did count.
    function resendOverHttp(key) {
      const pending = pendingWs.get(key);
      if (!pending) return;
      pendingWs.delete(key);
      clearTimeout(pending.timer);
      voteOverHttp(key, pending.ballot, 0);
    }

    function resendPendingOverHttp() {
      Array.from(pendingWs.keys()).forEach(resendOverHttp);
    }

    function voteOverHttp(key, ballot, attempt) {
      const retry = function () {
        if (attempt >= 5) return voteRefused(ballot, "network", t("notice_network"));
        setTimeout(function () { voteOverHttp(key, ballot, attempt + 1); }, backoff(attempt));
      };
      fetch(base + "/votes", {
        method: "POST",
        headers: { "Content-Type": "application/json", "Idempotency-Key": key },
        body: JSON.stringify(ballot.body),
        credentials: "same-origin",
        cache: "no-store",
      }).then(function (res) {
        if (res.ok) {
          return res.json().then(function (body) {
            show(body.results);
            voteCounted(ballot);
          });
        }
        if (res.status === 503 || res.status === 429) return retry();
        return res.json().catch(function () { return {}; }).then(function (body) {
          const err = (body && body.error) || {};
          voteRefused(ballot, err.code || "error", err.message || t("notice_refused"));
        });
      }, retry);
    }

    function done(ballot) {
      ballot.button.removeAttribute("aria-busy");
    }

    function labelOf(choice) {
      return choice.map(function (option) {
        const el = view.rows.get(option);
        return el ? el.label.textContent : "";
      }).join(LANG === "en" ? ", " : "、");
    }

    function voteCounted(ballot) {
      const wasHidden = results.results_hidden;
      done(ballot);
      if (ballot.choice) {
        remember(ballot.choice);
        markChoice(ballot.choice);
      }
      if (results.kind === "wordcloud") view.entries.forEach(function (input) { input.value = ""; });
      changeOffered(true);
      notice(t("notice_voted_for", { label: ballot.label }), "ok");
      // A stream opened before the vote was told to hide the counts;
      // a new one is told this visitor has voted.
      if (wasHidden && results.results === "after_vote") connect();
    }

    function voteRefused(ballot, code, message) {
      done(ballot);
      switch (code) {
        case "too_many_entries":
          notice(t("notice_too_many_entries"), "warn");
          break;
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
