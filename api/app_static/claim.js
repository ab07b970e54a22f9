/* The member app's claim (Me → Claim points kept for you): the member types the one-time code
   the shop's counter gave for their member id; the service links the member id to this
   wallet and moves what it kept for it, shop by shop, with every lot's expiry and pending
   points as they were. The screen follows each shop's move until all are done, says which
   one failed (with a retry), and then shows the points with when they expire. */
"use strict";
(function () {
  const A = window.AllianceApp;
  const { t, esc, api, num } = A;

  window.AllianceI18n.add({
    "zh-CN": {
      clTitle: "领取为您保管的积分",
      clBody: "在门店用会员号积累的积分，由联盟代为保管。请向收银台索取一次性领取码，输入后积分会连同有效期一起转入您的账户。",
      clCode: "领取码",
      clCodeHint: "10 位字母和数字，例如 ABCDE-FGH23，15 分钟内有效",
      clSubmit: "领取",
      clMoving: "正在转入…",
      clDone: "领取完成，积分已转入您的账户。",
      clNothing: "领取完成。该会员号没有保管中的积分；以后的积分会直接进入您的账户。",
      clFailed: "有门店的积分暂未转入，可以重试。",
      clRetry: "重试",
      clShop: "门店",
      clCoupons: "优惠券",
      clQueued: "排队中",
      clSent: "处理中",
      clOk: "已转入",
      clBad: "未成功",
      clPoints: "{n} 分",
      clPending: "{n} 分待生效",
      clExpires: "{n} 分 · {date} 到期",
      clNever: "{n} 分 · 永久有效",
      clToCard: "查看我的积分",
      clErrUsed: "这个领取码已经用过了。如需帮助请联系门店。",
      clErrExpired: "这个领取码已过期，请向收银台重新索取。",
      clErrUnknown: "找不到这个领取码，请核对后重新输入。",
      clErrFormat: "领取码是 10 位字母和数字，请核对后重新输入。",
      clErrLinked: "这个会员号已绑定到另一个账户。",
      clErrWallet: "这个账户已绑定到另一个会员号。",
      clErrCoupons: "该会员号的一张优惠券正在发放中，请一分钟后再领取。",
      clEntry: "领取保管的积分",
      clEntryShort: "用收银台给的领取码，把会员号积累的积分转入本账户",
    },
    en: {
      clTitle: "Claim points kept for you",
      clBody: "Points you earned with your member number were kept for you by the alliance. Ask the counter for a one-time code and enter it here: the points move to your account with their expiry dates.",
      clCode: "Code",
      clCodeHint: "10 letters and digits, like ABCDE-FGH23; it works for 15 minutes",
      clSubmit: "Claim",
      clMoving: "Moving your points…",
      clDone: "Done: your points are in your account.",
      clNothing: "Done. Nothing was kept for this member number; new points come straight to your account.",
      clFailed: "Some shop's points did not move yet. You can try again.",
      clRetry: "Try again",
      clShop: "Shop",
      clCoupons: "Coupons",
      clQueued: "waiting",
      clSent: "on its way",
      clOk: "moved",
      clBad: "not moved",
      clPoints: "{n} points",
      clPending: "{n} points pending",
      clExpires: "{n} points · expire {date}",
      clNever: "{n} points · never expire",
      clToCard: "See my points",
      clErrUsed: "This code was already used. Ask the shop if you need help.",
      clErrExpired: "This code has expired. Ask the counter for a new one.",
      clErrUnknown: "We don't know this code. Check it and enter it again.",
      clErrFormat: "A code is 10 letters and digits. Check it and enter it again.",
      clErrLinked: "This member number is already linked to another account.",
      clErrWallet: "This account is already linked to another member number.",
      clErrCoupons: "A coupon for this member number is still being issued. Try again in a minute.",
      clEntry: "Claim kept points",
      clEntryShort: "Move the points of your member number here with the counter's code",
    },
  });

  const ERRORS = {
    "link-code-used": "clErrUsed", "link-code-expired": "clErrExpired",
    "link-code-unknown": "clErrUnknown", "validation-error": "clErrFormat",
    "member-linked-elsewhere": "clErrLinked", "wallet-linked": "clErrWallet",
    "wallet-is-custodial": "clErrWallet", "coupons-on-the-way": "clErrCoupons",
  };
  const STATUS = { queued: "clQueued", sending: "clSent", submitted: "clSent",
    confirmed: "clOk", failed: "clBad" };

  function lotsOf(p) {
    const rows = p.lots.map((l) => `<li>${esc(l.expires_at == null
      ? t("clNever", { n: num(l.points) })
      : t("clExpires", { n: num(l.points), date: A.day(l.expires_at) }))}</li>`);
    if (p.pending) rows.push(`<li class="muted">${esc(t("clPending", { n: num(p.pending) }))}</li>`);
    return `<ul class="cl-lots">${rows.join("")}</ul>`;
  }

  function form(main, note) {
    main.innerHTML = `<section class="card"><h2>${esc(t("clTitle"))}</h2>
        <p class="muted small">${esc(t("clBody"))}</p>
        <label class="field"><span>${esc(t("clCode"))}</span>
          <input id="claim-code" autocomplete="one-time-code" autocapitalize="characters"
            spellcheck="false" maxlength="20" placeholder="ABCDE-FGH23">
          <small class="muted">${esc(t("clCodeHint"))}</small></label>
        <div id="claim-note"></div><div id="claim-go"></div></section>`;
    if (note) main.querySelector("#claim-note").appendChild(note);
    const go = A.button(t("clSubmit"), "btn btn-primary btn-block", async () => {
      const code = main.querySelector("#claim-code").value.trim();
      go.disabled = true;
      try {
        const view = await api("POST", "/app/api/claims", { code });
        show(main, view);
      } catch (e) {
        go.disabled = false;
        const key = ERRORS[e.code];
        const box = key ? notice(t(key)) : A.errorBox(e);
        box.dataset.code = e.code || "error";
        const slot = main.querySelector("#claim-note");
        slot.innerHTML = "";
        slot.appendChild(box);
      }
    });
    go.id = "claim-submit";
    main.querySelector("#claim-go").appendChild(go);
    A.ready();
  }

  function notice(text) {
    const box = document.createElement("div");
    box.className = "notice notice-error";
    box.setAttribute("role", "alert");
    box.innerHTML = `<p>${esc(text)}</p>`;
    return box;
  }

  async function show(main, view) {
    if (view.state === "none") { form(main); return; }
    let programs = {};
    if (view.state === "done") {
      const mine = await api("GET", "/app/api/balances");
      programs = Object.fromEntries(mine.programs.map((p) => [p.merchant_id, p]));
    }
    const names = await shopNames();
    const head = view.state === "done" ? (view.moves.length ? t("clDone") : t("clNothing"))
      : view.state === "failed" ? t("clFailed") : t("clMoving");
    const cls = view.state === "done" ? "notice-ok" : view.state === "failed" ? "notice-error" : "";
    main.innerHTML = `<section class="card" id="claim-status" data-state="${esc(view.state)}">
        <h2>${esc(t("clTitle"))}</h2>
        <div class="notice ${cls}"><p>${esc(head)}</p></div>
        ${view.moves.map((m) => {
          if (m.asset === "coupons") {
            return `<div class="menu-item cl-move" data-asset="coupons" data-status="${esc(m.status)}">
            <div class="avatar avatar-0">${A.initial(t("clCoupons"))}</div>
            <div><b>${esc(t("clCoupons"))}</b></div>
            <span class="${m.status === "confirmed" ? "pill-ok" : "muted small"}">${esc(t(STATUS[m.status] || "clSent"))}</span></div>`;
          }
          const p = programs[m.merchant_id];
          return `<div class="menu-item cl-move" data-merchant="${m.merchant_id}" data-status="${esc(m.status)}">
            <div class="avatar avatar-${m.merchant_id % 6}">${A.initial(names[m.merchant_id] || "?")}</div>
            <div><b>${esc(names[m.merchant_id] || t("clShop"))}</b>
            ${p ? `<p class="cl-balance">${esc(t("clPoints", { n: num(p.balance) }))} ${esc(p.symbol)}</p>${lotsOf(p)}` : ""}</div>
            <span class="${m.status === "confirmed" ? "pill-ok" : "muted small"}">${esc(t(STATUS[m.status] || "clSent"))}</span></div>`;
        }).join("")}
        <div id="claim-actions"></div></section>`;
    const actions = main.querySelector("#claim-actions");
    if (view.state === "failed") {
      const retry = A.button(t("clRetry"), "btn btn-primary btn-block", async () => {
        retry.disabled = true;
        try { show(main, await api("POST", "/app/api/claims/retry")); } catch (e) { actions.appendChild(A.errorBox(e)); }
      });
      retry.id = "claim-retry";
      actions.appendChild(retry);
    } else if (view.state === "done") {
      const card = A.button(t("clToCard"), "btn btn-ghost btn-block", () => A.go("card"));
      card.id = "claim-to-card";
      actions.appendChild(card);
    } else {
      setTimeout(async () => {
        if (main.dataset.screen !== "claim") return;
        try { show(main, await api("GET", "/app/api/claims")); } catch (e) { actions.appendChild(A.errorBox(e)); }
      }, 1000);
    }
    A.ready();
  }

  let shops = null;
  async function shopNames() {
    if (!shops) {
      const pub = await api("GET", "/v1/public/alliance").catch(() => null);
      shops = {};
      for (const p of (pub && pub.programs) || []) shops[p.merchant_id] = p.merchant_name;
    }
    return shops;
  }

  async function renderClaim(main) {
    A.setTitle(t("clTitle"));
    A.busy(main, t("loading"));
    show(main, await api("GET", "/app/api/claims"));
  }

  A.addTab({ id: "claim", icon: "⇣", label: "clEntry", render: renderClaim, hidden: true });
})();
