/* The member app's coupons: the member's coupons (valid / used / expired), a voucher link
   claimed into the card, and a coupon shown at the till.

   Showing a coupon makes a one-time code (the QR: no signature, no key in it). The cashier's
   till scans it and names its order; this screen then shows the shop, the order and the
   discount, and the member confirms: only then is the redemption of that exact order signed.
   A photographed QR is worth nothing without the member's confirmation. */
"use strict";
(function () {
  const A = window.AllianceApp;
  const { t, esc, api, money, button } = A;
  const $ = (sel, root) => (root || document).querySelector(sel);
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  window.AllianceI18n.add({
    "zh-CN": {
      couponsTitle: "我的卡券",
      cValid: "可用", cUsed: "已使用", cExpired: "已过期",
      noCoupons: "这里还没有券。商家送的券和领券链接领到的券都会出现在这里。",
      claimTitle: "领取优惠券",
      claimBody: "粘贴商家给的领券链接或券码。",
      claimField: "领券链接或券码",
      claimGo: "领取",
      claiming: "正在领取…",
      claimed: "领取成功，券已放入卡包",
      claimBad: "这不是有效的领券链接",
      fixedOff: "立减", pctOff: "{z}折", gift: "赠品",
      giftWorth: "价值 {value}",
      issuedBy: "{name} 发放",
      validUntil: "有效期至 {date}",
      noExpiry: "长期有效",
      usedAt: "{date} 已使用",
      expiredOn: "{date} 已过期",
      useNow: "去使用",
      showTill: "请向收银员出示此券码",
      showTillBody: "收银员扫码后，这里会显示订单和优惠金额，由您确认后才会使用。",
      codeExpiresIn: "{s} 秒后失效",
      codeExpired: "券码已失效",
      newCode: "重新出示",
      confirmTitle: "确认使用优惠券",
      orderAt: "{name} 的订单 {order}",
      orderAmount: "订单金额",
      discount: "优惠",
      toPay: "优惠后应付",
      confirmUse: "确认使用",
      notNow: "暂不使用",
      using: "正在使用…",
      couponUsed: "优惠券已使用",
      couponUsedBody: "在 {name} 优惠 {value}。",
      backCoupons: "返回卡券",
      errCodeTaken: "这个券码已被其他订单扫过。请重新出示一个新券码。",
      errCouponRefused: "这张券不能用于这笔订单（{code}）。",
    },
    en: {
      couponsTitle: "My coupons",
      cValid: "Valid", cUsed: "Used", cExpired: "Expired",
      noCoupons: "No coupons yet. Coupons from shops and voucher links you claim appear here.",
      claimTitle: "Claim a coupon",
      claimBody: "Paste the voucher link or code a shop gave you.",
      claimField: "Voucher link or code",
      claimGo: "Claim",
      claiming: "Claiming…",
      claimed: "Claimed: the coupon is in your wallet",
      claimBad: "This is not a voucher link",
      fixedOff: "off", pctOff: "{p}% off", gift: "Gift",
      giftWorth: "worth {value}",
      issuedBy: "from {name}",
      validUntil: "valid until {date}",
      noExpiry: "no end date",
      usedAt: "used {date}",
      expiredOn: "expired {date}",
      useNow: "Use",
      showTill: "Show this code to the cashier",
      showTillBody: "Once the cashier scans it, the order and your discount appear here; nothing is used until you confirm.",
      codeExpiresIn: "expires in {s} s",
      codeExpired: "This code has expired",
      newCode: "Show a new code",
      confirmTitle: "Use this coupon?",
      orderAt: "{name}, order {order}",
      orderAmount: "Order amount",
      discount: "Discount",
      toPay: "To pay after discount",
      confirmUse: "Use coupon",
      notNow: "Not now",
      using: "Using the coupon…",
      couponUsed: "Coupon used",
      couponUsedBody: "{value} off at {name}.",
      backCoupons: "Back to coupons",
      errCodeTaken: "This code was scanned for another order. Show a new code.",
      errCouponRefused: "This coupon does not apply to this order ({code}).",
    },
  });

  function face(c) {
    if (c.kind === "percent_off") {
      return { big: t("pctOff", { p: c.value / 100, z: (10000 - c.value) / 1000 }), small: "" };
    }
    if (c.kind === "gift") return { big: t("gift"), small: t("giftWorth", { value: money(c.value || 0) }) };
    return { big: money(c.value || 0).replace(/\.00$/, ""), small: t("fixedOff") };
  }

  function ticket(c) {
    const f = face(c);
    let when;
    if (c.status === "used") when = t("usedAt", { date: A.day(c.used_at || 0) });
    else if (c.status === "expired") when = t("expiredOn", { date: A.day(c.expires_at) });
    else when = c.expires_at ? t("validUntil", { date: A.day(c.expires_at) }) : t("noExpiry");
    return `<li class="ticket ticket-${esc(c.status)}" data-coupon="${esc(c.coupon_id)}" data-status="${esc(c.status)}">
      <div class="ticket-face"><div class="ticket-big">${esc(f.big)}</div><div class="ticket-small">${esc(f.small)}</div></div>
      <div class="ticket-main"><div class="ticket-name">${esc(c.issuer_name || "")}</div>
        <div class="muted small">${esc(when)}</div></div>
      <div class="ticket-go">${c.status === "valid"
        ? `<button type="button" class="btn btn-primary btn-small" data-use="${esc(c.coupon_id)}">${esc(t("useNow"))}</button>`
        : `<span class="stamp">${esc(t(c.status === "used" ? "cUsed" : "cExpired"))}</span>`}</div></li>`;
  }

  function voucherFrom(text) {
    const s = (text || "").trim();
    const m = s.match(/[?&]voucher=([A-Za-z0-9_-]{10,400})/);
    if (m) return m[1];
    return /^[A-Za-z0-9_-]{10,400}$/.test(s) ? s : null;
  }

  async function renderCoupons(main, arg) {
    if (arg && arg.present) return renderPresent(main, arg.present);
    A.setTitle(t("couponsTitle"));
    A.busy(main, t("loading"));
    const list = (await api("GET", "/app/api/coupons")).coupons;
    const show = (arg && arg.filter) || "valid";
    const count = (st) => list.filter((c) => c.status === st).length;
    main.innerHTML = `
      <section class="card"><h3>${esc(t("claimTitle"))}</h3>
        <p class="muted small">${esc(t("claimBody"))}</p>
        <div class="inline-field"><input id="voucher-code" aria-label="${esc(t("claimField"))}" placeholder="${esc(t("claimField"))}" autocomplete="off" autocapitalize="none" spellcheck="false">
        <span id="voucher-go"></span></div><div id="voucher-msg"></div></section>
      <section class="card"><div class="seg" id="coupon-filter">
        ${["valid", "used", "expired"].map((st) => `<button type="button" class="seg-btn${st === show ? " seg-on" : ""}" data-filter="${st}">${esc(t({ valid: "cValid", used: "cUsed", expired: "cExpired" }[st]))} ${count(st)}</button>`).join("")}
      </div>
      ${list.filter((c) => c.status === show).length
        ? `<ul class="tickets" id="coupons">${list.filter((c) => c.status === show).map(ticket).join("")}</ul>`
        : `<p class="muted empty" id="no-coupons">${esc(t("noCoupons"))}</p>`}</section>`;
    main.querySelectorAll("[data-filter]").forEach((b) => b.addEventListener("click",
      () => A.go("coupons", { filter: b.dataset.filter })));
    main.querySelectorAll("[data-use]").forEach((b) => b.addEventListener("click",
      () => A.go("coupons", { present: b.dataset.use })));
    const claim = button(t("claimGo"), "btn btn-primary", () => claimVoucher(claim));
    claim.id = "voucher-claim";
    $("#voucher-go").appendChild(claim);
    if (arg && arg.voucher) { $("#voucher-code").value = arg.voucher; claimVoucher(claim); }
    A.ready();
  }

  async function claimVoucher(btn) {
    const msg = $("#voucher-msg");
    const code = voucherFrom($("#voucher-code").value);
    msg.innerHTML = "";
    if (!code) { msg.innerHTML = `<p class="field-error">${esc(t("claimBad"))}</p>`; return; }
    btn.disabled = true;
    A.busy(msg, t("claiming"));
    try {
      const count = async () => (await api("GET", "/app/api/coupons")).coupons.length;
      const before = await count();
      let op = await api("POST", "/app/api/vouchers/claim", { code });
      const started = Date.now();
      while (!["confirmed", "failed"].includes(op.status) && Date.now() - started < 90e3) {
        await sleep(500);
        op = await api("GET", `/app/api/vouchers/claims/${op.id}`);
      }
      if (op.status !== "confirmed") { const e = new Error(op.error_code || "failed"); e.code = op.error_code; throw e; }
      // The coupon list is the indexed read model: wait (a little) for it to show the coupon.
      for (let i = 0; i < 40 && await count() <= before; i++) await sleep(400);
      A.toast(t("claimed"));
      A.go("coupons");
    } catch (e) {
      btn.disabled = false;
      msg.replaceChildren(A.errorBox(e, () => claimVoucher(btn)));
    }
  }

  // ------------------------------------------------------------------ show a coupon at the till
  async function renderPresent(main, couponId) {
    A.setTitle(t("couponsTitle"));
    A.busy(main, t("loading"));
    const list = (await api("GET", "/app/api/coupons")).coupons;
    const c = list.find((x) => x.coupon_id === couponId);
    const p = await api("POST", `/app/api/coupons/${couponId}/present`);
    const qr = (await A.qrLib())(0, "M");
    qr.addData(p.code);
    qr.make();
    const f = c ? face(c) : { big: "", small: "" };
    main.dataset.screen = "coupon-code";
    main.innerHTML = `<section class="card present">
      <div class="present-head"><div class="ticket-face"><div class="ticket-big">${esc(f.big)}</div><div class="ticket-small">${esc(f.small)}</div></div>
      <div><div class="ticket-name">${esc((c && c.issuer_name) || "")}</div><div class="muted small">${esc(t("showTill"))}</div></div></div>
      <div class="qr" id="coupon-qr" data-code="${esc(p.code)}">${qr.createSvgTag({ cellSize: 6, margin: 2, scalable: true })}</div>
      <p class="center mono small">${esc(p.code.slice(0, 12))}…</p>
      <p class="center muted small" id="code-left"></p>
      <p class="muted small">${esc(t("showTillBody"))}</p><div id="present-msg"></div></section>`;
    const back = button(t("backCoupons"), "btn btn-ghost btn-block", () => A.go("coupons"));
    main.appendChild(back);
    A.ready();
    await watch(main, p.code, p.expires_at);
  }

  async function watch(main, code, expiresAt) {
    while (main.dataset.screen === "coupon-code") {
      const left = Math.max(0, Math.round(expiresAt - Date.now() / 1000));
      const el = $("#code-left");
      if (el) el.textContent = t("codeExpiresIn", { s: left });
      let v;
      try { v = await api("GET", `/app/api/coupon-codes/${code}`); } catch (_) {
        await sleep(1500);  // a dropped poll: keep showing the code and ask again
        continue;
      }
      if (v.status === "scanned") { renderConfirm(main, code, v); return; }
      if (v.status === "redeeming" || v.status === "used") { await waitUsed(main, code, v); return; }
      if (v.status === "expired") { renderExpired(main, v); return; }
      await sleep(1000);
    }
  }

  function renderExpired(main, v) {
    main.dataset.screen = "coupon-expired";
    const box = document.createElement("div");
    box.className = "notice notice-error";
    box.dataset.code = "coupon-code-expired";
    box.innerHTML = `<p>${esc(t("codeExpired"))}</p>`;
    box.appendChild(button(t("newCode"), "btn btn-primary btn-small", () => A.go("coupons", { present: v.coupon_id })));
    main.replaceChildren(box);
  }

  function renderConfirm(main, code, v) {
    main.dataset.screen = "coupon-confirm";
    main.innerHTML = `<section class="card pay-head">
      <div class="avatar avatar-${(v.merchant_id || 0) % 6} avatar-lg">${A.initial(v.merchant_name)}</div>
      <h2 id="confirm-title">${esc(t("confirmTitle"))}</h2>
      <div class="muted small">${esc(t("orderAt", { name: v.merchant_name, order: v.order_id }))}</div>
      <dl class="sums"><div><dt>${esc(t("orderAmount"))}</dt><dd>${esc(money(v.order_amount))}</dd></div>
        <div><dt>${esc(t("discount"))}</dt><dd class="plus" id="discount">−${esc(money(v.discount))}</dd></div>
        <div class="sum-total"><dt>${esc(t("toPay"))}</dt><dd>${esc(money(Math.max(0, v.order_amount - v.discount)))}</dd></div></dl>
      <div id="confirm-go"></div><div id="confirm-msg"></div></section>`;
    const ok = button(t("confirmUse"), "btn btn-primary btn-block btn-lg", () => useCoupon(main, code, v, ok));
    ok.id = "confirm-use";
    $("#confirm-go").appendChild(ok);
    $("#confirm-go").appendChild(button(t("notNow"), "btn btn-ghost btn-block", () => A.go("coupons")));
    A.ready();
  }

  async function useCoupon(main, code, v, ok) {
    const msg = $("#confirm-msg");
    msg.innerHTML = "";
    ok.disabled = true;
    let signed;
    try {
      const signer = await A.needSigner();
      A.busy(msg, t("using"));
      const q = await api("POST", `/app/api/coupon-codes/${code}/quote`);
      const td = q.typed_data;
      const signature = await signer.signTypedData(td.domain, { [td.primaryType]: td.types[td.primaryType] }, td.message);
      signed = { nonce: q.nonce, deadline: q.deadline, signature };
    } catch (e) {
      ok.disabled = false;
      msg.replaceChildren(errorFor(e, () => useCoupon(main, code, v, ok)));
      return;
    }
    await submit(main, code, v, signed);
  }

  async function submit(main, code, v, signed) {
    const msg = $("#confirm-msg");
    A.busy(msg, t("using"));
    try {
      // Sending again after a lost answer is safe: the code's redemption is queued once.
      const r = await api("POST", `/app/api/coupon-codes/${code}/redeem`, signed);
      await waitUsed(main, code, r);
    } catch (e) {
      msg.replaceChildren(errorFor(e, e.kind === "network" ? () => submit(main, code, v, signed)
        : () => A.go("coupons", { present: v.coupon_id })));
    }
  }

  function errorFor(e, retry) {
    if (e && e.code === "coupon-code-taken") e.message = t("errCodeTaken");
    else if (e && typeof e.code === "string" && e.code.startsWith("coupon-") && e.status === 409) {
      e.message = t("errCouponRefused", { code: e.code });
    }
    return A.errorBox(e, retry);
  }

  async function waitUsed(main, code, v) {
    const started = Date.now();
    while (v.status === "redeeming" && Date.now() - started < 90e3) {
      await sleep(400);
      v = await api("GET", `/app/api/coupon-codes/${code}`);
    }
    if (v.status === "failed") { const e = new Error(v.error_code || "failed"); e.code = v.error_code; throw e; }
    main.dataset.screen = "coupon-used";
    const done = v.status === "used";
    main.innerHTML = `<section class="card result">
      <div class="result-icon ${done ? "ok" : "wait"}" aria-hidden="true">${done ? "✓" : "…"}</div>
      <h2 id="result-title">${esc(done ? t("couponUsed") : t("using"))}</h2>
      <p>${esc(t("couponUsedBody", { name: v.merchant_name, value: money(v.discount || 0) }))}</p>
      <div id="used-go"></div></section>`;
    $("#used-go").appendChild(button(t("backCoupons"), "btn btn-primary btn-block", () => A.go("coupons", { filter: "used" })));
    A.ready();
  }

  A.addTab({ id: "coupons", icon: "◇", label: "tabCoupons", render: renderCoupons, before: "pay" });
  A.onLink((params) => {
    const v = params.get("voucher");
    return v ? { tab: "coupons", arg: { voucher: v } } : null;
  });
})();
