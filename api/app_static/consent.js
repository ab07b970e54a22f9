/* The member app's data sharing: the member's profile (kept only if entered) and, per shop
   and kind, a consent the member grants or revokes with a confirmation. Each grant and
   revocation is recorded on the alliance's ledger with the hash of the text shown here;
   a shop sees a field only while its consent is live. */
"use strict";
(function () {
  const A = window.AllianceApp;
  const { t, esc, api, button } = A;
  const $ = (sel, root) => (root || document).querySelector(sel);
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  window.AllianceI18n.add({
    "zh-CN": {
      sharingBody: "您决定哪家商户能看到什么。每次授权和撤销都会记录在联盟账本上（只记录授权内容的摘要，不含您的数据），随时可撤销。",
      profileTitle: "我的资料",
      birthMonth: "出生月份",
      phoneNo: "手机号码",
      notSet: "不填写",
      save: "保存",
      saved: "已保存",
      k_birth_month: "出生月份", k_phone: "手机号码", k_history: "其他商户的积分记录",
      granted: "已授权",
      grantGo: "授权",
      revokeGo: "撤销",
      updating: "正在记录…",
      consentDone: "已记录在联盟账本上",
      rewardPts: "授权送 {n} 积分",
    },
    en: {
      sharingBody: "You decide which shop sees what. Every grant and revocation is recorded on the alliance ledger (a fingerprint of the text you agreed to, never your data); revoke at any time.",
      profileTitle: "My details",
      birthMonth: "Birth month",
      phoneNo: "Phone number",
      notSet: "Not given",
      save: "Save",
      saved: "Saved",
      k_birth_month: "Birth month", k_phone: "Phone number", k_history: "Points history at other shops",
      granted: "Shared",
      grantGo: "Share",
      revokeGo: "Revoke",
      updating: "Recording…",
      consentDone: "Recorded on the alliance ledger",
      rewardPts: "+{n} points for sharing",
    },
  });

  async function renderSharing(main) {
    A.setTitle(t("sharing"));
    A.busy(main, t("loading"));
    const [p, c] = await Promise.all([api("GET", "/app/api/profile"), api("GET", "/app/api/consents")]);
    const lang = window.AllianceI18n.lang;
    const byShop = new Map();
    for (const x of c.consents) {
      if (!byShop.has(x.merchant_id)) byShop.set(x.merchant_id, { name: x.merchant_name, rows: [] });
      byShop.get(x.merchant_id).rows.push(x);
    }
    const months = Array.from({ length: 12 }, (_, i) => i + 1);
    main.innerHTML = `<section class="card"><h2>${esc(t("sharing"))}</h2><p class="muted small">${esc(t("sharingBody"))}</p></section>
      <section class="card"><h3>${esc(t("profileTitle"))}</h3>
        <label class="field"><span>${esc(t("birthMonth"))}</span><select id="pf-month"><option value="">${esc(t("notSet"))}</option>
          ${months.map((m) => `<option value="${m}"${p.birth_month === m ? " selected" : ""}>${m}</option>`).join("")}</select></label>
        <label class="field"><span>${esc(t("phoneNo"))}</span><input id="pf-phone" inputmode="tel" autocomplete="tel" value="${esc(p.phone || "")}"></label>
        <div id="pf-go"></div><div id="pf-msg"></div></section>
      ${[...byShop.entries()].map(([mid, shop]) => `<section class="card shop-consents" data-merchant="${mid}">
        <div class="shop-head"><div class="avatar avatar-${mid % 6}">${A.initial(shop.name)}</div><b>${esc(shop.name)}</b></div>
        <ul class="consents">${shop.rows.map((r) => `<li data-kind="${esc(r.kind)}" data-live="${r.live ? 1 : 0}">
          <div class="consent-main"><div class="consent-name">${esc(t("k_" + r.kind))}${r.live ? ` <span class="pill-ok">${esc(t("granted"))}</span>` : ""}${!r.live && r.reward_points > 0 ? ` <span class="pill-gift">${esc(t("rewardPts", { n: A.num(r.reward_points) }))}</span>` : ""}</div>
          <div class="muted small">${esc(r.text[lang] || r.text["zh-CN"])}</div></div>
          <div class="consent-go"></div></li>`).join("")}</ul><div class="consent-msg"></div></section>`).join("")}`;
    const save = button(t("save"), "btn btn-primary btn-block", async () => {
      save.disabled = true;
      try {
        const month = $("#pf-month").value;
        await api("PUT", "/app/api/profile", { birth_month: month ? Number(month) : null,
          phone: $("#pf-phone").value.trim() || null });
        A.toast(t("saved"));
      } catch (e) { $("#pf-msg").replaceChildren(A.errorBox(e)); }
      save.disabled = false;
    });
    save.id = "pf-save";
    $("#pf-go").appendChild(save);
    main.querySelectorAll(".shop-consents").forEach((sec) => {
      const mid = Number(sec.dataset.merchant);
      sec.querySelectorAll("li[data-kind]").forEach((li) => {
        const live = li.dataset.live === "1";
        const b = button(t(live ? "revokeGo" : "grantGo"), live ? "btn btn-ghost btn-small" : "btn btn-primary btn-small",
          () => change(main, sec, mid, li.dataset.kind, !live, b));
        li.querySelector(".consent-go").appendChild(b);
      });
    });
    A.ready();
  }

  async function change(main, sec, mid, kind, grant, b) {
    const msg = sec.querySelector(".consent-msg");
    msg.innerHTML = "";
    b.disabled = true;
    try {
      const signer = await A.needSigner();
      A.busy(msg, t("updating"));
      const body = { merchant_id: mid, kind, grant };
      const q = await api("POST", "/app/api/consents/quote", body);
      const td = q.typed_data;
      const signature = await signer.signTypedData(td.domain, { [td.primaryType]: td.types[td.primaryType] }, td.message);
      let op = await api("POST", "/app/api/consents", Object.assign({}, body, { nonce: q.nonce, deadline: q.deadline, signature }));
      const started = Date.now();
      while (!["confirmed", "failed"].includes(op.status) && Date.now() - started < 90e3) {
        await sleep(500);
        op = await api("GET", `/app/api/operations/${op.id}`);
      }
      if (op.status !== "confirmed") { const e = new Error(op.error_code || "failed"); e.code = op.error_code; throw e; }
      A.toast(t("consentDone"));
      A.go("sharing");
    } catch (e) {
      b.disabled = false;
      msg.replaceChildren(A.errorBox(e, () => change(main, sec, mid, kind, grant, b)));
    }
  }

  A.addTab({ id: "sharing", icon: "⚿", label: "sharing", render: renderSharing, hidden: true });
})();
