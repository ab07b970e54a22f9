/* The member app: one page, every screen drawn here. No build step: plain browser JavaScript,
   ethers v6 (UMD, loaded only when the member's card is opened or a signature is needed) and
   qrcode-generator (loaded when a code is shown), both pinned npm packages served by the
   service.

   Screens are tabs registered with AllianceApp.addTab({id, icon, label, render}); a capability
   that lands later (coupons, items, data sharing, gifts) adds its own tab from its own script
   the same way. Those scripts are listed in LAZY below and load the first time their screen
   is opened (or a link needs them): the first paint loads only what the home screen needs. */
"use strict";
(function () {
  const I18n = window.AllianceI18n;
  const t = I18n.t;
  const KEYSTORE = "alliance.card.v1";
  const LANG = "alliance.lang";
  // scrypt cost of the card's encrypted keystore: 2^16 takes about a second on a phone.
  const SCRYPT_N = 1 << 16;
  const SESSION_HOURS = 8;

  const state = {
    session: null,        // {address, expires_at}
    signer: null,         // an unlocked ethers signer (kept in memory only)
    alliance: null,       // /v1/public/alliance
    balances: null,
    tab: "card",
    payId: null,
  };

  // ------------------------------------------------------------------ small helpers
  const $ = (sel, root) => (root || document).querySelector(sel);
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => (
    { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  const locale = () => (I18n.lang === "en" ? "en-GB" : "zh-CN");
  const num = (n) => new Intl.NumberFormat(locale()).format(n);
  // Prices in yuan as the malls print them (¥12.00), in both languages.
  const money = (fen) => new Intl.NumberFormat("zh-CN", { style: "currency", currency: "CNY" })
    .format(fen / 100);
  const day = (unix) => new Intl.DateTimeFormat(locale(), { year: "numeric", month: "short",
    day: "numeric" }).format(new Date(unix * 1000));
  const when = (unix) => new Intl.DateTimeFormat(locale(), { month: "short", day: "numeric",
    hour: "2-digit", minute: "2-digit" }).format(new Date(unix * 1000));
  const memberNo = (addr) => addr.slice(2, 6).toUpperCase() + " " + addr.slice(6, 10).toUpperCase()
    + " " + addr.slice(-4).toUpperCase();
  const initial = (name) => esc((name || "?").trim().charAt(0).toUpperCase());

  function loadScript(src) {
    return new Promise((resolve, reject) => {
      const s = document.createElement("script");
      s.src = src;
      s.onload = resolve;
      s.onerror = () => reject(netError());
      document.head.appendChild(s);
    });
  }
  // One load per script, shared by every caller; a failed load is tried again next time.
  const loading = new Map();
  function loadOnce(src) {
    if (!loading.has(src)) {
      loading.set(src, loadScript(src).catch((e) => { loading.delete(src); throw e; }));
    }
    return loading.get(src);
  }
  async function ethersLib() {
    if (!window.ethers) await loadOnce("/app/vendor/ethers.umd.min.js");
    return window.ethers;
  }
  async function qrLib() {
    if (!window.qrcode) await loadOnce("/app/vendor/qrcode.js");
    return window.qrcode;
  }
  function netError() { const e = new Error("network"); e.kind = "network"; return e; }

  async function api(method, path, body) {
    let res;
    try {
      res = await fetch(path, {
        method, credentials: "same-origin",
        headers: Object.assign({ "X-Alliance-App": "1" },
          body === undefined ? {} : { "Content-Type": "application/json" }),
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (_) { throw netError(); }
    if (res.status === 204) return null;
    let data = null;
    try { data = await res.json(); } catch (_) { data = null; }
    if (!res.ok) {
      const e = new Error((data && data.detail) || res.statusText);
      e.status = res.status;
      e.code = data && data.code;
      throw e;
    }
    return data;
  }

  // ------------------------------------------------------------------ errors
  function explain(e) {
    if (!e) return { text: t("errGeneric", { detail: "?" }) };
    if (e.kind === "network") return { text: t("errNetwork"), retry: true };
    if (e.code === "ACTION_REJECTED" || e.code === 4001 || (e.info && e.info.error
        && e.info.error.code === 4001)) return { text: t("errRejected"), retry: true };
    if (e.status === 401) return { text: t("errSession"), signIn: true };
    if (e.code === "payment-request-expired") return { text: t("errExpired") };
    if (e.code === "wrong-chain") return { text: t("errWrongChain"), retry: true };
    if (["signature-mismatch", "nonce-used", "deadline-passed", "deadline-too-far"]
        .includes(e.code)) return { text: t("errSignature"), retry: true };
    if (e.status === 404) return { text: t("errNotFound") };
    if (e.status >= 500) return { text: t("errServer"), retry: true };
    return { text: t("errGeneric", { detail: e.message || String(e) }) };
  }

  function errorBox(e, retry) {
    const x = explain(e);
    const box = document.createElement("div");
    box.className = "notice notice-error";
    box.setAttribute("role", "alert");
    box.dataset.code = (e && (e.code || e.kind || e.status)) || "error";
    box.innerHTML = `<p>${esc(x.text)}</p>`;
    if (x.signIn) {
      const b = button(t("errSessionAction"), "btn btn-primary btn-small", () => signOutLocal());
      box.appendChild(b);
    } else if (x.retry && retry) {
      box.appendChild(button(t("retry"), "btn btn-ghost btn-small", retry));
    } else if (state.session) {
      box.appendChild(button(t("backHome"), "btn btn-ghost btn-small", () => go("card")));
    }
    return box;
  }

  function button(label, cls, onClick) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = cls;
    b.textContent = label;
    b.addEventListener("click", onClick);
    return b;
  }

  function toast(text) {
    const el = $("#toast");
    el.textContent = text;
    el.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { el.hidden = true; }, 2600);
  }

  function busy(el, text) {
    el.innerHTML = `<div class="busy"><span class="spinner" aria-hidden="true"></span>`
      + `<span>${esc(text)}</span></div>`;
  }

  // ------------------------------------------------------------------ dialogs
  function dialog(html, setup) {
    const d = $("#dialog");
    d.innerHTML = `<div class="dialog-body">${html}</div>`;
    if (setup) setup(d);
    if (!d.open) d.showModal();
    return d;
  }
  function closeDialog() { const d = $("#dialog"); if (d.open) d.close(); }

  function askPassphrase() {
    return new Promise((resolve, reject) => {
      dialog(`<h2>${esc(t("unlock"))}</h2>
        <label class="field"><span>${esc(t("passphrase"))}</span>
          <input id="dlg-pass" type="password" autocomplete="current-password"></label>
        <p class="field-error" id="dlg-err" hidden></p>
        <div class="row"><button type="button" class="btn btn-ghost" id="dlg-cancel">${esc(t("cancel"))}</button>
        <button type="button" class="btn btn-primary" id="dlg-ok">${esc(t("unlock"))}</button></div>`,
      (d) => {
        $("#dlg-cancel", d).addEventListener("click", () => {
          closeDialog();
          const e = new Error("cancelled"); e.code = "ACTION_REJECTED"; reject(e);
        });
        $("#dlg-ok", d).addEventListener("click", async () => {
          const ok = $("#dlg-ok", d);
          ok.disabled = true;
          ok.textContent = t("unlocking");
          try {
            state.signer = await unlockKeystore($("#dlg-pass", d).value);
            closeDialog();
            resolve(state.signer);
          } catch (_) {
            const err = $("#dlg-err", d);
            err.textContent = t("wrongPassphrase");
            err.hidden = false;
            ok.disabled = false;
            ok.textContent = t("unlock");
          }
        });
        setTimeout(() => $("#dlg-pass", d).focus(), 30);
      });
    });
  }

  // ------------------------------------------------------------------ the member's card (keys)
  async function unlockKeystore(pass) {
    const ethers = await ethersLib();
    return ethers.Wallet.fromEncryptedJson(localStorage.getItem(KEYSTORE), pass);
  }

  async function saveKeystore(wallet, pass) {
    const ethers = await ethersLib();
    const json = await ethers.encryptKeystoreJson(
      { address: wallet.address, privateKey: wallet.privateKey }, pass,
      { scrypt: { N: SCRYPT_N } });
    localStorage.setItem(KEYSTORE, json);
  }

  async function browserWalletSigner() {
    const ethers = await ethersLib();
    const provider = new ethers.BrowserProvider(window.ethereum);
    const signer = await provider.getSigner();
    const net = await provider.getNetwork();
    const alliance = await allianceInfo();
    if (Number(net.chainId) !== alliance.chain_id) {
      const e = new Error("wrong chain"); e.code = "wrong-chain"; throw e;
    }
    return signer;
  }

  async function needSigner() {
    if (state.signer) return state.signer;
    if (localStorage.getItem(KEYSTORE)) return askPassphrase();
    if (window.ethereum) { state.signer = await browserWalletSigner(); return state.signer; }
    const e = new Error("no card"); e.status = 401; throw e;
  }

  async function signIn(signer) {
    const address = await signer.getAddress();
    const c = await api("POST", "/app/api/sign-in/challenge", {});
    const issued = new Date();
    const expires = new Date(Math.min(issued.getTime() + SESSION_HOURS * 3600e3,
      c.expires_at * 1000 + SESSION_HOURS * 3600e3));
    const message = `${c.domain} wants you to sign in with your Ethereum account:\n`
      + `${address}\n\n${c.statement}\n\nURI: ${c.uri}\nVersion: 1\nChain ID: ${c.chain_id}\n`
      + `Nonce: ${c.nonce}\nIssued At: ${issued.toISOString()}\n`
      + `Expiration Time: ${expires.toISOString()}`;
    const signature = await signer.signMessage(message);
    state.session = await api("POST", "/app/api/sign-in", { message, signature });
    state.signer = signer;
  }

  function signOutLocal() {
    state.session = null;
    state.signer = null;
    state.balances = null;
    closeDialog();
    renderWelcome();
  }

  async function allianceInfo() {
    if (!state.alliance) state.alliance = await api("GET", "/v1/public/alliance");
    return state.alliance;
  }
  function programName(mid) {
    const p = state.alliance && state.alliance.programs.find((x) => x.merchant_id === mid);
    return p ? p.merchant_name : "#" + mid;
  }
  function programRate(mid) {
    const p = state.alliance && state.alliance.programs.find((x) => x.merchant_id === mid);
    return p ? p.rate : 1;
  }

  // ------------------------------------------------------------------ shell and tabs
  const tabs = [];
  function addTab(tab) {
    const same = tabs.findIndex((x) => x.id === tab.id);
    if (same >= 0) { tabs[same] = tab; return; }  // a lazy screen's script, now loaded
    const at = tab.before ? tabs.findIndex((x) => x.id === tab.before) : -1;
    if (at >= 0) tabs.splice(at, 0, tab); else tabs.push(tab);
    if (state.session) drawTabs();
  }

  function drawTabs() {
    const nav = $("#tabs");
    nav.hidden = !state.session;
    nav.innerHTML = "";
    for (const tab of tabs) {
      if (tab.hidden) continue;
      const b = document.createElement("button");
      b.type = "button";
      b.className = "tab" + (state.tab === tab.id ? " tab-active" : "");
      b.dataset.tab = tab.id;
      b.innerHTML = `<span class="tab-icon" aria-hidden="true">${tab.icon}</span>`
        + `<span class="tab-label">${esc(typeof tab.label === "function" ? tab.label() : t(tab.label))}</span>`;
      b.addEventListener("click", () => go(tab.id));
      nav.appendChild(b);
    }
  }

  function go(id, arg) {
    state.tab = id;
    drawTabs();
    const tab = tabs.find((x) => x.id === id) || tabs[0];
    // A fresh element for every screen: a screen still loading when the member moved on
    // draws into the old one, off the page, instead of over the screen the member chose (and
    // the polls that watch their element's data-screen stop).
    const old = $("#screen");
    old.dataset.screen = "";
    const main = old.cloneNode(false);
    main.dataset.screen = tab.id;
    old.replaceWith(main);
    window.scrollTo(0, 0);
    Promise.resolve(tab.render(main, arg)).catch((e) => {
      main.querySelectorAll(".busy").forEach((b) => b.remove());
      main.appendChild(errorBox(e, () => go(id, arg)));
    });
  }

  function setTitle(text) { $("#title").textContent = text || t("appName"); }

  // ------------------------------------------------------------------ welcome / get a card
  function renderWelcome(note) {
    $("#tabs").hidden = true;
    setTitle();
    const main = $("#screen");
    main.dataset.screen = "welcome";
    const has = !!localStorage.getItem(KEYSTORE);
    main.innerHTML = `
      <section class="hero">
        <div class="hero-card" aria-hidden="true"><div class="hero-chip"></div>
          <div class="hero-brand">${esc(t("appName"))}</div><div class="hero-line"></div></div>
        <h2>${esc(t("welcomeTitle"))}</h2>
        <p class="muted">${esc(t("welcomeBody"))}</p>
      </section>
      <section class="card" id="welcome-actions"></section>`;
    const box = $("#welcome-actions");
    if (note) box.appendChild(note);
    if (has) {
      box.insertAdjacentHTML("beforeend", `<h3>${esc(t("haveCardHere"))}</h3>
        <label class="field"><span>${esc(t("passphrase"))}</span>
        <input id="pass" type="password" autocomplete="current-password"></label>
        <p class="field-error" id="pass-err" hidden></p>`);
      box.appendChild(button(t("unlock"), "btn btn-primary btn-block", openCard));
    } else {
      box.appendChild(button(t("getCard"), "btn btn-primary btn-block", renderCreate));
    }
    const more = document.createElement("div");
    more.className = "links";
    if (window.ethereum) {
      more.appendChild(button(t("useOtherApp"), "btn btn-link", async () => {
        try { await signIn(await browserWalletSigner()); afterSignIn(); } catch (e) {
          renderWelcome(errorBox(e));
        }
      }));
    }
    more.appendChild(button(t("restore"), "btn btn-link", renderRestore));
    box.appendChild(more);
    ready();
  }

  async function openCard() {
    const err = $("#pass-err");
    const main = $("#welcome-actions");
    const pass = $("#pass").value;
    const b = main.querySelector(".btn-primary");
    b.disabled = true;
    b.textContent = t("unlocking");
    let signer;
    try { signer = await unlockKeystore(pass); } catch (e) {
      if (e.kind === "network") { renderWelcome(errorBox(e)); return; }
      err.textContent = t("wrongPassphrase");
      err.hidden = false;
      b.disabled = false;
      b.textContent = t("unlock");
      return;
    }
    b.textContent = t("signingIn");
    try { await signIn(signer); afterSignIn(); } catch (e) { renderWelcome(errorBox(e)); }
  }

  function passphraseFields() {
    return `<label class="field"><span>${esc(t("passphrase"))}</span>
        <input id="pass1" type="password" autocomplete="new-password" minlength="8">
        <small class="muted">${esc(t("passphraseHint"))}</small></label>
      <label class="field"><span>${esc(t("passphraseAgain"))}</span>
        <input id="pass2" type="password" autocomplete="new-password"></label>
      <p class="field-error" id="pass-err" hidden></p>`;
  }
  function checkPassphrase() {
    const a = $("#pass1").value;
    const b = $("#pass2").value;
    const err = $("#pass-err");
    const bad = a.length < 8 ? t("passphraseShort") : a !== b ? t("passphraseMismatch") : "";
    err.textContent = bad;
    err.hidden = !bad;
    return bad ? null : a;
  }

  function renderCreate() {
    const main = $("#screen");
    main.dataset.screen = "create";
    main.innerHTML = `<section class="card"><h2>${esc(t("getCard"))}</h2>
      ${passphraseFields()}<div id="create-go"></div></section>`;
    $("#create-go").appendChild(button(t("getCard"), "btn btn-primary btn-block", async (ev) => {
      const pass = checkPassphrase();
      if (!pass) return;
      ev.target.disabled = true;
      ev.target.textContent = t("creating");
      try {
        const ethers = await ethersLib();
        const wallet = ethers.Wallet.createRandom();
        await saveKeystore(wallet, pass);
        const phrase = wallet.mnemonic.phrase;
        state.signer = wallet;
        renderBackup(phrase);
      } catch (e) { main.appendChild(errorBox(e)); }
    }));
    $("#pass1").focus();
  }

  function renderBackup(phrase) {
    const main = $("#screen");
    main.dataset.screen = "backup";
    const words = phrase.split(" ").map((w, i) =>
      `<li><span class="word-no">${i + 1}</span><span class="word">${esc(w)}</span></li>`).join("");
    main.innerHTML = `<section class="card"><h2>${esc(t("backupTitle"))}</h2>
      <p class="muted">${esc(t("backupBody"))}</p>
      <ol class="words" id="backup-words">${words}</ol>
      <label class="check"><input type="checkbox" id="backup-ok"> <span>${esc(t("backupConfirm"))}</span></label>
      <div id="backup-go"></div></section>`;
    const go_ = button(t("backupDone"), "btn btn-primary btn-block", async () => {
      go_.disabled = true;
      go_.textContent = t("signingIn");
      const signer = state.signer;
      // The words are shown once: gone from the page before anything else happens.
      $("#backup-words").innerHTML = "";
      try { await signIn(signer); afterSignIn(); } catch (e) { renderWelcome(errorBox(e)); }
    });
    go_.disabled = true;
    $("#backup-ok").addEventListener("change", (e) => { go_.disabled = !e.target.checked; });
    $("#backup-go").appendChild(go_);
  }

  function renderRestore() {
    const main = $("#screen");
    main.dataset.screen = "restore";
    main.innerHTML = `<section class="card"><h2>${esc(t("restoreTitle"))}</h2>
      <p class="muted">${esc(t("restoreBody"))}</p>
      <label class="field"><span>${esc(t("restoreWords"))}</span>
      <textarea id="words" rows="3" autocomplete="off" autocapitalize="none" spellcheck="false"></textarea></label>
      ${passphraseFields()}<div id="restore-go"></div></section>`;
    $("#restore-go").appendChild(button(t("continue"), "btn btn-primary btn-block", async (ev) => {
      const pass = checkPassphrase();
      if (!pass) return;
      const ethers = await ethersLib();
      let wallet;
      try {
        wallet = ethers.Wallet.fromPhrase($("#words").value.trim().toLowerCase().split(/\s+/).join(" "));
      } catch (_) {
        const err = $("#pass-err"); err.textContent = t("restoreBad"); err.hidden = false; return;
      }
      ev.target.disabled = true;
      ev.target.textContent = t("creating");
      await saveKeystore(wallet, pass);
      try { await signIn(wallet); afterSignIn(); } catch (e) { renderWelcome(errorBox(e)); }
    }));
  }

  // Links into a screen (``/app?voucher=…``) that a capability's script registers: the
  // first that knows the page's query opens its screen once signed in, once.
  const linkHandlers = [];
  function onLink(handler) { linkHandlers.push(handler); }

  async function afterSignIn() {
    if (state.payId) { const id = state.payId; state.payId = null; go("pay", id); return; }
    const params = new URLSearchParams(location.search);
    const needed = LAZY.filter((l) => l.links.some((name) => params.has(name)));
    if (needed.length) {
      // A link into a lazy screen: its script first (if it cannot load, the link stays in
      // the address bar and the home screen shows; a reload tries again).
      try { await Promise.all(needed.map((l) => loadOnce(l.src))); } catch (_) { /* home */ }
    }
    for (const h of linkHandlers) {
      const to = h(params);
      if (to) {
        history.replaceState(null, "", location.pathname);
        go(to.tab, to.arg);
        return;
      }
    }
    go("card");
  }

  // ------------------------------------------------------------------ card (balances)
  async function loadBalances() {
    const [b] = await Promise.all([api("GET", "/app/api/balances"), allianceInfo()]);
    state.balances = b;
    return b;
  }

  function programCard(p) {
    const notes = [];
    for (const r of p.releases) notes.push(t("pendingOn", { n: num(r.points), date: day(r.release_at) }));
    if (!p.releases.length && p.pending) notes.push(t("pending", { n: num(p.pending) }));
    const expiring = p.lots.filter((l) => l.expires_at).sort((a, b) => a.expires_at - b.expires_at);
    if (expiring.length) notes.push(t("expiresOn", { n: num(expiring[0].points), date: day(expiring[0].expires_at) }));
    if (p.expired) notes.push(t("expiredNotSwept", { n: num(p.expired) }));
    return `<li class="program" data-merchant="${p.merchant_id}">
      <div class="avatar avatar-${p.merchant_id % 6}">${initial(p.merchant_name)}</div>
      <div class="program-main"><div class="program-name">${esc(p.merchant_name)}</div>
        <div class="program-notes">${notes.map((n) => `<span>${esc(n)}</span>`).join("")}</div></div>
      <div class="program-figures"><div class="program-points"><b data-points>${num(p.spendable)}</b> ${esc(t("points"))}</div>
        <div class="program-value">${esc(t("worth", { value: money(p.value) }))}</div></div></li>`;
  }

  async function renderCard(main) {
    setTitle();
    busy(main, t("loading"));
    const b = await loadBalances();
    const held = b.programs.filter((p) => p.balance > 0);
    main.innerHTML = `
      <section class="member-card" aria-label="${esc(t("memberCard"))}">
        <div class="mc-top"><span class="mc-brand">${esc(t("memberCard"))}</span><span class="mc-chip" aria-hidden="true"></span></div>
        <div class="mc-label">${esc(t("totalValue"))}</div>
        <div class="mc-total" id="total-value">${esc(money(b.total_value))}</div>
        <div class="mc-bottom"><span>${esc(t("memberNo"))} ${esc(memberNo(b.member))}</span></div>
      </section>
      <section class="actions">
        <button type="button" class="action" id="act-code"><span class="action-icon">▦</span><span>${esc(t("showCode"))}</span></button>
        <button type="button" class="action" id="act-pay"><span class="action-icon">¥</span><span>${esc(t("tabPay"))}</span></button>
        <button type="button" class="action" id="act-convert"><span class="action-icon">⇄</span><span>${esc(t("convert"))}</span></button>
        <button type="button" class="action" id="act-item"><span class="action-icon">▣</span><span>${esc(t("scanItem"))}</span></button>
        <button type="button" class="action" id="act-gifts"><span class="action-icon">✦</span><span>${esc(t("tabGifts"))}</span></button>
      </section>
      <section class="card"><h3>${esc(t("myPoints"))}</h3>
        ${held.length ? `<ul class="programs" id="programs">${held.map(programCard).join("")}</ul>`
          : `<p class="muted empty">${esc(t("noPoints"))}</p>`}
        <p class="foot muted">${esc(t("updated", { time: when(Date.now() / 1000) }))}</p></section>`;
    $("#act-code").addEventListener("click", showMemberCode);
    $("#act-pay").addEventListener("click", () => go("pay"));
    $("#act-convert").addEventListener("click", () => go("convert"));
    $("#act-item").addEventListener("click", () => go("items"));
    $("#act-gifts").addEventListener("click", () => go("gifts"));
    ready();
  }

  async function showMemberCode() {
    let qr;
    try { qr = (await qrLib())(0, "M"); } catch (e) { toast(explain(e).text); return; }
    qr.addData(state.session.address);
    qr.make();
    dialog(`<h2>${esc(t("showCode"))}</h2><div class="qr" id="member-qr">${qr.createSvgTag({ cellSize: 6, margin: 2, scalable: true })}</div>
      <p class="center mono">${esc(memberNo(state.session.address))}</p>
      <p class="muted center">${esc(t("showCodeBody"))}</p>
      <button type="button" class="btn btn-primary btn-block" id="dlg-close">${esc(t("close"))}</button>`,
    (d) => $("#dlg-close", d).addEventListener("click", closeDialog));
  }

  // ------------------------------------------------------------------ pay
  function payIdFrom(text) {
    const s = (text || "").trim();
    const m = s.match(/[?&]pay=([A-Za-z0-9_-]{8,32})/);
    if (m) return m[1];
    return /^[A-Za-z0-9_-]{8,32}$/.test(s) ? s : null;
  }

  async function renderPay(main, id) {
    setTitle(t("payTitle"));
    if (!id) {
      main.innerHTML = `<section class="card"><h2>${esc(t("payTitle"))}</h2>
        <p class="muted">${esc(t("payPaste"))}</p><div id="pay-scan"></div>
        <label class="field"><span>${esc(t("payLink"))}</span><input id="pay-link" autocomplete="off"></label>
        <div id="pay-open"></div></section>`;
      const camera = !!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia);
      if (camera) {
        const scan = button("▣  " + t("scan"), "btn btn-primary btn-block btn-lg", () => scanPayCode(main));
        scan.id = "scan-button";
        $("#pay-scan").appendChild(scan);
      }
      $("#pay-open").appendChild(button(t("openPay"), camera ? "btn btn-ghost btn-block"
        : "btn btn-primary btn-block", () => {
        const pid = payIdFrom($("#pay-link").value);
        if (pid) go("pay", pid); else toast(t("errNotFound"));
      }));
      ready();
      return;
    }
    busy(main, t("loading"));
    const [pr, b] = await Promise.all([api("GET", `/app/api/payment-requests/${id}`), loadBalances()]);
    if (pr.status === "paying" || pr.status === "paid") { renderPaid(main, pr, true); return; }
    if (pr.status === "expired") {
      main.innerHTML = `<section class="card pay-head">
        <div class="avatar avatar-${pr.merchant_id % 6} avatar-lg">${initial(pr.merchant_name)}</div>
        <h2>${esc(t("payAt", { name: pr.merchant_name }))}</h2>
        <div class="due due-off">${esc(money(pr.amount))}</div>
        <div class="muted small">${esc(t("order"))} ${esc(pr.order_id)}</div></section>`;
      main.appendChild(errorBox({ code: "payment-request-expired" }));
      ready();
      return;
    }
    const options = b.programs.map((p) => {
      const need = Math.ceil(pr.amount / p.rate);
      return { p, need, ok: p.spendable >= need };
    }).sort((x, y) => (y.ok - x.ok) || (x.p.merchant_id === pr.merchant_id ? -1 : 1));
    const firstOk = options.find((o) => o.ok);
    main.innerHTML = `
      <section class="card pay-head">
        <div class="avatar avatar-${pr.merchant_id % 6} avatar-lg">${initial(pr.merchant_name)}</div>
        <h2>${esc(t("payAt", { name: pr.merchant_name }))}</h2>
        <div class="due-label">${esc(t("amountDue"))}</div>
        <div class="due" id="due">${esc(money(pr.amount))}</div>
        <div class="muted small">${esc(t("order"))} ${esc(pr.order_id)} · <span id="countdown"></span></div>
      </section>
      <section class="card"><h3>${esc(t("chooseProgram"))}</h3>
        <ul class="choices" id="choices">${options.map((o) => `
          <li><label class="choice${o.ok ? "" : " choice-off"}">
            <input type="radio" name="program" value="${o.p.merchant_id}" ${o.ok ? "" : "disabled"} ${o === firstOk ? "checked" : ""}>
            <span class="avatar avatar-${o.p.merchant_id % 6}">${initial(o.p.merchant_name)}</span>
            <span class="choice-main"><b>${esc(t("pointsOf", { name: o.p.merchant_name }))}</b>
              <small>${esc(num(o.p.spendable))} ${esc(t("points"))} · ${esc(o.ok ? t("needPoints", { n: num(o.need) }) : t("notEnough"))}</small></span>
          </label></li>`).join("")}</ul>
        <p class="muted small" id="pay-note"></p>
        <div id="pay-go"></div><div id="pay-msg"></div></section>`;
    const note = () => {
      const sel = main.querySelector("input[name=program]:checked");
      const o = sel && options.find((x) => x.p.merchant_id === Number(sel.value));
      const parts = o ? [t("payUses", { n: num(o.need), name: o.p.merchant_name })] : [];
      if (o && o.need * o.p.rate > pr.amount) parts.push(t("overpay", { value: money(o.need * o.p.rate - pr.amount) }));
      $("#pay-note").textContent = parts.join(" · ");
      payBtn.disabled = !o;
    };
    const payBtn = button(t("payButton", { value: money(pr.amount) }), "btn btn-primary btn-block btn-lg", () => doPay(main, pr));
    payBtn.id = "pay-button";
    $("#pay-go").appendChild(payBtn);
    main.querySelectorAll("input[name=program]").forEach((r) => r.addEventListener("change", note));
    note();
    const tick = () => {
      const left = pr.expires_at - Math.floor(Date.now() / 1000);
      const el = $("#countdown");
      if (!el) return;
      if (left <= 0) { el.textContent = ""; payBtn.disabled = true; $("#pay-msg").replaceChildren(errorBox({ code: "payment-request-expired" })); return; }
      el.textContent = t("validFor", { time: `${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}` });
      setTimeout(tick, 1000);
    };
    tick();
    ready();
  }

  // Scanning the till's code: the camera's frames drawn on a canvas and read by jsQR
  // (npm jsqr, loaded only when the member taps "scan"). The code holds the payment link.
  function scanPayCode(main) {
    return scanQr(main, { hint: t("scanHint"), wrong: t("scanNotPay"), back: () => go("pay"),
      backLabel: t("payLink"), accept: (text) => {
        const pid = payIdFrom(text);
        if (pid) go("pay", pid);
        return !!pid;
      } });
  }

  // The camera's QR reader (jsQR over video frames); ``accept(text)`` says whether the code
  // was what this screen wanted (else a plain "not this kind of code" and scanning goes on).
  async function scanQr(main, opts) {
    const box = document.createElement("section");
    box.className = "card scanner";
    box.innerHTML = `<div class="scan-frame"><video id="scan-video" playsinline muted></video>
      <div class="scan-mark" aria-hidden="true"></div></div>
      <p class="muted center">${esc(opts.hint)}</p><div id="scan-msg"></div>`;
    main.replaceChildren(box);
    let stream;
    try {
      if (!window.jsQR) await loadScript("/app/vendor/jsQR.js");
      stream = await navigator.mediaDevices.getUserMedia(
        { video: { facingMode: "environment" }, audio: false });
    } catch (_) {
      $("#scan-msg").replaceChildren(Object.assign(document.createElement("div"), {
        className: "notice notice-error", textContent: t("scanNoCamera") }));
      box.appendChild(button(opts.backLabel, "btn btn-ghost btn-block", opts.back));
      return;
    }
    const video = $("#scan-video");
    video.srcObject = stream;
    await video.play();
    const canvas = document.createElement("canvas");
    const ctx = canvas.getContext("2d", { willReadFrequently: true });
    const stop = () => stream.getTracks().forEach((tr) => tr.stop());
    box.appendChild(button(t("cancel"), "btn btn-ghost btn-block", () => { stop(); opts.back(); }));
    const frame = () => {
      if (!box.isConnected) { stop(); return; }
      if (video.readyState >= 2 && video.videoWidth) {
        canvas.width = video.videoWidth;
        canvas.height = video.videoHeight;
        ctx.drawImage(video, 0, 0);
        const img = ctx.getImageData(0, 0, canvas.width, canvas.height);
        const code = window.jsQR(img.data, img.width, img.height, { inversionAttempts: "dontInvert" });
        if (code) {
          if (opts.accept(code.data)) { stop(); return; }
          $("#scan-msg").replaceChildren(Object.assign(document.createElement("div"), {
            className: "notice notice-error", textContent: opts.wrong }));
        }
      }
      requestAnimationFrame(frame);
    };
    requestAnimationFrame(frame);
  }

  async function doPay(main, pr) {
    const sel = main.querySelector("input[name=program]:checked");
    if (!sel) return;
    const msg = $("#pay-msg");
    const payBtn = $("#pay-button");
    msg.innerHTML = "";
    payBtn.disabled = true;
    const retry = () => { msg.innerHTML = ""; doPay(main, pr); };
    let signed;
    try {
      const signer = await needSigner();
      busy(msg, t("paying"));
      const q = await api("POST", `/app/api/payment-requests/${pr.id}/quote`,
        { program_merchant_id: Number(sel.value) });
      const td = q.typed_data;
      const signature = await signer.signTypedData(td.domain, { [td.primaryType]: td.types[td.primaryType] }, td.message);
      signed = { program_merchant_id: Number(sel.value), points: q.points, nonce: q.nonce, deadline: q.deadline, signature };
    } catch (e) {
      payBtn.disabled = false;
      msg.replaceChildren(errorBox(e, retry));
      return;
    }
    await submitPay(main, pr, signed);
  }

  async function submitPay(main, pr, signed) {
    const msg = $("#pay-msg");
    busy(msg, t("paying"));
    try {
      // Sending again after a lost answer is safe: the payment request is paid once.
      const view = await api("POST", `/app/api/payment-requests/${pr.id}/pay`, signed);
      await waitPaid(main, view);
    } catch (e) {
      const btn = $("#pay-button");
      if (btn) btn.disabled = e.kind === "network";
      msg.replaceChildren(errorBox(e, e.kind === "network" ? () => submitPay(main, pr, signed)
        : () => go("pay", pr.id)));
    }
  }

  async function waitPaid(main, view) {
    const started = Date.now();
    while (view.status === "paying" && Date.now() - started < 90e3) {
      await new Promise((r) => setTimeout(r, 300));
      view = await api("GET", `/app/api/payment-requests/${view.id}`);
    }
    if (view.status === "paid" || view.status === "paying") { renderPaid(main, view, false); return; }
    const e = new Error(view.error_code || "failed"); e.code = view.error_code; throw e;
  }

  function renderPaid(main, pr, before) {
    const done = pr.status === "paid";
    main.dataset.screen = "paid";
    main.innerHTML = `<section class="card result">
      <div class="result-icon ${done ? "ok" : "wait"}" aria-hidden="true">${done ? "✓" : "…"}</div>
      <h2 id="result-title">${esc(done ? t("paid") : t("paying"))}</h2>
      <p>${esc(t("paidBody", { name: pr.merchant_name, n: num(pr.points || 0), value: money(pr.amount) }))}</p>
      ${before ? `<p class="muted">${esc(t("alreadyPaid"))}</p>` : ""}
      <div id="paid-go"></div></section>`;
    $("#paid-go").appendChild(button(t("backHome"), "btn btn-primary btn-block", () => go("card")));
    if (!done) setTimeout(() => api("GET", `/app/api/payment-requests/${pr.id}`)
      .then((v) => { if (main.dataset.screen === "paid") renderPaid(main, v, before); }).catch(() => {}), 800);
    ready();
  }

  // ------------------------------------------------------------------ convert
  async function renderConvert(main) {
    setTitle(t("convertTitle"));
    busy(main, t("loading"));
    const b = await loadBalances();
    const all = state.alliance.programs.filter((p) => p.status === "active");
    const held = b.programs.filter((p) => p.spendable > 0);
    main.innerHTML = `<section class="card"><h2>${esc(t("convertTitle"))}</h2>
      <p class="muted">${esc(t("convertBody"))}</p>
      <label class="field"><span>${esc(t("from"))}</span><select id="cv-from">${held.map((p) =>
        `<option value="${p.merchant_id}">${esc(p.merchant_name)} · ${num(p.spendable)} ${esc(t("points"))}</option>`).join("")}</select></label>
      <label class="field"><span>${esc(t("to"))}</span><select id="cv-to"></select></label>
      <label class="field"><span>${esc(t("amount"))}</span><input id="cv-amount" type="number" inputmode="numeric" min="1" step="1"></label>
      <div id="cv-go"></div><div id="cv-quote"></div></section>`;
    const fillTo = () => {
      const from = Number($("#cv-from").value);
      $("#cv-to").innerHTML = all.filter((p) => p.merchant_id !== from).map((p) =>
        `<option value="${p.merchant_id}">${esc(p.merchant_name)}</option>`).join("");
    };
    $("#cv-from").addEventListener("change", () => { fillTo(); $("#cv-quote").innerHTML = ""; });
    fillTo();
    $("#cv-go").appendChild(button(t("preview"), "btn btn-ghost btn-block", () => quoteConvert(main)));
    ready();
  }

  async function quoteConvert(main) {
    const box = $("#cv-quote");
    const req = { from_merchant_id: Number($("#cv-from").value), to_merchant_id: Number($("#cv-to").value),
      points: Number($("#cv-amount").value) };
    if (!req.points || req.points < 1 || !req.to_merchant_id) return;
    busy(box, t("loading"));
    let q;
    try { q = await api("POST", "/app/api/convert/quote", req); } catch (e) {
      box.replaceChildren(errorBox(e, () => quoteConvert(main))); return;
    }
    const from = programName(req.from_merchant_id);
    const to = programName(req.to_merchant_id);
    const rest = req.points - q.points_spent;
    box.innerHTML = `<div class="quote" id="cv-summary">
      <div class="quote-big">${esc(t("convertResult", { out: num(q.points), to }))}</div>
      <ul><li>${esc(t("convertSpent", { spent: num(q.points_spent), from }))}</li>
      ${rest > 0 ? `<li>${esc(t("convertRest", { rest: num(rest), from }))}</li>` : ""}
      <li>${esc(t("convertRate", { from, to, a: money(programRate(req.from_merchant_id)), b: money(programRate(req.to_merchant_id)) }))}</li>
      <li>${esc(t("convertRounding"))}</li></ul></div><div id="cv-confirm"></div><div id="cv-msg"></div>`;
    const confirm = button(t("confirmConvert"), "btn btn-primary btn-block", async () => {
      confirm.disabled = true;
      const msg = $("#cv-msg");
      try {
        const signer = await needSigner();
        busy(msg, t("paying"));
        const td = q.typed_data;
        const signature = await signer.signTypedData(td.domain, { [td.primaryType]: td.types[td.primaryType] }, td.message);
        let op = await api("POST", "/app/api/convert", Object.assign({}, req, {
          min_out: q.min_out, order_id: q.order_id, nonce: q.nonce, deadline: q.deadline, signature }));
        const started = Date.now();
        while (!["confirmed", "failed"].includes(op.status) && Date.now() - started < 90e3) {
          await new Promise((r) => setTimeout(r, 600));
          op = await api("GET", `/app/api/operations/${op.id}`);
        }
        if (op.status === "failed") { const e = new Error(op.error_code); e.code = op.error_code; throw e; }
        main.dataset.screen = "converted";
        main.innerHTML = `<section class="card result"><div class="result-icon ok" aria-hidden="true">✓</div>
          <h2 id="result-title">${esc(t("converted"))}</h2><p>${esc(t("convertedBody", { out: num(q.points), to }))}</p><div id="cv-done"></div></section>`;
        $("#cv-done").appendChild(button(t("backHome"), "btn btn-primary btn-block", () => go("card")));
      } catch (e) {
        confirm.disabled = false;
        msg.replaceChildren(errorBox(e, () => quoteConvert(main)));
      }
    });
    $("#cv-confirm").appendChild(confirm);
  }

  // ------------------------------------------------------------------ history
  const KIND_SIGN = { issued: 1, released: 0, reversed: -1, redeemed: -1, refunded: 1,
    converted_out: -1, converted_in: 1, expired: -1 };

  function historyItem(e) {
    const program = programName(e.program_merchant_id);
    let title = t("k_" + e.kind);
    if (e.kind === "redeemed" && e.elsewhere) title = t("k_redeemed_elsewhere", { where: programName(e.merchant_id) });
    const amount = e.kind === "reversed" && e.burned != null ? e.burned : e.amount;
    const sign = KIND_SIGN[e.kind];
    const cls = sign > 0 ? "plus" : sign < 0 ? "minus" : "neutral";
    const fig = (sign > 0 ? "+" : sign < 0 ? "−" : "") + num(amount);
    let sub = t("pointsOf", { name: program });
    if (e.kind === "issued" && e.release_at && e.release_at > e.at) sub += " · " + t("pendingOn", { n: num(e.amount), date: day(e.release_at) });
    return `<li class="event event-${esc(e.kind)}" data-kind="${esc(e.kind)}">
      <div class="event-dot ${cls}" aria-hidden="true"></div>
      <div class="event-main"><div class="event-title">${esc(title)}</div>
        <div class="event-sub muted">${esc(sub)} · <span class="nowrap">${esc(when(e.at))}</span></div></div>
      <div class="event-amount ${cls}">${esc(fig)}</div></li>`;
  }

  async function renderHistory(main) {
    setTitle(t("history"));
    busy(main, t("loading"));
    await allianceInfo();
    const page = await api("GET", "/app/api/history?limit=30");
    main.innerHTML = `<section class="card"><h2>${esc(t("history"))}</h2>
      ${page.events.length ? `<ul class="events" id="events">${page.events.map(historyItem).join("")}</ul>`
        : `<p class="muted empty">${esc(t("noHistory"))}</p>`}<div id="more"></div></section>`;
    let cursor = page.next_cursor;
    const more = () => {
      if (cursor == null) { $("#more").innerHTML = ""; return; }
      $("#more").replaceChildren(button(t("loadMore"), "btn btn-ghost btn-block", async () => {
        const next = await api("GET", `/app/api/history?limit=30&cursor=${cursor}`);
        $("#events").insertAdjacentHTML("beforeend", next.events.map(historyItem).join(""));
        cursor = next.next_cursor;
        more();
      }));
    };
    more();
    ready();
  }

  // ------------------------------------------------------------------ me (privacy, language)
  function renderMe(main) {
    setTitle(t("me"));
    main.innerHTML = `
      <section class="card"><h3>${esc(t("language"))}</h3><div class="seg" id="langs">
        ${I18n.languages().map((l) => `<button type="button" class="seg-btn${l === I18n.lang ? " seg-on" : ""}" data-lang="${l}">${l === "en" ? "English" : "中文"}</button>`).join("")}
      </div></section>
      <section class="card"><div class="menu-item"><div><b>${esc(t("clEntry"))}</b><p class="muted small">${esc(t("clEntryShort"))}</p></div><div id="cl"></div></div></section>
      <section class="card"><div class="menu-item"><div><b>${esc(t("msEntry"))}</b><p class="muted small">${esc(t("msEntryShort"))}</p></div><div id="ms"></div></div></section>
      <section class="card"><h3>${esc(t("myData"))}</h3>
        <div class="menu-item"><div><b>${esc(t("download"))}</b><p class="muted small">${esc(t("downloadBody"))}</p></div><div id="dl"></div></div>
        <div class="menu-item"><div><b>${esc(t("sharing"))}</b><p class="muted small">${esc(t("sharingShort"))}</p></div><div id="sh"></div></div>
        <div class="menu-item"><div><b>${esc(t("erase"))}</b><p class="muted small">${esc(t("eraseBody"))}</p></div><div id="er"></div></div>
      </section>
      <section class="card" id="me-session"></section>`;
    main.querySelectorAll("[data-lang]").forEach((b) => b.addEventListener("click", () => {
      setLang(b.dataset.lang); go("me");
    }));
    $("#dl").appendChild(button(t("downloadShort"), "btn btn-ghost btn-small", downloadMyData));
    const cl = button(t("view"), "btn btn-ghost btn-small", () => go("claim"));
    cl.id = "open-claim";
    $("#cl").appendChild(cl);
    const ms = button(t("view"), "btn btn-ghost btn-small", () => go("memberships"));
    ms.id = "open-memberships";
    $("#ms").appendChild(ms);
    const sh = button(t("manage"), "btn btn-ghost btn-small", () => go("sharing"));
    sh.id = "open-sharing";
    $("#sh").appendChild(sh);
    $("#er").appendChild(button(t("eraseShort"), "btn btn-danger btn-small", confirmErase));
    $("#me-session").appendChild(button(t("logout"), "btn btn-ghost btn-block", async () => {
      try { await api("DELETE", "/app/api/session"); } catch (_) { /* signed out locally anyway */ }
      signOutLocal();
      toast(t("loggedOut"));
    }));
    if (localStorage.getItem(KEYSTORE)) {
      $("#me-session").appendChild(button(t("forgetDevice"), "btn btn-link btn-block", () => {
        if (window.confirm(t("forgetDeviceBody"))) { localStorage.removeItem(KEYSTORE); signOutLocal(); }
      }));
    }
    ready();
  }

  async function downloadMyData() {
    try {
      const data = await api("GET", "/app/api/my-data");
      const blob = new Blob([JSON.stringify(data, null, 2)], { type: "application/json" });
      const a = document.createElement("a");
      a.href = URL.createObjectURL(blob);
      a.download = "my-alliance-data.json";
      document.body.appendChild(a);
      a.click();
      setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
    } catch (e) { $("#screen").appendChild(errorBox(e, downloadMyData)); }
  }

  function confirmErase() {
    dialog(`<h2>${esc(t("erase"))}</h2><p class="muted">${esc(t("eraseBody"))}</p>
      <label class="field"><span>${esc(t("eraseType"))}</span><input id="erase-word" autocomplete="off"></label>
      <div class="row"><button type="button" class="btn btn-ghost" id="dlg-cancel">${esc(t("cancel"))}</button>
      <button type="button" class="btn btn-danger-solid" id="dlg-erase" disabled>${esc(t("eraseConfirm"))}</button></div><div id="erase-msg"></div>`,
    (d) => {
      $("#dlg-cancel", d).addEventListener("click", closeDialog);
      $("#erase-word", d).addEventListener("input", (e) => {
        $("#dlg-erase", d).disabled = e.target.value.trim() !== t("eraseWord");
      });
      $("#dlg-erase", d).addEventListener("click", async () => {
        try {
          const r = await api("DELETE", "/app/api/my-data");
          closeDialog();
          state.session = null;
          state.signer = null;
          const note = document.createElement("div");
          note.className = "notice notice-ok";
          note.id = "erased";
          note.innerHTML = `<b>${esc(t("erased"))}</b><p>${esc(t("erasedBody", { n: r.sessions + r.wallet_links + r.payments_forgotten }))}</p>`;
          renderWelcome(note);
        } catch (e) { $("#erase-msg", d).replaceChildren(errorBox(e)); }
      });
    });
  }

  // ------------------------------------------------------------------ start
  function setLang(l) {
    I18n.set(l);
    localStorage.setItem(LANG, I18n.lang);
    $("#lang").textContent = I18n.lang === "en" ? "中文" : "EN";
    document.title = t("appName");
  }

  // The first screen with its content drawn: scripts/bench_app.py reads this mark.
  function ready() {
    if (!document.body.dataset.ready && window.performance && performance.mark) {
      performance.mark("app-ready");
    }
    document.body.dataset.ready = "1";
  }

  addTab({ id: "card", icon: "▭", label: "tabCard", render: renderCard });
  addTab({ id: "pay", icon: "¥", label: "tabPay", render: renderPay });
  addTab({ id: "convert", icon: "⇄", label: "convert", render: renderConvert, hidden: true });
  addTab({ id: "history", icon: "≡", label: "tabHistory", render: renderHistory });
  addTab({ id: "me", icon: "☺", label: "tabMe", render: renderMe });

  // The screens whose script loads when first opened: their tabs are registered here (their
  // labels, and the words the home screen shows for them, are in i18n.js) with a render that
  // loads the script, which then registers the real tab in the same place. ``links``: the
  // page's query parameters that open the screen (``/app?voucher=…``).
  const LAZY = [
    { src: "/app/static/coupons.js", links: ["voucher"],
      tabs: [{ id: "coupons", icon: "◇", label: "tabCoupons", before: "pay" }] },
    { src: "/app/static/items.js", links: ["item"],
      tabs: [{ id: "items", icon: "▣", label: "scanItem", hidden: true }] },
    { src: "/app/static/consent.js", links: [],
      tabs: [{ id: "sharing", icon: "⚿", label: "sharing", hidden: true }] },
    { src: "/app/static/gifts.js", links: [],
      tabs: [{ id: "gifts", icon: "✦", label: "tabGifts", hidden: true }] },
    { src: "/app/static/cards.js", links: [],
      tabs: [{ id: "memberships", icon: "★", label: "msEntry", hidden: true }] },
    { src: "/app/static/claim.js", links: [],
      tabs: [{ id: "claim", icon: "⇣", label: "clEntry", hidden: true }] },
  ];
  for (const lazy of LAZY) {
    for (const tab of lazy.tabs) {
      addTab(Object.assign({}, tab, { lazy: true, render: async (main, arg) => {
        busy(main, t("loading"));
        await loadOnce(lazy.src);
        const real = tabs.find((x) => x.id === tab.id);
        if (state.tab !== tab.id) return;  // the member moved on meanwhile
        if (real.lazy) throw new Error(lazy.src + " did not register its screen");
        main.innerHTML = "";
        return real.render(main, arg);
      } }));
    }
  }

  async function boot() {
    const params = new URLSearchParams(location.search);
    setLang(params.get("lang") || localStorage.getItem(LANG) || "zh-CN");
    state.payId = payIdFrom(location.search);
    $("#lang").addEventListener("click", () => {
      setLang(I18n.lang === "en" ? "zh-CN" : "en");
      if (state.session) go(state.tab, state.tab === "pay" ? state.payId : undefined); else renderWelcome();
    });
    try {
      state.session = await api("GET", "/app/api/session");
    } catch (e) {
      if (e.status !== 401) { renderWelcome(errorBox(e, boot)); return; }
    }
    if (!state.session) { renderWelcome(); return; }
    afterSignIn();
  }

  window.AllianceApp = { addTab, go, api, t, needSigner, state, money, num, esc, errorBox, button, ready,
    setTitle, busy, dialog, closeDialog, toast, day, when, scanQr, initial, onLink, qrLib };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot); else boot();
})();
