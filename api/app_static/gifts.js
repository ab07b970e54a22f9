/* The member app's gifts: the alliance's gift catalogue (what is left, the price in a shop's
   points, the per-member limit, the member's own points of that shop), a gift chosen and
   confirmed, the exact points redemption signed with the member's card, and the gift coupon
   in the coupons screen, to collect in store.

   Out of stock, over the limit or too few points: the gift says so in the list, and the
   service refuses it with the same plain message before anything is signed or taken. */
"use strict";
(function () {
  const A = window.AllianceApp;
  const { t, esc, api, money, num, button } = A;
  const $ = (sel, root) => (root || document).querySelector(sel);
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  window.AllianceI18n.add({
    "zh-CN": {
      giftsTitle: "积分兑礼",
      giftsBody: "用各家门店的积分兑换礼品。兑换后礼品券放入卡券，到店出示即可领取。",
      noGifts: "暂时没有可兑换的礼品。",
      giftPrice: "{n} 分",
      giftWorthShort: "价值 {value}",
      giftPointsOf: "积分来自",
      giftLeft: "剩 {n} 件",
      giftLimit: "每人限 {n} 件",
      giftYouHave: "您有 {n} 分",
      giftRedeem: "兑换",
      g_out_of_stock: "已兑完",
      g_member_limit: "已达兑换上限",
      g_insufficient_points: "积分不足",
      g_paused: "暂停兑换",
      giftConfirmTitle: "确认兑换礼品",
      giftUses: "使用积分",
      giftAfter: "兑换后剩余",
      giftWorthLine: "礼品价值",
      giftHowTo: "兑换后礼品券放入卡券，到 {name} 出示领取。",
      giftConfirm: "确认兑换",
      giftRedeeming: "正在兑换…",
      giftDone: "兑换成功",
      giftDoneBody: "{gift} 的礼品券已放入卡券，到 {name} 出示即可领取。",
      giftSeeCoupon: "查看礼品券",
      backGifts: "返回礼品",
      errGiftOut: "这件礼品已经兑完了，积分没有扣除。",
      errGiftLimit: "您已达到这件礼品的兑换上限，积分没有扣除。",
      errGiftPoints: "您的 {name} 积分不够兑换这件礼品，积分没有扣除。",
      errGiftPaused: "这件礼品暂停兑换，请稍后再试。积分没有扣除。",
      errGiftGone: "这件礼品已下架，积分没有扣除。",
      giftMine: "我的兑换记录",
      gs_paying: "正在扣积分",
      gs_granting: "正在发放礼品券",
      gs_done: "礼品券已放入卡券",
      gs_failed: "未完成，请联系 {name}",
    },
    en: {
      giftsTitle: "Gifts",
      giftsBody: "Trade the points of each shop for gifts. A gift coupon lands in your coupons: show it in store to collect the gift.",
      noGifts: "No gifts on offer right now.",
      giftPrice: "{n} pts",
      giftWorthShort: "worth {value}",
      giftPointsOf: "Points of",
      giftLeft: "{n} left",
      giftLimit: "{n} per member",
      giftYouHave: "you have {n}",
      giftRedeem: "Get it",
      g_out_of_stock: "Out of stock",
      g_member_limit: "Limit reached",
      g_insufficient_points: "Not enough points",
      g_paused: "Paused",
      giftConfirmTitle: "Get this gift?",
      giftUses: "Points used",
      giftAfter: "Points left after",
      giftWorthLine: "Gift worth",
      giftHowTo: "The gift coupon goes to your coupons: show it at {name} to collect the gift.",
      giftConfirm: "Confirm",
      giftRedeeming: "Getting your gift…",
      giftDone: "Gift on its way",
      giftDoneBody: "The coupon for {gift} is in your coupons: show it at {name} to collect.",
      giftSeeCoupon: "See the gift coupon",
      backGifts: "Back to gifts",
      errGiftOut: "This gift is out of stock. No points were taken.",
      errGiftLimit: "You have had this gift as often as a member may. No points were taken.",
      errGiftPoints: "You do not have enough {name} points for this gift. No points were taken.",
      errGiftPaused: "This gift is paused for now; try again later. No points were taken.",
      errGiftGone: "This gift is no longer on offer. No points were taken.",
      giftMine: "My gifts",
      gs_paying: "Taking the points",
      gs_granting: "Sending the gift coupon",
      gs_done: "Gift coupon in your coupons",
      gs_failed: "Not completed: ask {name}",
    },
  });

  function giftRow(g) {
    const ok = g.available === "ok";
    const facts = [t("giftLeft", { n: num(g.left) })];
    if (g.per_member_limit) facts.push(t("giftLimit", { n: num(g.per_member_limit) }));
    facts.push(t("giftYouHave", { n: num(g.my_points) }));
    return `<li class="gift gift-${esc(g.available)}" data-gift="${g.gift_id}" data-available="${esc(g.available)}">
      <div class="gift-art avatar-${g.merchant_id % 6}" aria-hidden="true">✦</div>
      <div class="gift-main"><div class="gift-name">${esc(g.name)}</div>
        <div class="gift-price"><b>${esc(t("giftPrice", { n: num(g.points) }))}</b>${g.value
          ? ` <span class="muted small">${esc(t("giftWorthShort", { value: money(g.value) }))}</span>` : ""}</div>
        <div class="muted small">${facts.map(esc).join(" · ")}</div></div>
      <div class="gift-go">${ok
        ? `<button type="button" class="btn btn-primary btn-small" data-redeem="${g.gift_id}">${esc(t("giftRedeem"))}</button>`
        : `<span class="stamp" data-why="${esc(g.available)}">${esc(t("g_" + g.available))}</span>`}</div></li>`;
  }

  // A past redemption: the gift, the shop, the points it took, where it stands.
  function mineRow(r) {
    const cls = r.status === "done" ? "minus" : r.status === "failed" ? "neutral" : "";
    return `<li class="event gift-mine" data-request="${esc(r.request_id)}" data-status="${esc(r.status)}">
      <div class="event-dot ${cls}" aria-hidden="true"></div>
      <div class="event-main"><div class="event-title">${esc(r.gift_name)}</div>
        <div class="event-sub muted">${esc(t("gs_" + r.status, { name: r.merchant_name }))} · <span class="nowrap">${esc(A.when(r.created_at))}</span></div></div>
      <div class="event-amount">${esc(r.status === "failed" ? "" : "−" + num(r.points))}</div></li>`;
  }

  async function renderGifts(main, arg) {
    if (arg && arg.gift) return renderConfirm(main, arg.gift);
    A.setTitle(t("giftsTitle"));
    A.busy(main, t("loading"));
    const [list, mine] = await Promise.all([
      api("GET", "/app/api/gifts").then((r) => r.gifts),
      api("GET", "/app/api/gifts/redemptions").then((r) => r.redemptions)]);
    const shops = [];
    for (const g of list) {
      let shop = shops.find((s) => s.id === g.merchant_id);
      if (!shop) { shop = { id: g.merchant_id, name: g.merchant_name, gifts: [] }; shops.push(shop); }
      shop.gifts.push(g);
    }
    main.innerHTML = `<section class="card"><h2>${esc(t("giftsTitle"))}</h2>
        <p class="muted small">${esc(t("giftsBody"))}</p></section>
      ${shops.length ? shops.map((s) => `<section class="card" data-shop="${s.id}">
        <div class="shop-head"><div class="avatar avatar-${s.id % 6}">${A.initial(s.name)}</div><h3>${esc(s.name)}</h3></div>
        <ul class="gifts">${s.gifts.map(giftRow).join("")}</ul></section>`).join("")
        : `<section class="card"><p class="muted empty" id="no-gifts">${esc(t("noGifts"))}</p></section>`}
      ${mine.length ? `<section class="card" id="gift-history"><h3>${esc(t("giftMine"))}</h3>
        <ul class="events">${mine.map(mineRow).join("")}</ul></section>` : ""}`;
    main.querySelectorAll("[data-redeem]").forEach((b) => b.addEventListener("click", () => {
      A.go("gifts", { gift: list.find((g) => String(g.gift_id) === b.dataset.redeem) });
    }));
    A.ready();
  }

  function renderConfirm(main, g) {
    A.setTitle(t("giftsTitle"));
    main.dataset.screen = "gift-confirm";
    main.innerHTML = `<section class="card pay-head">
      <div class="avatar avatar-${g.merchant_id % 6} avatar-lg">${A.initial(g.merchant_name)}</div>
      <h2 id="gift-title">${esc(t("giftConfirmTitle"))}</h2>
      <div class="gift-name center">${esc(g.name)}</div>
      <dl class="sums">
        <div><dt>${esc(t("giftUses"))}</dt><dd id="gift-points">${esc(t("giftPrice", { n: num(g.points) }))}</dd></div>
        <div><dt>${esc(t("giftPointsOf"))}</dt><dd>${esc(g.merchant_name)}</dd></div>
        ${g.value ? `<div><dt>${esc(t("giftWorthLine"))}</dt><dd>${esc(money(g.value))}</dd></div>` : ""}
        <div class="sum-total"><dt>${esc(t("giftAfter"))}</dt><dd id="gift-after">${esc(t("giftPrice", { n: num(Math.max(0, g.my_points - g.points)) }))}</dd></div></dl>
      <p class="muted small">${esc(t("giftHowTo", { name: g.merchant_name }))}</p>
      <div id="gift-go"></div><div id="gift-msg"></div></section>`;
    const ok = button(t("giftConfirm"), "btn btn-primary btn-block btn-lg", () => redeem(main, g, ok));
    ok.id = "gift-confirm";
    $("#gift-go").appendChild(ok);
    $("#gift-go").appendChild(button(t("backGifts"), "btn btn-ghost btn-block", () => A.go("gifts")));
    A.ready();
  }

  // The offers service's refusals, in plain words: nothing was signed, nothing was taken.
  const REFUSED = { "offers-gift-out-of-stock": "errGiftOut", "offers-gift-member-limit": "errGiftLimit",
    "offers-insufficient-points": "errGiftPoints", "coupon-campaign-paused": "errGiftPaused",
    "offers-gift-disabled": "errGiftGone" };

  function errorFor(e, g, retry) {
    const code = e && (REFUSED[e.code] ? e.code : e.status === 404 ? "offers-gift-gone" : null);
    if (!code) return A.errorBox(e, retry);
    const box = document.createElement("div");
    box.className = "notice notice-error";
    box.setAttribute("role", "alert");
    box.dataset.code = code;
    box.innerHTML = `<p>${esc(t(REFUSED[code] || "errGiftGone", { name: g.merchant_name }))}</p>`;
    box.appendChild(button(t("backGifts"), "btn btn-ghost btn-small", () => A.go("gifts")));
    return box;
  }

  const couponCount = async () => (await api("GET", "/app/api/coupons")).coupons.length;

  async function redeem(main, g, ok) {
    const msg = $("#gift-msg");
    msg.innerHTML = "";
    ok.disabled = true;
    let signed;
    let before;
    try {
      const signer = await A.needSigner();
      A.busy(msg, t("giftRedeeming"));
      before = await couponCount();
      const q = await api("POST", `/app/api/gifts/${g.gift_id}/quote`);
      const td = q.typed_data;
      const signature = await signer.signTypedData(td.domain, { [td.primaryType]: td.types[td.primaryType] }, td.message);
      signed = { request_id: q.request_id, nonce: q.nonce, deadline: q.deadline, signature };
    } catch (e) {
      const box = errorFor(e, g, () => redeem(main, g, ok));
      ok.disabled = box.dataset.code in REFUSED || box.dataset.code === "offers-gift-gone";
      msg.replaceChildren(box);
      return;
    }
    await submit(main, g, signed, before);
  }

  async function submit(main, g, signed, before) {
    const msg = $("#gift-msg");
    A.busy(msg, t("giftRedeeming"));
    try {
      // Sending again after a lost answer is safe: the request id is redeemed once.
      let r = await api("POST", `/app/api/gifts/${g.gift_id}/redeem`, signed);
      const started = Date.now();
      while (["paying", "granting"].includes(r.status) && Date.now() - started < 120e3) {
        await sleep(500);
        r = await api("GET", `/app/api/gifts/${g.gift_id}/redemptions/${signed.request_id}`);
      }
      if (r.status === "failed") { const e = new Error(r.error_code || "failed"); e.code = r.error_code; throw e; }
      // The coupons list is the indexed read model: wait (a little) for the coupon to show.
      for (let i = 0; i < 40 && await couponCount() <= before; i++) await sleep(400);
      renderDone(main, g, r.status === "done");
    } catch (e) {
      msg.replaceChildren(errorFor(e, g, e.kind === "network" ? () => submit(main, g, signed, before)
        : () => A.go("gifts")));
    }
  }

  function renderDone(main, g, done) {
    main.dataset.screen = "gift-done";
    main.innerHTML = `<section class="card result">
      <div class="result-icon ${done ? "ok" : "wait"}" aria-hidden="true">${done ? "✓" : "…"}</div>
      <h2 id="result-title">${esc(done ? t("giftDone") : t("giftRedeeming"))}</h2>
      <p>${esc(t("giftDoneBody", { gift: g.name, name: g.merchant_name }))}</p>
      <div id="gift-done-go"></div></section>`;
    const see = button(t("giftSeeCoupon"), "btn btn-primary btn-block", () => A.go("coupons"));
    see.id = "gift-see-coupon";
    $("#gift-done-go").appendChild(see);
    $("#gift-done-go").appendChild(button(t("backGifts"), "btn btn-ghost btn-block", () => A.go("gifts")));
    A.ready();
  }

  A.addTab({ id: "gifts", icon: "✦", label: "tabGifts", render: renderGifts, hidden: true });
})();
