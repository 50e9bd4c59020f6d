// tally: the script of the event pages — the audience page, the presenter,
// the host's manage page and the create page. Loaded from /static (the CSP
// allows no inline script) beside app.js, which keeps the chrome (language
// switch, copy buttons, theme, full-screen button); everything this script
// needs comes from data- attributes and the JSON API.
//
// An event is followed over WebSocket, SSE, long polling or short polling
// (?transport=), falling back ws → sse → longpoll like a poll page, with
// jittered exponential backoff. Every message is the whole event state, so
// a switch of question needs no second read. User text is only ever set
// with textContent.
"use strict";

(function () {
  const PHRASES = readJson(document.body.dataset.phrases) || {};
  const LANG = document.documentElement.lang || "en";
  const numbers = new Intl.NumberFormat(LANG === "en" ? "en-US" : LANG);

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

  const root = document.getElementById("event");
  if (!root) return;
  const page = root.dataset.eventPage;
  if (page === "new") return createPage(root);

  const id = root.dataset.event;
  const api = "/api/events/" + encodeURIComponent(id);
  const notices = root.querySelector("[data-notices]");
  const tokenInput = root.querySelector("#admin-token");
  const hashToken = new URLSearchParams(location.hash.slice(1)).get("token") || "";
  let state = readJson(root.dataset.state);
  let deleted = false;

  const view = {
    lobby: root.querySelector("[data-lobby]"),
    question: root.querySelector("[data-question]"),
    questionOf: root.querySelector("[data-question-of]"),
    text: root.querySelector("[data-question-text]"),
    options: root.querySelector("[data-options]"),
    total: root.querySelector("[data-total]"),
    badge: root.querySelector("[data-state-badge]"),
    hiddenNote: root.querySelector("[data-hidden-note]"),
    chooseUpTo: root.querySelector("[data-choose-up-to]"),
    form: root.querySelector("[data-vote-form]"),
    sendRow: root.querySelector("[data-send-row]"),
    send: root.querySelector("[data-send-vote]"),
    conn: root.querySelector("[data-conn]"),
    transport: root.querySelector("[data-transport-used]"),
    cloud: root.querySelector("[data-cloud]"),
    stats: root.querySelector("[data-scale-stats]"),
    mean: root.querySelector("[data-mean]"),
    median: root.querySelector("[data-median]"),
    minLabel: root.querySelector("[data-min-label]"),
    maxLabel: root.querySelector("[data-max-label]"),
    kindInput: root.querySelector("[data-kind-input]"),
  };
  // Drawing and input of the question kinds, shared with app.js.
  const K = window.tallyKinds;
  // Screen readers hear the question's results change at a calm pace (at
  // most one announcement every few seconds), never one per vote.
  const announcer = K && K.liveSummary && page !== "manage"
    ? K.liveSummary(root, function () { return state && currentQuestion() ? state.now : null; })
    : null;
  // The question the option rows were built for.
  let shownQuestion = null;
  const rows = new Map();
  // The ranking input of the question on screen (audience), if it is one.
  let ranking = null;

  function token() {
    return tokenInput ? tokenInput.value.trim() : hashToken;
  }

  function say(text, kind) {
    if (!notices) return;
    const p = document.createElement("p");
    p.className = "notice" + (kind ? " " + kind : "");
    p.setAttribute("role", "status");
    p.textContent = text;
    notices.replaceChildren(p);
  }

  function votesText(n) {
    if (typeof n !== "number") return t("hidden_count");
    return t(n === 1 ? "vote_one" : "vote_many", { n: numbers.format(n) });
  }

  // ---- Cursors: "event.poll.qa", ordered event first, the board last. ----

  function cursorOf(s) {
    const parts = String((s && s.cursor) || "0.0.0").split(".");
    return [Number(parts[0]) || 0, Number(parts[1]) || 0, Number(parts[2]) || 0];
  }

  function compare(a, b) {
    const x = cursorOf(a);
    const y = cursorOf(b);
    return x[0] - y[0] || x[1] - y[1] || x[2] - y[2];
  }

  // A state from the stream: only a newer one counts. A polled one may
  // carry this visitor's upvotes beside it.
  function apply(next) {
    if (deleted || !next || typeof next.cursor !== "string") return;
    if (Array.isArray(next.upvoted)) qa.marks(next.upvoted, true);
    if (state && compare(next, state) <= 0) return;
    state = next;
    render();
  }

  // The same state with more in it (counts the token or a vote may see),
  // or a newer one: an admin reply, a fetch.
  function show(next) {
    if (deleted || !next || typeof next.cursor !== "string") return;
    if (state && compare(next, state) < 0) return;
    state = next;
    render();
  }

  // ---- Rendering the current question ----

  function currentQuestion() {
    if (!state || state.current === null || state.current === undefined) return null;
    return state.questions[state.current] || null;
  }

  // Counts on this page: the host's page always has them (with the
  // token); elsewhere only while the screen shows them.
  function countsShown(now) {
    if (!now || now.results_hidden) return false;
    return page === "manage" || state.results_shown;
  }

  function render() {
    if (!state) return;
    root.querySelectorAll("[data-event-title]").forEach(function (el) { el.textContent = state.title; });
    root.querySelectorAll("[data-event-code]").forEach(function (el) { el.textContent = spacedCode(state.code); });
    const q = currentQuestion();
    const now = state.now;
    if (view.lobby) view.lobby.hidden = !!q;
    if (view.question) view.question.hidden = !q;
    if (q) {
      if (view.questionOf) view.questionOf.textContent = t("ev_question_of", { n: state.current + 1, total: state.questions.length });
      if (view.text) view.text.textContent = (now && now.question) || q.question;
      renderNow(now, q);
      if (announcer) announcer.changed();
    } else {
      shownQuestion = null;
    }
    if (page === "manage") renderManage();
    if (page === "present") wantCounts();
    qa.render();
    root.dispatchEvent(new CustomEvent("tally:event", { detail: state }));
  }

  function spacedCode(code) {
    const c = String(code || "");
    return c.length === 6 ? c.slice(0, 3) + " " + c.slice(3) : c;
  }

  function renderNow(now, q) {
    if (!now || !Array.isArray(now.options)) {
      // A kind this page does not draw yet: its own poll page does.
      if (view.options) view.options.replaceChildren();
      shownQuestion = null;
      return;
    }
    if (shownQuestion !== now.id) buildRows(now);
    const counts = countsShown(now);
    const total = counts ? now.total : null;
    const base = counts ? K.barBase(now) : 0;
    now.options.forEach(function (option) {
      const el = rows.get(option.id);
      if (!el) return;
      const votes = counts ? option.votes : null;
      const share = base > 0 && typeof votes === "number" ? (votes * 100) / base : 0;
      const shareText = share.toFixed(1);
      el.votes.textContent = K.countText(now, votes);
      if (el.first) el.first.textContent = counts ? K.firstText(option) : "";
      el.percent.textContent = shareText + "%";
      el.fill.style.width = share + "%";
      el.bar.setAttribute("aria-valuenow", shareText);
      el.bar.setAttribute("aria-valuetext", K.countText(now, votes) + ", " + shareText + "%");
      if (el.button) el.button.disabled = now.closed;
    });
    renderKind(now, counts);
    if (view.options) view.options.classList.toggle("results-hidden", !counts);
    if (view.total) view.total.textContent = votesText(total);
    if (view.hiddenNote) {
      let why = null;
      if (!counts) {
        if (page !== "manage" && !state.results_shown) why = t("ev_results_hidden");
        else if (now.results === "after_vote") why = t("hidden_until_vote");
        else why = t("hidden_until_close");
      }
      view.hiddenNote.hidden = !why;
      view.hiddenNote.textContent = why || "";
    }
    if (view.badge) {
      view.badge.textContent = now.closed ? t("badge_closed") : t("badge_open");
      view.badge.classList.toggle("open", !now.closed);
    }
    if (view.chooseUpTo) {
      view.chooseUpTo.hidden = !(now.max_choices > 1);
      view.chooseUpTo.textContent = t("choose_up_to", { n: now.max_choices });
    }
    if (view.sendRow) view.sendRow.hidden = !(now.max_choices > 1 || now.kind === "wordcloud" || now.kind === "ranking");
    if (view.send) view.send.disabled = now.closed;
    limitPicks();
  }

  // What a kind adds to the rows: a ranking's order by points, a word
  // cloud, a scale's mean and median; the inputs follow open and closed.
  function renderKind(now, counts) {
    if (now.kind === "ranking") {
      K.sortRows(view.options, now.options, function (o) { return rows.has(o) ? rows.get(o).row : null; });
    }
    if (view.cloud) {
      view.cloud.hidden = now.kind !== "wordcloud";
      if (now.kind !== "wordcloud" || !counts) view.cloud.replaceChildren();
      else K.drawCloud(view.cloud, now.entries);
    }
    if (view.stats) {
      view.stats.hidden = now.kind !== "scale";
      const scale = now.scale || {};
      if (view.mean) view.mean.textContent = K.statText(counts ? now.mean : null);
      if (view.median) view.median.textContent = K.statText(counts ? now.median : null);
      if (view.minLabel) view.minLabel.textContent = scale.min_label || "";
      if (view.maxLabel) view.maxLabel.textContent = scale.max_label || "";
    }
    if (view.kindInput) {
      view.kindInput.querySelectorAll("[data-entry]").forEach(function (input) { input.disabled = now.closed; });
    }
    if (ranking) ranking.enable(!now.closed);
  }

  // The audience's input of a word cloud (its entry fields) or a ranking
  // (the options to put in order), built with the rows; "send" follows it.
  function buildKindInput(now) {
    ranking = null;
    if (!view.kindInput) return;
    view.kindInput.replaceChildren();
    if (page !== "audience") return;
    if (now.kind === "wordcloud") {
      const fields = K.el("div", "entry-fields");
      for (let i = 0; i < (now.max_entries || 1); i++) {
        const label = K.el("label");
        const input = K.el("input");
        input.type = "text";
        input.name = "entry";
        input.maxLength = 60;
        input.autocomplete = "off";
        input.setAttribute("data-entry", "");
        label.append(t("cloud_entry"), " ", input);
        fields.appendChild(label);
      }
      view.kindInput.appendChild(fields);
    } else if (now.kind === "ranking") {
      const hint = K.el("p", "small muted", t("rank_hint"));
      hint.id = "ev-rank-hint";
      const list = K.el("ol", "ranking-form");
      list.setAttribute("data-ranking", "");
      list.setAttribute("aria-describedby", hint.id);
      now.options.forEach(function (option) {
        const li = K.el("li", "rank-item");
        li.dataset.rankOption = String(option.id);
        li.appendChild(K.el("span", "rank-name", option.label));
        list.appendChild(li);
      });
      view.kindInput.append(hint, list);
      ranking = K.enhanceRanking(list);
    }
    // "Send" right under a word cloud's fields or a ranking, else under the options.
    if (view.sendRow) view.form.insertBefore(view.sendRow, now.kind === "wordcloud" || now.kind === "ranking" ? view.options : null);
  }

  // The rows of a question, built when the question on screen changes.
  function buildRows(now) {
    shownQuestion = now.id;
    rows.clear();
    if (!view.options) return;
    const voting = page === "audience";
    const buttons = voting && now.kind !== "ranking";
    const multi = now.max_choices > 1;
    buildKindInput(now);
    const chosen = voting ? storedChoice(now.id) : [];
    const items = now.options.map(function (option) {
      const li = document.createElement("li");
      li.className = "result";
      li.dataset.option = String(option.id);
      const labelId = "ev-option-" + option.id + "-label";
      const head = document.createElement("div");
      head.className = "result-head";
      const label = document.createElement("span");
      label.className = "result-label";
      label.id = labelId;
      label.textContent = option.label;
      head.appendChild(label);
      let mine = null;
      if (voting) {
        mine = document.createElement("span");
        mine.className = "mine";
        mine.textContent = t("your_vote");
        head.appendChild(mine);
      }
      const numbersEl = document.createElement("span");
      numbersEl.className = "result-numbers";
      const votes = document.createElement("span");
      votes.setAttribute("data-votes", "");
      const percent = document.createElement("span");
      percent.className = "percent";
      percent.setAttribute("data-percent", "");
      numbersEl.append(votes, " ");
      const first = now.kind === "ranking" ? K.el("span", "first") : null;
      if (first) numbersEl.append(first, " ");
      numbersEl.appendChild(percent);
      head.appendChild(numbersEl);
      const bar = document.createElement("div");
      bar.className = "bar";
      bar.setAttribute("role", "meter");
      bar.setAttribute("aria-labelledby", labelId);
      bar.setAttribute("aria-valuemin", "0");
      bar.setAttribute("aria-valuemax", "100");
      const fill = document.createElement("div");
      fill.className = "bar-fill";
      bar.appendChild(fill);
      li.append(head, bar);
      let button = null;
      if (buttons) {
        const sr = document.createElement("span");
        sr.className = "sr-only";
        sr.textContent = t("vote_for", { label: option.label });
        if (multi) {
          const pick = document.createElement("label");
          pick.className = "pick";
          button = document.createElement("input");
          button.type = "checkbox";
          button.value = String(option.id);
          button.setAttribute("data-pick", "");
          const text = document.createElement("span");
          text.append(t("vote"), sr);
          pick.append(button, text);
          li.appendChild(pick);
        } else {
          button = document.createElement("button");
          button.type = "submit";
          button.className = "button vote";
          button.name = now.kind === "scale" ? "value" : "option";
          button.value = String(option.id);
          button.append(t("vote"), sr);
          li.appendChild(button);
        }
      }
      const el = { row: li, votes: votes, percent: percent, bar: bar, fill: fill, mine: mine, button: button, label: option.label, first: first };
      rows.set(option.id, el);
      return li;
    });
    view.options.classList.toggle("multi", multi);
    view.options.replaceChildren.apply(view.options, items);
    markChoice(chosen);
  }

  // ---- The visitor's own choice, kept per question (as on poll pages) ----

  function storedChoice(qid) {
    let stored = null;
    try { stored = readJson(localStorage.getItem("tally:choice:" + qid)); } catch (_) { /* private mode */ }
    if (typeof stored === "number") stored = [stored];
    return Array.isArray(stored) ? stored : [];
  }

  function remember(qid, choice) {
    try { localStorage.setItem("tally:choice:" + qid, JSON.stringify(choice)); } catch (_) { /* private mode */ }
  }

  function markChoice(choice) {
    rows.forEach(function (el, option) {
      const mine = choice.indexOf(option) >= 0;
      el.row.classList.toggle("chosen", mine);
      if (el.mine) el.mine.hidden = !mine;
      if (el.button && el.button.type === "checkbox") el.button.checked = mine;
    });
  }

  function maxChoices() {
    return (state && state.now && state.now.max_choices) || 1;
  }

  function limitPicks() {
    if (maxChoices() < 2 || !state.now || state.now.closed) return;
    const ticked = picked().length;
    rows.forEach(function (el) {
      if (el.button && el.button.type === "checkbox") el.button.disabled = !el.button.checked && ticked >= maxChoices();
    });
  }

  function picked() {
    const out = [];
    rows.forEach(function (el, option) {
      if (el.button && el.button.type === "checkbox" && el.button.checked) out.push(option);
    });
    return out;
  }

  // ---- Audience Q&A: the board inside the state's "qa" ----
  //
  // The audience posts, upvotes and sees its own questions that wait for
  // approval; the presenter shows the board large (Q); the host moderates.
  // The visitor's upvotes come once from the stream ("upvoted"), then from
  // the replies to their own upvotes; their own questions' ids (and the
  // ones waiting) are kept in localStorage, per event.

  const qa = qaBoard();

  function qaBoard() {
    const box = root.querySelector("[data-qa]");
    if (!box) return { render: function () {}, marks: function () {} };
    // The parts a page has ([data-qa-board], [data-qa-empty]…), null if not.
    const part = {};
    ["board", "empty", "public", "more", "held", "held-empty", "moderation"].forEach(function (name) {
      part[name] = box.querySelector("[data-qa-" + name + "]");
    });
    const board = part.board;
    const tabCount = root.querySelector("[data-qa-tab-count]");
    const MAX_TEXT = 280;
    const MAX_NAME = 40;
    const ON_SCREEN = 6;
    const MINE = "tally:qa:mine:" + id;
    const WAITING = "tally:qa:waiting:" + id;
    const upvoted = new Set();
    let busy = 0;
    let changedAt = 0;
    let shownKey = "";
    // The host's held questions, as of the last state read with the token.
    let held = [];
    let heldAskedFor = -1;

    if (page === "audience") {
      tabs();
      postForm();
      board.addEventListener("click", function (event) {
        const button = event.target.closest("button[data-qa-act=upvote]");
        if (button && !deleted) toggle(Number(button.dataset.qaId), button);
      });
    } else if (page === "manage") {
      box.addEventListener("click", function (event) {
        const button = event.target.closest("button[data-qa-act]");
        if (button && !deleted) moderate(Number(button.dataset.qaId), button.dataset.qaAct, button.dataset.qaDone);
      });
    }

    function load(name) {
      let v = null;
      try { v = readJson(localStorage.getItem(name)); } catch (_) { /* private mode */ }
      return Array.isArray(v) ? v : [];
    }

    function store(name, value) {
      try { localStorage.setItem(name, JSON.stringify(value)); } catch (_) { /* private mode */ }
    }

    function chars(s) {
      return Array.from(s).length;
    }

    // Upvotes from the stream; a polled reply's are skipped while this
    // page's own upvote replies are newer than it may be.
    function marks(ids, polled) {
      if (!Array.isArray(ids)) return;
      if (polled && (busy > 0 || Date.now() - changedAt < 3000)) return;
      upvoted.clear();
      ids.forEach(function (n) { upvoted.add(n); });
      render();
    }

    // The public board in order: the pinned question, then the others.
    function listed() {
      const b = state && state.qa;
      if (!b) return [];
      const out = b.pinned ? [b.pinned] : [];
      (b.questions || []).forEach(function (q) {
        if (!b.pinned || q.id !== b.pinned.id) out.push(q);
      });
      return out;
    }

    // The visitor's own questions still waiting, dropped once public.
    function waiting(shown) {
      const on = new Set(shown.map(function (q) { return q.id; }));
      const stored = load(WAITING);
      const left = stored.filter(function (q) { return q && typeof q.id === "number" && !on.has(q.id); });
      if (left.length !== stored.length) store(WAITING, left);
      return left;
    }

    function render() {
      if (!state || !state.qa) return;
      const b = state.qa;
      const shown = listed();
      const countText = t(b.public === 1 ? "qa_public_one" : "qa_public_many", { n: numbers.format(b.public || 0) });
      if (part.public) part.public.textContent = "(" + countText + ")";
      if (tabCount) tabCount.textContent = b.public ? "(" + numbers.format(b.public) + ")" : "";
      if (part.moderation) part.moderation.textContent = t(b.moderation ? "qa_moderation_on" : "qa_moderation_off");
      let items = shown;
      let rest = 0;
      if (page === "audience") items = waiting(shown).concat(shown);
      if (page === "present") {
        items = shown.slice(0, ON_SCREEN);
        rest = Math.max(0, (b.public || 0) - items.length);
      }
      if (page === "manage") heldFromHost(b, shown);
      if (part.more) {
        part.more.hidden = rest === 0;
        part.more.textContent = t("qa_more", { n: numbers.format(rest) });
      }
      const own = page === "audience" ? load(MINE) : [];
      const key = JSON.stringify([items, held, own, Array.from(upvoted), deleted]);
      if (key === shownKey) return;
      shownKey = key;
      const focused = document.activeElement && box.contains(document.activeElement) && document.activeElement.dataset.qaId
        ? document.activeElement : null;
      const focusedAt = focused ? indexIn(focused) : null;
      part.empty.hidden = items.length > 0;
      board.replaceChildren.apply(board, items.map(function (q) { return itemEl(q, own); }));
      if (part.held) {
        part["held-empty"].hidden = held.length > 0;
        part.held.replaceChildren.apply(part.held, held.map(function (q) { return itemEl(q, own); }));
      }
      if (focused) refocus(focused.dataset.qaAct, focused.dataset.qaId, focusedAt);
    }

    // The host's view carries the held questions; a stream state does
    // not: keep the last ones (less any now public) and ask again.
    function heldFromHost(b, shown) {
      if (Array.isArray(b.held)) {
        held = b.held;
        heldAskedFor = b.version;
        return;
      }
      const on = new Set(shown.map(function (q) { return q.id; }));
      held = held.filter(function (q) { return !on.has(q.id); });
      if (b.version !== heldAskedFor && token()) {
        heldAskedFor = b.version;
        refreshWithToken();
      }
    }

    function indexIn(button) {
      const li = button.closest("li");
      return { list: li.parentElement, at: Array.prototype.indexOf.call(li.parentElement.children, li) };
    }

    // Focus stays on the same button of the same question wherever it
    // moved, else on a button of the same question, else on the one now
    // in its place.
    function refocus(act, qid, was) {
      const sel = "button[data-qa-id=\"" + CSS.escape(qid) + "\"]";
      let next = box.querySelector(sel + "[data-qa-act=\"" + CSS.escape(act) + "\"]:not(:disabled)") ||
        box.querySelector(sel + ":not(:disabled)");
      if (!next && was) {
        const li = was.list.children[Math.min(was.at, was.list.children.length - 1)];
        next = li ? li.querySelector("button:not(:disabled)") : null;
      }
      if (next) next.focus();
    }

    function badge(text, kind) {
      return K.el("span", "badge qa-badge" + (kind ? " " + kind : ""), text);
    }

    function itemEl(q, own) {
      const li = K.el("li", "qa-item");
      li.dataset.qaId = String(q.id);
      const isMine = own.indexOf(q.id) >= 0;
      li.classList.toggle("pinned", q.pinned);
      li.classList.toggle("answered", q.status === "answered");
      li.classList.toggle("held", q.status === "pending" || q.status === "hidden");
      li.classList.toggle("mine", isMine);
      const textId = "qa-q-" + q.id;
      const votes = votesText(q.votes);
      let count;
      if (page === "audience" && q.status !== "pending") {
        count = K.el("button", "qa-up");
        count.type = "button";
        count.dataset.qaAct = "upvote";
        count.dataset.qaId = String(q.id);
        const on = upvoted.has(q.id);
        count.setAttribute("aria-pressed", String(on));
        count.setAttribute("aria-label", t("qa_upvote") + ", " + votes);
        count.setAttribute("aria-describedby", textId);
        count.disabled = isMine || deleted;
        if (isMine) count.title = t("qa_own");
        const arrow = K.el("span", "qa-arrow", "▲");
        arrow.setAttribute("aria-hidden", "true");
        count.append(arrow, K.el("span", "qa-n", numbers.format(q.votes)));
      } else {
        count = K.el("span", "qa-up qa-count-only");
        count.append(K.el("span", "qa-n", numbers.format(q.votes)), K.el("span", "sr-only", " " + votes));
        count.firstChild.setAttribute("aria-hidden", "true");
      }
      const body = K.el("div", "qa-body");
      const text = K.el("p", "qa-text", q.text);
      text.id = textId;
      const meta = K.el("p", "qa-meta");
      meta.appendChild(K.el("span", "qa-name" + (q.name ? "" : " muted"), q.name || t("qa_anonymous")));
      if (q.pinned) meta.appendChild(badge(t("qa_pinned"), "open"));
      if (q.status === "answered") meta.appendChild(badge(t("qa_answered")));
      if (q.status === "pending") meta.appendChild(badge(t("qa_waiting"), "qa-waiting"));
      if (q.status === "hidden") meta.appendChild(badge(t("qa_hidden")));
      if (isMine) meta.appendChild(badge(t("qa_yours")));
      body.append(text, meta);
      if (page === "manage") body.appendChild(actionsEl(q));
      li.append(count, body);
      return li;
    }

    // The host's buttons: what each status allows.
    function actionsEl(q) {
      const row = K.el("div", "qa-actions");
      const specs = [];
      if (q.status === "pending") specs.push(["approve", t("qa_approve")]);
      if (q.status !== "hidden") {
        specs.push(["pin", q.pinned ? t("qa_unpin") : t("qa_pin")]);
        if (q.status !== "pending") specs.push(["answer", t("qa_answer"), q.status === "answered"]);
        specs.push(["hide", t("qa_hide")]);
      }
      specs.forEach(function (spec) {
        const b = K.el("button", "button small-button " + (spec[0] === "approve" ? "primary" : "secondary"), spec[1]);
        b.type = "button";
        b.dataset.qaAct = spec[0];
        b.dataset.qaId = String(q.id);
        b.dataset.qaDone = spec[1];
        b.disabled = !!spec[2] || deleted;
        if (spec[0] === "pin") b.setAttribute("aria-pressed", String(q.pinned));
        b.appendChild(K.el("span", "sr-only", " " + t("qa_item_n", { n: q.id })));
        row.appendChild(b);
      });
      return row;
    }

    function moderate(qid, act, done) {
      admin("POST", "/qa/" + encodeURIComponent(qid) + "/" + act, undefined, t("qa_done_moderated", { what: done })).then(function (reply) {
        if (reply) refreshWithToken();
      });
    }

    function toggle(qid, button) {
      if (button.getAttribute("aria-busy") === "true") return;
      const up = !upvoted.has(qid);
      button.setAttribute("aria-busy", "true");
      busy++;
      fetch(api + "/qa/" + encodeURIComponent(qid) + "/upvote", {
        method: up ? "POST" : "DELETE",
        credentials: "same-origin",
        cache: "no-store",
      }).then(function (res) {
        return res.json().catch(function () { return {}; }).then(function (body) {
          if (res.ok) {
            changedAt = Date.now();
            if (body.upvoted) upvoted.add(qid);
            else upvoted.delete(qid);
            return;
          }
          const code = ((body && body.error) || {}).code;
          if (code === "own_question") {
            store(MINE, load(MINE).concat([qid]));
            say(t("qa_own"), "warn");
          } else if (code === "question_not_found") say(t("qa_gone"), "warn");
          else say(((body && body.error) || {}).message || t("notice_refused"), "warn");
        });
      }, function () { say(t("notice_network"), "warn"); }).finally(function () {
        busy--;
        button.removeAttribute("aria-busy");
        render();
      });
    }

    // The audience page's two tabs: the question on screen and the Q&A.
    function tabs() {
      const list = root.querySelector("[data-qa-tabs]");
      const buttons = Array.from(list.querySelectorAll("[role=tab]"));
      const KEY = "tally:tab:" + id;
      function select(name, focus) {
        buttons.forEach(function (b) {
          const on = b.dataset.tab === name;
          b.setAttribute("aria-selected", String(on));
          b.tabIndex = on ? 0 : -1;
          if (on && focus) b.focus();
        });
        root.querySelectorAll("[data-panel]").forEach(function (p) { p.hidden = p.dataset.panel !== name; });
        try { sessionStorage.setItem(KEY, name); } catch (_) { /* private mode */ }
      }
      list.addEventListener("click", function (event) {
        const b = event.target.closest("[role=tab]");
        if (b) select(b.dataset.tab, false);
      });
      list.addEventListener("keydown", function (event) {
        const at = buttons.indexOf(document.activeElement);
        let to = -1;
        if (event.key === "ArrowRight") to = (at + 1) % buttons.length;
        else if (event.key === "ArrowLeft") to = (at - 1 + buttons.length) % buttons.length;
        else if (event.key === "Home") to = 0;
        else if (event.key === "End") to = buttons.length - 1;
        if (to < 0 || at < 0) return;
        event.preventDefault();
        select(buttons[to].dataset.tab, true);
      });
      let first = location.hash === "#qa" ? "qa" : null;
      try { first = first || sessionStorage.getItem(KEY); } catch (_) { /* private mode */ }
      select(first === "qa" ? "qa" : "poll", false);
    }

    function postForm() {
      const form = box.querySelector("[data-qa-form]");
      const text = form.querySelector("[data-qa-text]");
      const name = form.querySelector("[data-qa-name]");
      const count = form.querySelector("[data-qa-count]");
      const ask = form.querySelector("[data-qa-ask]");
      const errors = {};
      form.querySelectorAll("[data-qa-error]").forEach(function (p) { errors[p.dataset.qaError] = p; });
      const fields = { text: text, name: name };
      let waitTimer = null;

      function counted() {
        const n = chars(text.value.trim());
        count.textContent = t("qa_count", { n: numbers.format(n) });
        count.classList.toggle("over", n > MAX_TEXT);
        if (n <= MAX_TEXT && errors.text.dataset.why === "long") fieldError("text", null);
        if (chars(name.value.trim()) <= MAX_NAME && errors.name.dataset.why === "long") fieldError("name", null);
      }

      function fieldError(which, message, why) {
        const p = errors[which];
        p.hidden = !message;
        p.textContent = message || "";
        p.dataset.why = message ? why || "" : "";
        if (fields[which]) {
          if (message) fields[which].setAttribute("aria-invalid", "true");
          else fields[which].removeAttribute("aria-invalid");
        }
      }

      function waitFor(seconds) {
        clearInterval(waitTimer);
        let left = Math.max(1, Math.ceil(seconds));
        ask.disabled = true;
        fieldError("form", t("qa_err_wait", { s: left }), "wait");
        waitTimer = setInterval(function () {
          left--;
          if (left > 0 && !deleted) return fieldError("form", t("qa_err_wait", { s: left }), "wait");
          clearInterval(waitTimer);
          fieldError("form", null);
          ask.disabled = deleted;
        }, 1000);
      }

      text.addEventListener("input", counted);
      name.addEventListener("input", counted);
      counted();

      form.addEventListener("submit", function (event) {
        event.preventDefault();
        if (deleted || ask.disabled) return;
        const body = { text: text.value.trim() };
        const who = name.value.trim();
        if (who) body.name = who;
        fieldError("text", null);
        fieldError("name", null);
        fieldError("form", null);
        let bad = null;
        if (!body.text) bad = ["text", t("qa_err_text_empty")];
        else if (chars(body.text) > MAX_TEXT) bad = ["text", t("qa_err_text_long"), "long"];
        else if (chars(who) > MAX_NAME) bad = ["name", t("qa_err_name_long"), "long"];
        if (bad) {
          fieldError(bad[0], bad[1], bad[2]);
          return fields[bad[0]].focus();
        }
        ask.disabled = true;
        fetch(api + "/qa", {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify(body),
          credentials: "same-origin",
          cache: "no-store",
        }).then(function (res) {
          return res.json().catch(function () { return {}; }).then(function (answer) {
            ask.disabled = false;
            if (res.status === 201 && answer.question) return posted(answer.question);
            const err = (answer && answer.error) || {};
            if (res.status === 429) return waitFor(Number(res.headers.get("Retry-After")) || 10);
            if (err.code === "too_many_questions") return fieldError("form", t("qa_err_full"));
            if (res.status === 422 && /name/.test(err.message || "")) return fieldError("name", err.message);
            if (res.status === 422) return fieldError("text", err.message);
            fieldError("form", err.message || t("notice_refused"));
          });
        }, function () {
          ask.disabled = false;
          fieldError("form", t("notice_network"));
        });
      });

      function posted(item) {
        store(MINE, load(MINE).concat([item.id]));
        if (item.status === "pending") store(WAITING, load(WAITING).concat([item]));
        text.value = "";
        counted();
        say(t(item.status === "pending" ? "qa_done_pending" : "qa_done_posted"), "ok");
        shownKey = "";
        render();
        text.focus();
      }
    }

    return { render: render, marks: marks };
  }

  // ---- Following the event ----

  const follower = follow();

  function follow() {
    const FALLBACK = { ws: "sse", sse: "longpoll" };
    const LONGPOLL_SECS = 25;
    const POLL_EVERY_MS = 2000;
    let transport = pickSupported(root.dataset.transport);
    let generation = 0;
    let closeCurrent = function () {};
    let failures = 0;
    let retryTimer = null;
    const everOpened = {};
    let etag = null;

    window.addEventListener("online", function () {
      if (retryTimer !== null) reconnectSoon(1000);
    });
    window.addEventListener("pagehide", function () { stop(); });
    window.addEventListener("pageshow", function (event) {
      if (event.persisted && !deleted) connect();
    });
    connect();
    return { stop: stop };

    function pickSupported(wanted) {
      let name = ["ws", "sse", "longpoll", "poll"].indexOf(wanted) >= 0 ? wanted : "ws";
      if (name === "ws" && !("WebSocket" in window)) name = "sse";
      if (name === "sse" && !("EventSource" in window)) name = "longpoll";
      return name;
    }

    function showTransport() {
      if (!view.transport) return;
      const asked = root.dataset.transport;
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
      root.dataset.transportOpen = transport;
      setConn("live", t("conn_live"));
    }

    function backoff(attempt) {
      return 100 + Math.random() * Math.min(30000, 1000 * Math.pow(2, attempt));
    }

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

    function checkStillExists() {
      fetch(api, { cache: "no-store" }).then(function (res) {
        if (res.status === 404) ended();
      }, function () { /* offline: the retry will tell */ });
    }

    function openWs(gen) {
      const scheme = location.protocol === "https:" ? "wss:" : "ws:";
      const ws = new WebSocket(scheme + "//" + location.host + api + "/ws");
      let wasOpen = false;
      ws.onopen = function () {
        wasOpen = true;
        opened(gen);
      };
      ws.onmessage = function (event) {
        const msg = readJson(event.data);
        if (!msg) return;
        if (msg.type === "event") apply(msg);
        else if (msg.type === "upvoted") qa.marks(msg.ids, false);
        else if (msg.type === "deleted") ended();
      };
      ws.onclose = function () { lost(gen, wasOpen); };
      return function () {
        ws.onclose = null;
        ws.onmessage = null;
        ws.close(1000);
      };
    }

    function openSse(gen) {
      const es = new EventSource(api + "/events");
      let wasOpen = false;
      es.onopen = function () {
        wasOpen = true;
        opened(gen);
      };
      es.addEventListener("state", function (event) { apply(readJson(event.data)); });
      es.addEventListener("upvoted", function (event) { qa.marks((readJson(event.data) || {}).ids, false); });
      es.addEventListener("deleted", function () { ended(); });
      es.onerror = function () {
        es.close();
        lost(gen, wasOpen);
      };
      return function () { es.close(); };
    }

    function sleep(ms) {
      return new Promise(function (resolve) { setTimeout(resolve, ms); });
    }

    function fetchFor(url, options, timeoutMs) {
      const controller = new AbortController();
      const timer = setTimeout(function () { controller.abort(); }, timeoutMs);
      const request = fetch(url, Object.assign({ signal: controller.signal, cache: "no-store" }, options));
      return { cancel: function () { controller.abort(); }, response: request.finally(function () { clearTimeout(timer); }) };
    }

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
          if (res.status === 404) return ended();
          if (res.status !== 200 && res.status !== idleStatus) return lost(gen, wasOpen);
          if (!wasOpen) {
            wasOpen = true;
            opened(gen);
          }
          if (res.status === 200) {
            etag = res.headers.get("ETag") || etag;
            apply(await res.json().catch(function () { return null; }));
          }
          await pause(res.status, Date.now() - started);
        }
      })();
      return function () { if (inflight) inflight.cancel(); };
    }

    function runLongPoll(gen) {
      return runPolling(gen, function (wasOpen) {
        return {
          url: wasOpen && state
            ? api + "/changes?since=" + encodeURIComponent(state.cursor) + "&timeout=" + LONGPOLL_SECS
            : api + "/changes",
          options: {},
          timeoutMs: (LONGPOLL_SECS + 15) * 1000,
        };
      }, 204, function (status, tookMs) {
        return status === 204 && tookMs < 1000 ? sleep(Math.random() * 1000) : null;
      });
    }

    function runShortPoll(gen) {
      return runPolling(gen, function () {
        return {
          url: api,
          options: etag ? { headers: { "If-None-Match": etag } } : {},
          timeoutMs: 10000,
        };
      }, 304, function () { return sleep(POLL_EVERY_MS); });
    }
  }

  function setConn(kind, text) {
    if (!view.conn) return;
    view.conn.dataset.state = kind;
    view.conn.textContent = text;
  }

  function ended() {
    if (deleted) return;
    deleted = true;
    follower.stop();
    setConn("ended", t("ev_deleted"));
    say(t("ev_deleted"), "warn");
    root.querySelectorAll("button[data-act], [data-options] button, [data-options] input, [data-send-vote], [data-kind-input] input, [data-kind-input] button, [data-qa] button, [data-qa] textarea, [data-qa] input").forEach(function (b) {
      b.disabled = true;
    });
  }

  // ---- Host requests (manage and present) ----

  function authorised(method, body) {
    const options = {
      method: method,
      headers: { Authorization: "Bearer " + token() },
      cache: "no-store",
      credentials: "same-origin",
    };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    return options;
  }

  function refused(res) {
    return res.json().catch(function () { return {}; }).then(function (body) {
      const err = (body && body.error) || {};
      if (res.status === 403) say(t("ev_wrong_token"), "warn");
      else if (res.status === 401) say(t("ev_missing_token"), "warn");
      else if (err.code === "has_votes") say(t("ev_has_votes"), "warn");
      else say(t("manage_failed", { message: err.message || res.status }), "warn");
      return null;
    });
  }

  // An admin request whose reply is the state (or 204): shows it.
  function admin(method, path, body, done) {
    if (!token()) {
      say(t("ev_missing_token"), "warn");
      if (tokenInput) {
        root.querySelector("[data-token-field]").hidden = false;
        tokenInput.focus();
      }
      return Promise.resolve(null);
    }
    return fetch(api + path, authorised(method, body)).then(function (res) {
      if (!res.ok) return refused(res);
      if (res.status === 204) {
        if (done) say(done, "ok");
        return refreshWithToken().then(function () { return true; });
      }
      return res.json().then(function (next) {
        show(next);
        if (done) say(done, "ok");
        return next;
      });
    }, function () {
      say(t("notice_network"), "warn");
      return null;
    });
  }

  // The stream hides counts the host may see: ask with the token, at most
  // one request at a time.
  let refreshing = null;
  let refreshAgain = false;
  function refreshWithToken() {
    if (!token() || deleted) return Promise.resolve();
    if (refreshing) {
      refreshAgain = true;
      return refreshing;
    }
    refreshing = fetch(api, authorised("GET")).then(function (res) {
      if (res.status === 404) return ended();
      return res.ok ? res.json().then(show) : null;
    }, function () { /* the next change tries again */ }).finally(function () {
      refreshing = null;
      if (refreshAgain) {
        refreshAgain = false;
        setTimeout(refreshWithToken, 300);
      }
    });
    return refreshing;
  }

  function wantCounts() {
    const now = state && state.now;
    if (!now || !now.results_hidden || !token()) return;
    if (page === "present" && !state.results_shown) return;
    refreshWithToken();
  }

  if (page === "audience") audiencePage();
  else if (page === "present") presentPage();
  else if (page === "manage") managePage();
  render();

  // ---- Audience: voting ----

  function audiencePage() {
    const VOTE_RETRIES = 5;
    if (!view.form) return;
    view.form.addEventListener("change", function (event) {
      if (event.target.matches("[data-pick]")) limitPicks();
    });
    view.form.addEventListener("submit", function (event) {
      event.preventDefault();
      const now = state && state.now;
      if (!now || deleted) return;
      const button = event.submitter;
      const ballot = ballotOf(now, button);
      if (!ballot) return;
      const target = button || view.send;
      if (target.getAttribute("aria-busy") === "true") return;
      target.setAttribute("aria-busy", "true");
      vote(now, ballot, randomKey(), 0, target);
    });

    // The vote of the question on screen, in its kind's shape, with what
    // the notice names and the rows it marks; null after saying why not.
    function ballotOf(now, button) {
      const sep = LANG === "en" ? ", " : "、";
      if (now.kind === "wordcloud") {
        const entries = Array.from(view.kindInput.querySelectorAll("[data-entry]"), function (i) { return i.value.trim(); }).filter(Boolean);
        if (entries.length === 0) return say(t("cloud_entry_first"), "warn");
        return { body: { entries: entries }, label: entries.join(sep), choice: null };
      }
      if (now.kind === "ranking" && ranking) {
        return { body: { ranking: ranking.order() }, label: ranking.label(), choice: null };
      }
      if (button && button.name === "value") {
        const value = Number(button.value);
        return { body: { value: value }, label: String(value), choice: [value] };
      }
      const multi = now.max_choices > 1;
      const choice = multi ? picked() : (button && button.name === "option" ? [Number(button.value)] : []);
      if (choice.length === 0) return say(t("choose_one_first"), "warn");
      if (choice.length > now.max_choices) return say(t("too_many_choices", { n: now.max_choices }), "warn");
      return { body: multi ? { options: choice } : { option: choice[0] }, label: labels(now, choice), choice: choice };
    }

    function vote(now, ballot, key, attempt, button) {
      const body = ballot.body;
      const retry = function () {
        if (attempt >= VOTE_RETRIES) {
          button.removeAttribute("aria-busy");
          return say(t("notice_network"), "warn");
        }
        setTimeout(function () { vote(now, ballot, key, attempt + 1, button); }, 200 * Math.pow(2, attempt));
      };
      fetch("/api/polls/" + encodeURIComponent(now.id) + "/votes", {
        method: "POST",
        headers: { "Content-Type": "application/json", "Idempotency-Key": key },
        body: JSON.stringify(body),
        credentials: "same-origin",
        cache: "no-store",
      }).then(function (res) {
        if (res.status === 503 || res.status === 429) return retry();
        button.removeAttribute("aria-busy");
        if (res.ok) {
          if (ballot.choice) {
            remember(now.id, ballot.choice);
            if (shownQuestion === now.id) markChoice(ballot.choice);
          }
          if (now.kind === "wordcloud") view.kindInput.querySelectorAll("[data-entry]").forEach(function (i) { i.value = ""; });
          say(t("notice_voted_for", { label: ballot.label }), "ok");
          // This visitor may now see counts the stream hid (after_vote).
          return fetch(api, { cache: "no-store", credentials: "same-origin" }).then(function (r) {
            return r.ok ? r.json().then(show) : null;
          });
        }
        return res.json().catch(function () { return {}; }).then(function (answer) {
          const err = (answer && answer.error) || {};
          if (err.code === "already_voted") say(t("notice_already_voted"), "warn");
          else if (err.code === "poll_closed") say(t("ev_vote_closed"), "warn");
          else if (err.code === "too_many_entries") say(t("notice_too_many_entries"), "warn");
          else say(err.message || t("notice_refused"), "warn");
        });
      }, retry);
    }

    function labels(now, choice) {
      return now.options
        .filter(function (o) { return choice.indexOf(o.id) >= 0; })
        .map(function (o) { return o.label; })
        .join(LANG === "en" ? ", " : "、");
    }
  }

  function randomKey() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, function (b) { return b.toString(16).padStart(2, "0"); }).join("");
  }

  // ---- Presenter: the keys a clicker sends ----

  function presentPage() {
    const qaPanel = root.querySelector("[data-qa-panel]");
    if (!token()) root.querySelector("[data-no-token]").hidden = false;
    // The token stays in this page only: a reload keeps the fragment,
    // nothing sends it in an address.
    document.addEventListener("keydown", function (event) {
      if (event.ctrlKey || event.altKey || event.metaKey || event.defaultPrevented) return;
      if (event.target.closest && event.target.closest("input, textarea, select, button, a")) {
        if (event.key === " " || event.key === "Enter") return;
      }
      const key = event.key;
      let handled = true;
      if (key === "ArrowRight" || key === "PageDown") step("next");
      else if (key === "ArrowLeft" || key === "PageUp") step("prev");
      else if (key === " ") toggleVoting();
      else if (key === "r" || key === "R") toggleResults();
      else if (key === "f" || key === "F") toggleFullscreen();
      else if (key === "q" || key === "Q") {
        qaPanel.hidden = !qaPanel.hidden;
        root.classList.toggle("qa-on", !qaPanel.hidden);
      }
      else handled = false;
      if (handled) event.preventDefault();
    });

    function step(direction) {
      admin("POST", "/move", { step: direction });
    }

    function toggleVoting() {
      if (!state || !state.now) return;
      admin("POST", "/voting", { open: !!state.now.closed });
    }

    function toggleResults() {
      if (!state) return;
      admin("POST", "/results", { shown: !state.results_shown });
    }

    function toggleFullscreen() {
      if (!document.documentElement.requestFullscreen) return;
      if (document.fullscreenElement) document.exitFullscreen();
      else document.documentElement.requestFullscreen().catch(function () { /* refused */ });
    }
  }

  // ---- Manage: drive the event and build the deck ----

  function managePage() {
    const status = root.querySelector("[data-status]");
    const deck = root.querySelector("[data-deck]");
    const deckEmpty = root.querySelector("[data-deck-empty]");
    const addForm = root.querySelector("[data-add-form]");
    const presentLink = root.querySelector("[data-present-link]");
    const dialog = root.querySelector("[data-confirm-dialog]");
    const nowBox = root.querySelector("[data-now]");
    const nowQuestion = root.querySelector("[data-now-question]");
    const fieldsHtml = addForm.cloneNode(true);
    let editing = null;
    let deckKey = "";

    if (hashToken) {
      tokenInput.value = hashToken;
      root.querySelector("[data-token-field]").hidden = true;
      root.querySelector("[data-token-from-link]").hidden = false;
    }
    tokenInput.addEventListener("change", function () {
      linkPresenter();
      refreshWithToken();
    });
    linkPresenter();
    refreshWithToken();

    function linkPresenter() {
      const base = "/events/" + encodeURIComponent(id) + "/present";
      presentLink.href = token() ? base + "#token=" + encodeURIComponent(token()) : base;
    }

    root.addEventListener("click", function (event) {
      const button = event.target.closest("button[data-act]");
      if (!button || deleted) return;
      const act = button.dataset.act;
      const qid = button.dataset.qid;
      if (act === "prev" || act === "next") admin("POST", "/move", { step: act });
      else if (act === "lobby") admin("POST", "/move", { to: null });
      else if (act === "results") admin("POST", "/results", { shown: !state.results_shown });
      else if (act === "voting" && state.now) admin("POST", "/voting", { open: !!state.now.closed });
      else if (act === "go") admin("POST", "/move", { to: indexOf(qid) });
      else if (act === "up" || act === "down") reorder(qid, act === "up" ? -1 : 1, act);
      else if (act === "edit") startEdit(qid);
      else if (act === "remove") confirm(t("ev_delete_q_confirm"), function () {
        admin("DELETE", "/questions/" + encodeURIComponent(qid), undefined, t("ev_done_removed"));
      });
      else if (act === "export") exportCsv();
      else if (act === "delete") confirm(t("ev_delete_event_confirm"), deleteEvent);
    });

    root.querySelector("[data-goto-form]").addEventListener("submit", function (event) {
      event.preventDefault();
      const n = Number(event.target.querySelector("input").value);
      const total = state.questions.length;
      if (!(n >= 1 && n <= total)) return say(t("ev_goto_range", { total: total }), "warn");
      admin("POST", "/move", { to: n - 1 });
    });

    addForm.addEventListener("submit", function (event) {
      event.preventDefault();
      const body = questionBody(addForm);
      if (!body) return;
      admin("POST", "/questions", body, t("ev_done_added")).then(function (next) {
        if (!next) return;
        addForm.reset();
        addForm.querySelector("[data-q-text]").focus();
      });
    });

    function indexOf(qid) {
      return state.questions.findIndex(function (q) { return q.id === qid; });
    }

    function reorder(qid, by, act) {
      const ids = state.questions.map(function (q) { return q.id; });
      const i = ids.indexOf(qid);
      const j = i + by;
      if (i < 0 || j < 0 || j >= ids.length) return;
      ids[i] = ids[j];
      ids[j] = qid;
      admin("PUT", "/order", { questions: ids }).then(function () {
        const again = deck.querySelector("button[data-act=\"" + act + "\"][data-qid=\"" + CSS.escape(qid) + "\"]");
        if (again && !again.disabled) again.focus();
        else {
          const go = deck.querySelector("button[data-act=\"go\"][data-qid=\"" + CSS.escape(qid) + "\"]");
          if (go) go.focus();
        }
      });
    }

    function confirm(text, then) {
      if (!dialog.showModal) {
        if (window.confirm(text)) then();
        return;
      }
      dialog.querySelector("[data-confirm-text]").textContent = text;
      dialog.returnValue = "";
      dialog.addEventListener("close", function onClose() {
        dialog.removeEventListener("close", onClose);
        if (dialog.returnValue === "yes") then();
      });
      dialog.showModal();
    }

    function deleteEvent() {
      admin("DELETE", "", undefined).then(function (done) {
        if (!done) return;
        ended();
        say(t("ev_done_deleted"), "ok");
      });
    }

    function exportCsv() {
      if (!token()) return say(t("ev_missing_token"), "warn");
      fetch(api + "/results.csv", authorised("GET")).then(function (res) {
        if (!res.ok) return refused(res);
        return res.blob().then(function (blob) {
          const a = document.createElement("a");
          a.href = URL.createObjectURL(blob);
          a.download = "tally-event-" + id + ".csv";
          document.body.appendChild(a);
          a.click();
          a.remove();
          setTimeout(function () { URL.revokeObjectURL(a.href); }, 10000);
          say(t("done_exported"), "ok");
        });
      }, function () { say(t("notice_network"), "warn"); });
    }

    function startEdit(qid) {
      fetch("/api/polls/" + encodeURIComponent(qid), { cache: "no-store" }).then(function (res) {
        if (!res.ok) return refused(res);
        return res.json().then(function (poll) {
          editing = qid;
          deckKey = "";
          renderManage();
          const form = deck.querySelector("[data-edit-form]");
          if (!form) return;
          form.querySelector("[data-q-text]").value = poll.question;
          form.querySelector("[data-q-options]").value = (poll.options || []).map(function (o) { return o.label; }).join("\n");
          form.querySelector("[data-q-max]").value = String(poll.max_choices || 1);
          form.querySelector("[data-q-text]").focus();
        });
      }, function () { say(t("notice_network"), "warn"); });
    }

    function editForm(qid) {
      const form = document.createElement("form");
      form.className = "event-question-form";
      form.setAttribute("data-edit-form", "");
      fieldsHtml.querySelectorAll(".event-field").forEach(function (field) {
        form.appendChild(field.cloneNode(true));
      });
      const actions = document.createElement("div");
      actions.className = "actions";
      const save = document.createElement("button");
      save.type = "submit";
      save.className = "button primary";
      save.textContent = t("ev_save");
      const cancel = document.createElement("button");
      cancel.type = "button";
      cancel.className = "button secondary";
      cancel.textContent = t("cancel");
      cancel.addEventListener("click", function () { stopEdit(qid); });
      actions.append(save, cancel);
      form.appendChild(actions);
      form.addEventListener("keydown", function (event) {
        if (event.key === "Escape") stopEdit(qid);
      });
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        const body = questionBody(form);
        if (!body) return;
        admin("PUT", "/questions/" + encodeURIComponent(qid), body, t("ev_done_edited")).then(function (next) {
          if (!next) return;
          // The edited question comes back under a new id, in the same place.
          const at = indexOf(qid) >= 0 ? indexOf(qid) : -1;
          editing = null;
          deckKey = "";
          renderManage();
          focusQuestion(at >= 0 ? state.questions[at] : null);
        });
      });
      return form;
    }

    function stopEdit(qid) {
      editing = null;
      deckKey = "";
      renderManage();
      focusQuestion({ id: qid });
    }

    function focusQuestion(q) {
      const go = q && deck.querySelector("button[data-act=\"edit\"][data-qid=\"" + CSS.escape(q.id) + "\"]");
      if (go) go.focus();
    }

    // The poll create body from a question form; null (and a message) when
    // it cannot be one.
    function questionBody(form) {
      const question = form.querySelector("[data-q-text]").value.trim();
      const options = form.querySelector("[data-q-options]").value.split("\n")
        .map(function (s) { return s.trim(); })
        .filter(function (s) { return s.length > 0; });
      const max = Number(form.querySelector("[data-q-max]").value) || 1;
      if (!question) {
        say(t("err_question_empty"), "warn");
        return null;
      }
      if (options.length < 2 || options.length > 20) {
        say(t("err_options_count"), "warn");
        return null;
      }
      return { question: question, options: options, max_choices: max };
    }

    // Exposed to render(): the status line, the buttons and the deck.
    renderManage = function () {
      if (!state) return;
      const q = currentQuestion();
      const total = state.questions.length;
      status.textContent = q
        ? t("ev_status_on", { n: state.current + 1, total: total, question: q.question })
        : t("ev_status_lobby", { total: total });
      const button = function (act) { return root.querySelector("button[data-act=\"" + act + "\"]:not([data-qid])"); };
      if (!deleted) {
        button("prev").disabled = !q || state.current === 0;
        button("next").disabled = total === 0 || (q && state.current === total - 1);
        button("lobby").disabled = !q;
        button("voting").disabled = !state.now;
      }
      button("results").textContent = state.results_shown ? t("ev_hide_results") : t("ev_show_results");
      button("results").setAttribute("aria-pressed", String(state.results_shown));
      button("voting").textContent = state.now && state.now.closed ? t("ev_open_voting") : t("ev_close_voting");
      nowBox.hidden = !q;
      if (q) nowQuestion.textContent = (state.now && state.now.question) || q.question;
      wantCounts();
      const key = JSON.stringify([state.questions, state.current, editing, deleted]);
      if (key === deckKey) return;
      deckKey = key;
      const focused = document.activeElement && deck.contains(document.activeElement)
        ? [document.activeElement.dataset.act, document.activeElement.dataset.qid] : null;
      deckEmpty.hidden = total > 0;
      deck.replaceChildren.apply(deck, state.questions.map(function (question, i) {
        const li = document.createElement("li");
        li.className = "event-deck-item" + (i === state.current ? " on-screen" : "");
        li.dataset.qid = question.id;
        if (editing === question.id) {
          li.appendChild(editForm(question.id));
          return li;
        }
        const head = document.createElement("div");
        head.className = "event-deck-head";
        const n = document.createElement("span");
        n.className = "event-deck-n";
        n.textContent = String(i + 1);
        const text = document.createElement("span");
        text.className = "event-deck-text";
        text.textContent = question.question;
        head.append(n, text);
        if (i === state.current) {
          const badge = document.createElement("span");
          badge.className = "badge open";
          badge.textContent = t("ev_on_screen");
          head.appendChild(badge);
        }
        const actions = document.createElement("div");
        actions.className = "event-deck-actions";
        [
          ["go", t("ev_show_now"), i === state.current],
          ["edit", t("ev_edit"), false],
          ["up", t("ev_move_up"), i === 0],
          ["down", t("ev_move_down"), i === total - 1],
          ["remove", t("ev_remove"), false],
        ].forEach(function (spec) {
          const b = document.createElement("button");
          b.type = "button";
          b.className = "button secondary small-button" + (spec[0] === "remove" ? " danger-text" : "");
          b.dataset.act = spec[0];
          b.dataset.qid = question.id;
          b.disabled = spec[2] || deleted;
          b.textContent = spec[1];
          const sr = document.createElement("span");
          sr.className = "sr-only";
          sr.textContent = " " + t("ev_question_n", { n: i + 1 });
          b.appendChild(sr);
          actions.appendChild(b);
        });
        li.append(head, actions);
        return li;
      }));
      if (focused) {
        const again = deck.querySelector("button[data-act=\"" + focused[0] + "\"][data-qid=\"" + CSS.escape(focused[1] || "") + "\"]");
        if (again && !again.disabled) again.focus();
      }
    };
  }

  // Replaced by managePage on the manage page.
  function renderManage() {}

  // ---- Create page: a title and a deck, sent to POST /api/events ----

  function createPage(root) {
    const form = root.querySelector("[data-new-form]");
    const list = form.querySelector("[data-new-questions]");
    const template = form.querySelector("[data-question-template]");
    const box = root.querySelector("[data-notices]");
    const MAX = 100;

    function note(text, kind) {
      const p = document.createElement("p");
      p.className = "notice " + kind;
      p.setAttribute("role", "status");
      p.textContent = text;
      box.replaceChildren(p);
    }

    function items() {
      return Array.from(list.querySelectorAll("[data-new-question]"));
    }

    function renumber() {
      const all = items();
      all.forEach(function (li, i) {
        li.querySelector("[data-q-legend]").textContent = t("ev_question_n", { n: i + 1 });
        const remove = li.querySelector("[data-remove-question]");
        remove.textContent = t("ev_remove_question", { n: i + 1 });
        remove.disabled = all.length <= 1;
      });
      form.querySelector("[data-add-question]").disabled = all.length >= MAX;
    }

    function add() {
      const li = template.content.firstElementChild.cloneNode(true);
      list.appendChild(li);
      renumber();
      return li;
    }

    add();
    form.addEventListener("click", function (event) {
      if (event.target.closest("[data-add-question]")) {
        add().querySelector("[data-q-text]").focus();
      } else if (event.target.closest("[data-remove-question]")) {
        const li = event.target.closest("[data-new-question]");
        const next = li.nextElementSibling || li.previousElementSibling;
        li.remove();
        renumber();
        if (next) next.querySelector("[data-q-text]").focus();
      }
    });

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      const questions = [];
      for (const li of items()) {
        const question = li.querySelector("[data-q-text]").value.trim();
        const options = li.querySelector("[data-q-options]").value.split("\n")
          .map(function (s) { return s.trim(); })
          .filter(function (s) { return s.length > 0; });
        if (!question && options.length === 0) continue;
        questions.push({ question: question, options: options, max_choices: Number(li.querySelector("[data-q-max]").value) || 1 });
      }
      const submit = form.querySelector("button[type=submit]");
      submit.disabled = true;
      fetch("/api/events", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({
          title: form.querySelector("[name=title]").value,
          questions: questions,
          qa_moderation: form.querySelector("[data-qa-moderation]").checked,
        }),
        credentials: "same-origin",
        cache: "no-store",
      }).then(function (res) {
        return res.json().catch(function () { return {}; }).then(function (body) {
          submit.disabled = false;
          if (!res.ok || !body.event) {
            const err = (body && body.error) || {};
            return note(t("ev_create_failed", { message: err.message || res.status }), "warn");
          }
          created(body.event, body.admin_token);
        });
      }, function () {
        submit.disabled = false;
        note(t("notice_network"), "warn");
      });
    });

    function created(event, adminToken) {
      const card = document.querySelector("[data-created]");
      const path = "/events/" + encodeURIComponent(event.id);
      const manage = path + "/manage#token=" + encodeURIComponent(adminToken);
      card.querySelector("[data-created-title]").textContent = event.title;
      card.querySelector("[data-created-code]").textContent = event.code;
      card.querySelector("#manage-url").value = location.origin + manage;
      card.querySelector("[data-created-manage]").href = manage;
      card.querySelector("[data-created-audience]").href = path;
      form.hidden = true;
      box.replaceChildren();
      card.hidden = false;
      card.querySelector("[data-created-manage]").focus();
    }
  }
})();
