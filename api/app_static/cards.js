/* The member app's membership cards and tiers (Me → Membership): per shop and alliance-wide,
   the member's card (its tier, until when, or expired), the tier reached with what it adds to
   the points earned there, how many points the next tier still needs, and the whole ladder. */
"use strict";
(function () {
  const A = window.AllianceApp;
  const { t, esc, api, num } = A;

  window.AllianceI18n.add({
    "zh-CN": {
      msTitle: "会员卡与等级",
      msBody: "各门店和联盟的会员卡、会员等级。等级按一段时间内获得的积分计算，高等级消费可获更多积分。",
      msNone: "还没有会员卡或会员等级。在联盟门店消费积累积分即可升级。",
      msAlliance: "联盟通用等级",
      msCardOf: "{name} 会员卡",
      msTierN: "{n} 级",
      msValidUntil: "有效期至 {date}",
      msExpired: "已于 {date} 过期",
      msLevel: "当前等级",
      msNoLevel: "尚未达到等级",
      msBoost: "积分 ×{x}",
      msNext: "再获得 {n} 分升级为 {name}",
      msTop: "已是最高等级",
      msInWindow: "近 {days} 天获得 {n} 分",
      msStep: "近 {days} 天获得 {n} 分",
      msReached: "已达到",
    },
    en: {
      msTitle: "Membership",
      msBody: "Your membership cards and tiers at each shop and across the alliance. Tiers count the points you earned over a period; a higher tier earns more points.",
      msNone: "No membership card or tier yet. Earn points at the alliance's shops to reach one.",
      msAlliance: "Alliance-wide tiers",
      msCardOf: "{name} card",
      msTierN: "tier {n}",
      msValidUntil: "valid until {date}",
      msExpired: "expired {date}",
      msLevel: "Your tier",
      msNoLevel: "No tier yet",
      msBoost: "points ×{x}",
      msNext: "{n} more points to reach {name}",
      msTop: "Top tier reached",
      msInWindow: "{n} points in the last {days} days",
      msStep: "{n} points in {days} days",
      msReached: "reached",
    },
  });

  const boost = (bps) => (bps / 10000).toFixed(2).replace(/0$/, "").replace(/\.0$/, "");

  function scope(s) {
    const name = s.merchant_id === 0 ? t("msAlliance") : s.merchant_name;
    const head = s.merchant_id === 0
      ? `<div class="avatar avatar-0" aria-hidden="true">★</div>`
      : `<div class="avatar avatar-${s.merchant_id % 6}">${A.initial(s.merchant_name)}</div>`;
    let card = "";
    if (s.card) {
      const tier = s.card.tier_name || t("msTierN", { n: s.card.tier });
      const until = s.card.status === "valid" ? t("msValidUntil", { date: A.day(s.card.expires_at) })
        : t("msExpired", { date: A.day(s.card.expires_at) });
      card = `<div class="ms-card ms-card-${esc(s.card.status)}" data-card-status="${esc(s.card.status)}">
        <div class="ms-card-top"><span>${esc(t("msCardOf", { name }))}</span><span class="mc-chip" aria-hidden="true"></span></div>
        <div class="ms-card-tier">${esc(tier)}</div><div class="ms-card-until">${esc(until)}</div></div>`;
    }
    let level = "";
    if (s.tiers.length) {
      const next = s.tiers.find((x) => !x.reached);
      const top = s.tiers[s.tiers.length - 1];
      level = `<div class="ms-level"><div class="ms-level-row"><span class="muted">${esc(t("msLevel"))}</span>
          <b class="ms-level-name" data-level="${s.level}">${esc(s.level ? s.tier_name : t("msNoLevel"))}</b>
          ${s.multiplier_bps > 10000 ? `<span class="pill-ok">${esc(t("msBoost", { x: boost(s.multiplier_bps) }))}</span>` : ""}</div>
        ${s.points_in_window != null ? `<div class="muted small">${esc(t("msInWindow", { n: num(s.points_in_window), days: num(top.window_days) }))}</div>` : ""}
        ${next && s.next_needed != null ? `<progress class="ms-progress" max="${next.min_points}" value="${Math.min(s.points_in_window, next.min_points)}"></progress>
          <div class="small ms-next" id="ms-next-${s.merchant_id}">${esc(t("msNext", { n: num(s.next_needed), name: next.name }))}</div>`
          : !next ? `<div class="small ms-next">${esc(t("msTop"))}</div>` : ""}
        <ol class="ms-ladder">${s.tiers.map((x) => `<li class="${x.reached ? "ms-reached" : ""}">
          <span class="ms-step-name">${esc(x.name)}</span>
          <span class="muted small">${esc(t("msStep", { n: num(x.min_points), days: num(x.window_days) }))}${x.multiplier_bps > 10000 ? " · " + esc(t("msBoost", { x: boost(x.multiplier_bps) })) : ""}</span>
          ${x.reached ? `<span class="pill-ok">${esc(t("msReached"))}</span>` : ""}</li>`).join("")}</ol></div>`;
    }
    return `<section class="card" data-scope="${s.merchant_id}">
      <div class="shop-head">${head}<h3>${esc(name)}</h3></div>${card}${level}</section>`;
  }

  async function renderCards(main) {
    A.setTitle(t("msTitle"));
    A.busy(main, t("loading"));
    const scopes = (await api("GET", "/app/api/memberships")).scopes;
    main.innerHTML = `<section class="card"><h2>${esc(t("msTitle"))}</h2>
        <p class="muted small">${esc(t("msBody"))}</p></section>
      ${scopes.length ? scopes.map(scope).join("")
        : `<section class="card"><p class="muted empty" id="no-memberships">${esc(t("msNone"))}</p></section>`}`;
    A.ready();
  }

  A.addTab({ id: "memberships", icon: "★", label: "msEntry", render: renderCards, hidden: true });
})();
