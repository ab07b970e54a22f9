/* The console: sign in with an API key (the request signed here, the secret never sent), then
   today's figures live from a server-sent event stream (read every 2 s while the stream is
   down), positions and statements per period, webhooks. */
"use strict";
(function () {
  const { t } = window.ConsoleI18n;
  const $ = (sel) => document.querySelector(sel);
  const POLL_MS = 2000;
  let me = null;
  let poller = null;
  let stream = null;
  let streamRetry = null;
  const STREAM_RETRY_MS = 10000;
  let chart = null;
  const trend = [[], [], [], []];
  let chosen = "";

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  const fmt = (n) => Number(n).toLocaleString(window.ConsoleI18n.lang());
  const money = (n) => (Number(n) / 100).toLocaleString(window.ConsoleI18n.lang(),
    { minimumFractionDigits: 2, maximumFractionDigits: 2 });

  function toast(msg, bad) {
    const box = $("#toast");
    box.textContent = msg;
    box.className = "toast" + (bad ? " bad" : "");
    box.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { box.hidden = true; }, 4000);
  }

  async function api(method, path, body) {
    const headers = { "X-Console": "1" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const res = await fetch("/console/api" + path, {
      method, credentials: "same-origin", headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (res.status === 401) { showSignIn(); throw new Error("session-expired"); }
    if (!res.ok) throw new Error((await res.json().catch(() => ({}))).detail || res.status);
    return res.status === 204 ? null : res.json();
  }

  // ------------------------------------------------------------------ sign-in

  async function signedRequest(keyId, secret) {
    const { ethers } = window;
    const path = "/console/api/session";
    const body = "{}";
    const ts = String(Math.floor(Date.now() / 1000));
    const nonce = ethers.hexlify(ethers.randomBytes(16)).slice(2);
    const bodyHash = ethers.sha256(ethers.toUtf8Bytes(body)).slice(2);
    const canonical = `${ts}\n${nonce}\nPOST\n${path}\n${bodyHash}`;
    const sig = ethers.computeHmac("sha256", ethers.toUtf8Bytes(secret),
      ethers.toUtf8Bytes(canonical)).slice(2);
    return fetch(path, {
      method: "POST", credentials: "same-origin", body,
      headers: { "Content-Type": "application/json", "X-Console": "1",
        "X-Alliance-Key": keyId, "X-Alliance-Timestamp": ts, "X-Alliance-Nonce": nonce,
        "X-Alliance-Signature": sig },
    });
  }

  function showSignIn() {
    stopPolling();
    me = null;
    $("#who").hidden = true;
    $("#signout").hidden = true;
    const err = el("p", { class: "error", id: "signin-error", role: "alert", hidden: true });
    const keyId = el("input", { id: "key-id", name: "key-id", autocomplete: "username",
      required: true, spellcheck: "false" });
    const secret = el("input", { id: "secret", name: "secret", type: "password",
      autocomplete: "current-password", required: true });
    const button = el("button", { type: "submit", id: "signin", class: "primary" }, t("signIn"));
    const form = el("form", { class: "card signin", id: "signin-form",
      onsubmit: async (e) => {
        e.preventDefault();
        err.hidden = true;
        button.disabled = true;
        button.textContent = t("signingIn");
        try {
          const res = await signedRequest(keyId.value.trim(), secret.value);
          if (res.ok) { me = await res.json(); secret.value = ""; showConsole(); return; }
          err.textContent = res.status === 401 || res.status === 403 ? t("wrongKey") : t("failed");
        } catch (x) {
          err.textContent = t("failed");
        }
        err.hidden = false;
        button.disabled = false;
        button.textContent = t("signIn");
      } },
    el("div", { class: "signin-mark", "aria-hidden": "true" }, "盟"),
    el("h1", {}, t("signInTitle")),
    el("p", { class: "muted" }, t("signInBody")),
    el("label", {}, t("keyId"), keyId),
    el("label", {}, t("secret"), secret),
    err, button);
    $("#main").replaceChildren(el("div", { class: "signin-wrap" }, form));
    keyId.focus();
  }

  // ------------------------------------------------------------------ console

  function showConsole() {
    const isOperator = me.role === "admin";
    $("#who").hidden = false;
    $("#who").replaceChildren(
      el("span", { class: "badge" + (isOperator ? " operator" : "") },
        isOperator ? t("operator") : t("merchant") + " #" + me.merchant_id),
      el("span", { id: "who-name" }, isOperator ? "" : (me.merchant_name || "")));
    $("#signout").hidden = false;
    $("#signout").textContent = t("signOut");
    const sections = [figuresSection(isOperator), positionsSection(isOperator),
      webhooksSection()];
    $("#main").replaceChildren(el("div", { class: "grid" }, sections));
    startPolling();
    loadPeriods();
  }

  function pollAll() {
    if (!streamLive()) refreshFigures();
    if (!hookBusy) refreshWebhooks();
  }

  // Today's figures come from /figures/stream: an event each time the indexer applies blocks
  // that change them. While it is down (refused, dropped, a proxy that buffers), pollAll
  // reads /figures; the stream is tried again every STREAM_RETRY_MS.
  const streamLive = () => document.body.dataset.live === "stream";

  function setLive(mode) {
    document.body.dataset.live = mode;
    const badge = document.querySelector("#today .live");
    if (badge) badge.title = mode === "stream" ? t("liveStream") : t("livePoll");
  }

  function startStream() {
    stopStream();
    if (!window.EventSource) { setLive("poll"); return; }
    const es = new EventSource("/console/api/figures/stream", { withCredentials: true });
    stream = es;
    es.addEventListener("open", () => { if (stream === es) setLive("stream"); });
    es.addEventListener("figures", (e) => {
      if (stream !== es) return;
      setLive("stream");
      try { renderFigures(JSON.parse(e.data)); } catch (err) { /* the next event */ }
    });
    es.addEventListener("expired", () => { stopStream(); showSignIn(); });
    es.addEventListener("error", () => {
      if (stream !== es) return;
      setLive("poll");
      refreshFigures();
      // CONNECTING: the browser reconnects by itself (the server ends a stream now and
      // then); CLOSED: refused (429, 401, ...): poll, and try again later.
      if (es.readyState === EventSource.CLOSED) {
        stream = null;
        streamRetry = setTimeout(() => { if (me) startStream(); }, STREAM_RETRY_MS);
      }
    });
  }

  function stopStream() {
    if (streamRetry) clearTimeout(streamRetry);
    streamRetry = null;
    if (stream) stream.close();
    stream = null;
    setLive("poll");
  }

  function figuresSection(isOperator) {
    const card = (id, label, sub) => el("div", { class: "kpi", id },
      el("div", { class: "kpi-label" }, label),
      el("div", { class: "kpi-value", "data-value": "" }, "–"),
      el("div", { class: "kpi-sub muted" }, sub || ""));
    return el("section", { class: "card wide", id: "today" },
      el("div", { class: "card-head" },
        el("h2", {}, t("today")),
        el("span", { class: "live" }, el("span", { class: "dot" }), t("live"))),
      el("p", { class: "muted small", id: "today-note" }, ""),
      el("div", { class: "kpis" },
        card("kpi-issued", t("issued")),
        card("kpi-redeemed", isOperator ? t("redeemedAll") : t("redeemed")),
        card("kpi-foreign", isOperator ? t("foreignAll") : t("foreign"))),
      el("h3", {}, t("trend")),
      el("div", { id: "trend", class: "trend" }),
      isOperator ? el("div", {}, el("h3", {}, t("perMerchant")),
        el("table", { id: "per-merchant", class: "table num-all" })) : null);
  }

  function setKpi(id, value, sub) {
    const box = document.getElementById(id);
    const v = box.querySelector(".kpi-value");
    const before = v.getAttribute("data-value");
    v.textContent = fmt(value);
    v.setAttribute("data-value", String(value));
    if (before !== "" && before !== String(value)) {
      box.classList.remove("bump");
      void box.offsetWidth;
      box.classList.add("bump");
    }
    if (sub !== undefined) box.querySelector(".kpi-sub").textContent = sub;
  }

  async function refreshFigures() {
    let f;
    try { f = await api("GET", "/figures"); } catch (e) { return; }
    renderFigures(f);
  }

  function renderFigures(f) {
    if (!document.getElementById("kpi-issued")) return;
    const sum = (k) => f.merchants.reduce((a, m) => a + m[k], 0);
    const issued = sum("issued"), redeemed = sum("redeemed"), foreign = sum("foreign_accepted");
    setKpi("kpi-issued", issued, t("issues", { n: sum("issues") }));
    setKpi("kpi-redeemed", redeemed, t("redemptions", { n: sum("redemptions") }));
    setKpi("kpi-foreign", foreign, "");
    // Positions move with redemptions: read them again when today's figures moved.
    const key = [issued, redeemed, foreign].join("/");
    if (renderFigures.last !== undefined && renderFigures.last !== key) loadPeriods();
    renderFigures.last = key;
    $("#today-note").textContent = t("todayNote", { block: f.as_of_block });
    const now = Date.now() / 1000;
    trend[0].push(now); trend[1].push(issued); trend[2].push(redeemed); trend[3].push(foreign);
    if (trend[0].length > 600) trend.forEach((s) => s.shift());
    drawTrend();
    const table = document.getElementById("per-merchant");
    if (table) {
      table.replaceChildren(
        el("thead", {}, el("tr", {}, el("th", {}, t("colMerchant")), el("th", {}, t("issued")),
          el("th", {}, t("redeemed")), el("th", {}, t("foreign")))),
        el("tbody", {}, f.merchants.map((m) => el("tr", {},
          el("td", {}, `#${m.merchant_id} ${m.name}`), el("td", {}, fmt(m.issued)),
          el("td", {}, fmt(m.redeemed)), el("td", {}, fmt(m.foreign_accepted))))));
    }
  }

  function drawTrend() {
    const box = document.getElementById("trend");
    if (!box || !window.uPlot) return;
    const width = Math.max(280, box.clientWidth);
    if (!chart) {
      chart = new window.uPlot({
        width, height: 180, legend: { show: true, live: false },
        scales: { x: { time: true } },
        series: [{}, { label: t("issued"), stroke: "#9e1b32", width: 2 },
          { label: t("redeemed"), stroke: "#1f6feb", width: 2 },
          { label: t("foreign"), stroke: "#d9a441", width: 2 }],
        axes: [{}, { size: 60 }],
      }, trend, box);
    } else {
      chart.setData(trend);
    }
    // At least the last minute on the x axis: one sample alone would span years.
    const last = trend[0][trend[0].length - 1];
    if (last !== undefined) chart.setScale("x", { min: Math.min(trend[0][0], last - 60), max: last + 1 });
  }

  function startPolling() {
    stopPolling();
    startStream();
    pollAll();
    poller = setInterval(pollAll, POLL_MS);
  }

  function stopPolling() {
    stopStream();
    renderFigures.last = undefined;
    if (poller) clearInterval(poller);
    poller = null;
    if (chart) { chart.destroy(); chart = null; }
    trend.forEach((s) => { s.length = 0; });
  }

  function positionsSection(isOperator) {
    const select = isOperator ? el("label", { class: "inline" }, t("chooseMerchant"),
      el("select", { id: "merchant-select", onchange: (e) => { chosen = e.target.value; loadPeriods(); } },
        el("option", { value: "" }, t("allMerchants")))) : null;
    return el("section", { class: "card wide", id: "positions" },
      el("div", { class: "card-head" }, el("h2", {}, t("positions")), select),
      el("p", { class: "muted small" }, t("positionsNote")),
      el("table", { id: "periods", class: "table num" }));
  }

  async function loadPeriods() {
    const q = chosen ? `?merchant_id=${encodeURIComponent(chosen)}` : "";
    let rows;
    try { rows = await api("GET", "/periods" + q); } catch (e) { return; }
    const select = document.getElementById("merchant-select");
    if (select && select.options.length === 1) {
      try {
        const f = await api("GET", "/figures");
        for (const m of f.merchants) {
          select.append(el("option", { value: String(m.merchant_id) }, `#${m.merchant_id} ${m.name}`));
        }
      } catch (e) { /* the list stays short */ }
    }
    const mid = me.role === "admin" ? chosen : String(me.merchant_id);
    const table = document.getElementById("periods");
    table.replaceChildren(
      el("thead", {}, el("tr", {}, [t("period"), t("status"), t("net"), t("accepted"), t("paid"),
        t("received"), t("outstanding"), t("totalOwed"), t("statement")].map((h) => el("th", {}, h)))),
      el("tbody", {}, rows.map((r) => el("tr", { "data-period": String(r.period) },
        el("td", {}, "#" + r.period),
        el("td", {}, r.closed_at ? el("span", { class: "pill done" },
          t("closed", { date: new Date(r.closed_at * 1000).toLocaleDateString() }))
          : el("span", { class: "pill open" }, t("open"))),
        el("td", { class: r.net < 0 ? "neg" : r.net > 0 ? "pos" : "" }, money(r.net)),
        el("td", {}, money(r.foreign_accepted)), el("td", {}, money(r.paid)),
        el("td", {}, money(r.received)), el("td", {}, money(r.outstanding)),
        el("td", {}, money(r.total_owed)),
        el("td", {}, mid ? el("a", { class: "download", download: `statement-${r.period}-${mid}.csv`,
          href: `/console/api/statements/${r.period}.csv` + (me.role === "admin" ? `?merchant_id=${mid}` : "") },
        t("download")) : "–")))));
  }

  // ------------------------------------------------------------------ webhooks

  const EVENT_TYPES = ["*", "points.issued", "points.reversed", "points.redeemed",
    "points.foreign_accepted", "points.refunded", "points.converted_in",
    "clearing.period_closed", "clearing.statement_ready", "coupons.redeemed",
    "coupons.rolled_back", "coupons.granted", "coupons.voucher_claimed",
    "coupons.voucher_cancelled", "items.custody_recorded", "items.recalled", "items.flagged",
    "items.claimed"];
  let hookChosen = null;   // the endpoint whose delivery log is shown
  let hookBusy = false;
  let hookArmed = null;    // the endpoint whose delete button asks "sure?"

  function webhooksSection() {
    const head = el("div", { class: "card-head" }, el("h2", {}, t("webhooks")));
    if (!(me.features && me.features.webhooks)) {
      head.append(el("span", { class: "pill muted-pill", id: "webhooks-state" }, t("notAvailable")));
      return el("section", { class: "card wide", id: "webhooks" }, head,
        el("p", { class: "muted" }, t("webhooksNA")));
    }
    if (me.role !== "merchant") {
      head.append(el("span", { class: "pill muted-pill", id: "webhooks-state" }, t("merchantsOnly")));
      return el("section", { class: "card wide", id: "webhooks" }, head,
        el("p", { class: "muted" }, t("webhooksOperator")));
    }
    const url = el("input", { id: "wh-url", name: "wh-url", type: "url", required: true,
      placeholder: "https://pos.example.com/alliance/hooks", spellcheck: "false" });
    const boxes = el("div", { class: "wh-events", id: "wh-events", role: "group",
      "aria-label": t("whEvents") },
    EVENT_TYPES.map((ev) => el("label", { class: "check" },
      el("input", { type: "checkbox", value: ev, checked: ev === "*" }),
      el("span", {}, ev === "*" ? t("whAll") : ev))));
    const err = el("p", { class: "error", id: "wh-error", role: "alert", hidden: true });
    const add = el("button", { type: "submit", id: "wh-add", class: "primary" }, t("whAdd"));
    const form = el("form", { id: "wh-form", class: "wh-form",
      onsubmit: async (e) => {
        e.preventDefault();
        err.hidden = true;
        const events = [...boxes.querySelectorAll("input:checked")].map((b) => b.value);
        if (!events.length) { err.textContent = t("whNoEvents"); err.hidden = false; return; }
        add.disabled = true;
        try {
          const made = await api("POST", "/webhooks", { url: url.value.trim(), events });
          url.value = "";
          showSecret(made);
          hookChosen = made.id;
          await refreshWebhooks();
        } catch (x) {
          err.textContent = t("whRefused", { why: x.message });
          err.hidden = false;
        }
        add.disabled = false;
      } },
    el("label", { class: "grow" }, t("whUrl"), url),
    el("fieldset", {}, el("legend", {}, t("whEvents")), boxes),
    err, add);
    return el("section", { class: "card wide", id: "webhooks" }, head,
      el("p", { class: "muted small" }, t("whNote")),
      form,
      el("div", { id: "wh-secret-box", hidden: true }),
      el("h3", {}, t("whEndpoints")),
      el("table", { id: "wh-list", class: "table" }),
      el("h3", { id: "wh-log-title" }, t("whLog")),
      el("p", { class: "muted small", id: "wh-log-note" }, t("whPick")),
      el("table", { id: "wh-log", class: "table" }));
  }

  function showSecret(made) {
    const box = document.getElementById("wh-secret-box");
    const code = el("code", { id: "wh-secret" }, made.secret);
    box.replaceChildren(el("div", { class: "secret-once", role: "alert" },
      el("strong", {}, t("whSecretTitle")),
      el("p", { class: "small" }, t("whSecretBody", { id: made.id })),
      el("div", { class: "secret-row" }, code,
        el("button", { type: "button", class: "ghost", id: "wh-copy", onclick: async () => {
          try { await navigator.clipboard.writeText(made.secret); toast(t("copied")); }
          catch (e) { window.getSelection().selectAllChildren(code); }
        } }, t("copy")),
        el("button", { type: "button", class: "ghost", id: "wh-secret-done", onclick: () => {
          box.hidden = true; box.replaceChildren();
        } }, t("whSecretDone")))));
    box.hidden = false;
  }

  const when = (iso) => iso ? new Date(iso).toLocaleString(window.ConsoleI18n.lang()) : "–";

  async function hookAction(fn) {
    if (hookBusy) return;
    hookBusy = true;
    try { await fn(); } catch (x) { toast(String(x.message), true); }
    hookBusy = false;
    await refreshWebhooks();
  }

  async function refreshWebhooks() {
    const table = document.getElementById("wh-list");
    if (!table) return;
    let list;
    try { list = (await api("GET", "/webhooks")).webhooks; } catch (e) { return; }
    if (hookChosen && !list.some((w) => w.id === hookChosen)) hookChosen = null;
    if (!hookChosen && list.length) hookChosen = list[0].id;
    table.replaceChildren(
      el("thead", {}, el("tr", {}, [t("whUrl"), t("whEvents"), t("status"), t("whFailures"),
        t("whPending"), ""].map((h, i) => el("th", { class: i === 3 || i === 4 ? "num" : "" }, h)))),
      el("tbody", {}, list.length ? list.map((w) => el("tr", {
        "data-webhook": w.id, class: w.id === hookChosen ? "chosen" : "" },
      el("td", { class: "url" }, el("div", {}, w.url), el("div", { class: "muted small mono" }, w.id)),
      el("td", { class: "small" }, w.events.map((e) => e === "*" ? t("whAll") : e).join(", ")),
      el("td", {}, el("span", { class: "pill " + (w.status === "active" ? "done" : "warn"),
        "data-status": w.status, title: w.paused_reason || "" },
      w.status === "active" ? t("whActive") : t("whPaused")),
      w.paused_reason ? el("div", { class: "muted small" }, w.paused_reason) : null),
      el("td", { class: "num" }, fmt(w.failures)),
      el("td", { class: "num" }, fmt(w.pending)),
      el("td", { class: "actions-cell" },
        el("button", { type: "button", class: "ghost small-btn wh-show",
          onclick: () => { hookChosen = w.id; refreshWebhooks(); } }, t("whShowLog")),
        w.status === "paused" ? el("button", { type: "button", class: "primary small-btn wh-resume",
          onclick: () => hookAction(async () => {
            await api("POST", `/webhooks/${w.id}/resume`);
            toast(t("whResumed"));
          }) }, t("whResume")) : null,
        el("button", { type: "button", class: "danger small-btn wh-delete",
          onclick: () => {
            if (hookArmed !== w.id) { hookArmed = w.id; refreshWebhooks(); return; }
            hookArmed = null;
            hookAction(async () => { await api("DELETE", `/webhooks/${w.id}`); toast(t("whDeleted")); });
          } }, hookArmed === w.id ? t("whDeleteSure") : t("whDelete")))))
        : [el("tr", {}, el("td", { colspan: "6", class: "muted" }, t("whNone")))]));
    await refreshLog();
  }

  async function refreshLog() {
    const table = document.getElementById("wh-log");
    const note = document.getElementById("wh-log-note");
    if (!table) return;
    if (!hookChosen) { table.replaceChildren(); note.textContent = t("whPick"); return; }
    let page;
    try {
      page = await api("GET", `/webhooks/${hookChosen}/deliveries?limit=100`);
    } catch (e) { return; }
    note.textContent = t("whLogNote", { id: hookChosen });
    const chosenId = hookChosen;
    table.replaceChildren(
      el("thead", {}, el("tr", {}, [t("whEvent"), t("whType"), t("whBlock"), t("whState"),
        t("whAttempts"), t("whLast"), t("whWhen"), ""].map((h) => el("th", {}, h)))),
      el("tbody", {}, page.deliveries.length ? page.deliveries.map((d) => el("tr", {
        "data-event": d.event_id, "data-state": d.state },
      el("td", { class: "mono small", title: d.tx_hash }, d.event_id),
      el("td", {}, d.type),
      el("td", { class: "num" }, "#" + d.block),
      el("td", {}, el("span", { class: "pill " + (d.state === "delivered" ? "done" : d.state === "pending" ? "open" : "muted-pill") },
        t("whState_" + d.state))),
      el("td", { class: "num" }, fmt(d.attempts)),
      el("td", { class: "small" }, d.last_status ? "HTTP " + d.last_status : "", d.last_error ? el("div", { class: "muted" }, d.last_error) : null),
      el("td", { class: "small" }, d.state === "delivered" ? when(d.delivered_at)
        : d.next_at ? t("whNext", { when: when(d.next_at) }) : "–"),
      el("td", {}, el("button", { type: "button", class: "ghost small-btn wh-replay",
        title: t("whReplayHint"),
        onclick: () => hookAction(async () => {
          const r = await api("POST", `/webhooks/${chosenId}/replay`, { from_event_id: d.event_id });
          toast(t("whReplayed", { n: r.queued }));
        }) }, t("whReplay")))))
        : [el("tr", {}, el("td", { colspan: "8", class: "muted" }, t("whNoDeliveries")))]),
      ...(page.next_after ? [el("tfoot", {}, el("tr", {}, el("td", { colspan: "8", class: "muted small" }, t("whMore"))))] : []));
  }

  // ------------------------------------------------------------------ boot

  function render() {
    document.title = t("title");
    $("#title").textContent = t("title");
    $("#lang").textContent = window.ConsoleI18n.lang() === "en" ? "中文" : "EN";
    if (me) showConsole(); else showSignIn();
  }

  $("#lang").addEventListener("click", () => {
    window.ConsoleI18n.setLang(window.ConsoleI18n.lang() === "en" ? "zh-CN" : "en");
    stopPolling();
    render();
  });
  $("#signout").addEventListener("click", async () => {
    try { await api("DELETE", "/session"); } catch (e) { /* cleared anyway */ }
    showSignIn();
  });
  window.ConsoleI18n.setLang(window.ConsoleI18n.lang());
  (async () => {
    try {
      me = await api("GET", "/session");
    } catch (e) {
      me = null;
    }
    render();
  })();
})();
