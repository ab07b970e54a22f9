/* The member app's products: scan a product's label (the camera where the browser offers
   one, else paste or type the code), see whether it is genuine with its journey and any
   recall, claim the brand's points for it with the member's confirmation, and the member's
   claimed items with recall notices. */
"use strict";
(function () {
  const A = window.AllianceApp;
  const { t, esc, api, button } = A;
  const $ = (sel, root) => (root || document).querySelector(sel);
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  window.AllianceI18n.add({
    "zh-CN": {
      itemsTitle: "扫码验真",
      itemsBody: "扫描商品包装内的二维码，查看是否正品、流通记录，并领取品牌积分。",
      itemCode: "商品码（链接）",
      verifyGo: "查询",
      verifying: "正在查询…",
      genuine: "正品", suspicious: "存疑", unknown: "未知商品",
      serialNo: "序列号 {serial}",
      journey: "流通记录",
      ev_commissioning: "出厂", ev_shipping: "发货", ev_receiving: "到店", ev_retail_selling: "售出",
      ev_claimed: "已领取积分", ev_recalled: "召回", ev_flagged: "标记存疑",
      ev_batch_recalled: "整批召回", ev_returning: "退货", ev_recalling: "召回",
      claimPoints: "领取 {n} 积分",
      claimingItem: "正在领取…",
      itemClaimed: "积分已到账",
      itemClaimedBody: "{brand} 的 {n} 积分已存入会员卡。",
      alreadyClaimed: "这件商品的积分已被领取过。",
      needSecret: "要领取积分，请扫描包装内的二维码。",
      myItems: "我的商品",
      noItems: "领取过积分的商品会出现在这里。",
      recallNotice: "召回通知：请停止使用，并联系 {brand} 退换。",
      itemBad: "这不是商品二维码",
      scanItemHint: "将商品二维码对准取景框",
    },
    en: {
      itemsTitle: "Check a product",
      itemsBody: "Scan the code inside the package to see whether it is genuine, its journey, and claim the brand's points.",
      itemCode: "Product code (link)",
      verifyGo: "Check",
      verifying: "Checking…",
      genuine: "Genuine", suspicious: "Suspicious", unknown: "Unknown product",
      serialNo: "Serial {serial}",
      journey: "Journey",
      ev_commissioning: "Made", ev_shipping: "Shipped", ev_receiving: "Arrived in store", ev_retail_selling: "Sold",
      ev_claimed: "Points claimed", ev_recalled: "Recalled", ev_flagged: "Flagged",
      ev_batch_recalled: "Batch recalled", ev_returning: "Returned", ev_recalling: "Recalling",
      claimPoints: "Claim {n} points",
      claimingItem: "Claiming…",
      itemClaimed: "Points added",
      itemClaimedBody: "{n} points from {brand} are on your card.",
      alreadyClaimed: "The points of this product were claimed already.",
      needSecret: "To claim points, scan the code inside the package.",
      myItems: "My products",
      noItems: "Products you claim points for appear here.",
      recallNotice: "Recall notice: stop using it and contact {brand} for a replacement.",
      itemBad: "This is not a product code",
      scanItemHint: "Point the camera at the product's code",
    },
  });

  const looksLikeItem = (s) => /\/01\/\d{8,14}\/21\//.test(s || "");

  async function renderItems(main, arg) {
    A.setTitle(t("itemsTitle"));
    A.busy(main, t("loading"));
    const mine = (await api("GET", "/app/api/items")).items;
    main.innerHTML = `<section class="card"><h2>${esc(t("itemsTitle"))}</h2>
        <p class="muted small">${esc(t("itemsBody"))}</p><div id="item-scan"></div>
        <label class="field"><span>${esc(t("itemCode"))}</span>
          <input id="item-code" autocomplete="off" autocapitalize="none" spellcheck="false" inputmode="url"></label>
        <div id="item-go"></div></section>
      <div id="item-result"></div>
      <section class="card"><h3>${esc(t("myItems"))}</h3>
        ${mine.length ? `<ul class="item-list" id="my-items">${mine.map(mineRow).join("")}</ul>`
          : `<p class="muted empty">${esc(t("noItems"))}</p>`}</section>`;
    const camera = !!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia);
    if (camera) {
      const scan = button("▣  " + t("scan"), "btn btn-primary btn-block btn-lg", () => A.scanQr(main, {
        hint: t("scanItemHint"), wrong: t("itemBad"), back: () => A.go("items"), backLabel: t("itemCode"),
        accept: (text) => { if (!looksLikeItem(text)) return false; A.go("items", { code: text }); return true; },
      }));
      scan.id = "item-scan-button";
      $("#item-scan").appendChild(scan);
    }
    const go = button(t("verifyGo"), camera ? "btn btn-ghost btn-block" : "btn btn-primary btn-block",
      () => verify(main, $("#item-code").value.trim()));
    go.id = "item-verify";
    $("#item-go").appendChild(go);
    A.ready();
    if (arg && arg.code) { $("#item-code").value = arg.code; await verify(main, arg.code); }
  }

  function mineRow(it) {
    return `<li class="item-row${it.recalled ? " item-recalled" : ""}" data-serial="${esc(it.serial)}">
      <div class="item-main"><div class="item-name">${esc(it.product || it.gtin)}</div>
        <div class="muted small">${esc(it.brand_name || "")} · ${esc(t("serialNo", { serial: it.serial }))}</div>
        ${it.recalled ? `<div class="recall" role="alert">${esc(t("recallNotice", { brand: it.brand_name || "" }))}</div>` : ""}</div>
      <div class="item-pts">+${A.num(it.claim_points)}</div></li>`;
  }

  async function verify(main, code) {
    const box = $("#item-result");
    if (!looksLikeItem(code)) { box.innerHTML = `<div class="notice notice-error">${esc(t("itemBad"))}</div>`; return; }
    A.busy(box, t("verifying"));
    let v;
    try { v = await api("POST", "/app/api/items/verify", { code }); } catch (e) {
      box.replaceChildren(A.errorBox(e, () => verify(main, code))); return;
    }
    const lang = window.AllianceI18n.lang;
    const msg = (v.message && (v.message[lang] || v.message["zh-CN"])) || "";
    box.innerHTML = `<section class="card verdict verdict-${esc(v.verdict)}" id="verdict" data-verdict="${esc(v.verdict)}">
      <div class="verdict-badge">${v.verdict === "genuine" ? "✓" : v.verdict === "suspicious" ? "!" : "?"} ${esc(t(v.verdict))}</div>
      <h2 class="item-name">${esc(v.product || "")}</h2>
      <div class="muted small">${esc(v.brand_name || "")}${v.serial ? " · " + esc(t("serialNo", { serial: v.serial })) : ""}</div>
      <p>${esc(msg)}</p>
      ${v.recalled ? `<div class="recall" role="alert">${esc(t("recallNotice", { brand: v.brand_name || "" }))}</div>` : ""}
      ${v.history && v.history.length ? `<h3>${esc(t("journey"))}</h3><ol class="journey">${v.history.map((h) =>
        `<li><b>${esc(t("ev_" + h.kind))}</b> <span class="muted small">${esc(A.when(h.at))}</span></li>`).join("")}</ol>` : ""}
      <div id="claim-go"></div><div id="claim-msg"></div></section>`;
    if (v.claimable && v.claim_points > 0) {
      const b = button(t("claimPoints", { n: A.num(v.claim_points) }), "btn btn-primary btn-block btn-lg",
        () => claim(main, code, v, b));
      b.id = "item-claim";
      $("#claim-go").appendChild(b);
    } else if (v.claimed) {
      $("#claim-msg").innerHTML = `<p class="muted">${esc(t("alreadyClaimed"))}</p>`;
    } else if (v.verdict === "genuine" && v.status === "sold" && !code.includes("?s=")) {
      $("#claim-msg").innerHTML = `<p class="muted">${esc(t("needSecret"))}</p>`;
    }
  }

  async function claim(main, code, v, b) {
    const msg = $("#claim-msg");
    msg.innerHTML = "";
    b.disabled = true;
    try {
      const signer = await A.needSigner();
      A.busy(msg, t("claimingItem"));
      const q = await api("POST", "/app/api/items/claim/quote", { code });
      const td = q.typed_data;
      const signature = await signer.signTypedData(td.domain, { [td.primaryType]: td.types[td.primaryType] }, td.message);
      let op = await api("POST", "/app/api/items/claim", { code, nonce: q.nonce, deadline: q.deadline, signature });
      const started = Date.now();
      while (!["confirmed", "failed"].includes(op.status) && Date.now() - started < 90e3) {
        await sleep(500);
        op = await api("GET", `/app/api/operations/${op.id}`);
      }
      if (op.status !== "confirmed") { const e = new Error(op.error_code || "failed"); e.code = op.error_code; throw e; }
      main.dataset.screen = "item-claimed";
      $("#item-result").innerHTML = `<section class="card result"><div class="result-icon ok" aria-hidden="true">✓</div>
        <h2 id="result-title">${esc(t("itemClaimed"))}</h2>
        <p>${esc(t("itemClaimedBody", { n: A.num(q.points), brand: v.brand_name || "" }))}</p><div id="claimed-go"></div></section>`;
      $("#claimed-go").appendChild(button(t("backHome"), "btn btn-primary btn-block", () => A.go("card")));
    } catch (e) {
      b.disabled = false;
      msg.replaceChildren(A.errorBox(e, () => claim(main, code, v, b)));
    }
  }

  A.addTab({ id: "items", icon: "▣", label: "scanItem", render: renderItems, hidden: true });
  A.onLink((params) => {
    const c = params.get("item");
    return c ? { tab: "items", arg: { code: c } } : null;
  });
})();
