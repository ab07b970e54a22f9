/* The console's words, in Chinese (default) and English. */
"use strict";
(function () {
  const WORDS = {
    "zh-CN": {
      title: "联盟商户控制台",
      signInTitle: "登录控制台",
      signInBody: "使用商户 API 密钥（或运营方凭证）登录。密钥只在本浏览器中用于签名，不会发送到服务器。",
      keyId: "密钥 ID",
      secret: "密钥",
      signIn: "登录",
      signingIn: "正在登录…",
      signOut: "退出",
      wrongKey: "密钥 ID 或密钥不正确",
      failed: "请求失败，请稍后再试",
      operator: "联盟运营方",
      merchant: "商户",
      today: "今日数据",
      todayNote: "按链上时间（UTC）的今日，数据来自已确认区块 #{block}，每 2 秒自动刷新",
      issued: "今日发放积分",
      redeemed: "今日本店核销积分",
      foreign: "其中他店积分",
      redeemedAll: "今日全联盟核销积分",
      foreignAll: "其中跨店核销",
      issues: "{n} 笔发放",
      redemptions: "{n} 笔核销",
      live: "实时",
      trend: "今日走势（本页打开以来）",
      perMerchant: "各商户今日数据",
      colMerchant: "商户",
      positions: "清算头寸与对账单",
      positionsNote: "正数为应收，负数为应付（结算单位：分）",
      period: "周期",
      status: "状态",
      open: "进行中",
      closed: "已结算 {date}",
      net: "净头寸",
      accepted: "受理他店价值",
      paid: "已付",
      received: "已收",
      outstanding: "待结清",
      totalOwed: "周期应付总额",
      statement: "对账单",
      download: "下载 CSV",
      chooseMerchant: "选择商户",
      allMerchants: "全部商户（合计）",
      webhooks: "Webhook 通知",
      webhooksNA: "此版本的服务尚未提供 Webhook 接口。接口上线后，可在这里登记回调地址、查看投递记录并重新投递。",
      notAvailable: "暂不可用",
      points: "积分",
      fen: "分",
    },
    en: {
      title: "Alliance merchant console",
      signInTitle: "Sign in to the console",
      signInBody: "Sign in with your merchant API key (or the operator's credentials). The secret only signs the request in this browser; it is never sent to the server.",
      keyId: "Key ID",
      secret: "Secret",
      signIn: "Sign in",
      signingIn: "Signing in…",
      signOut: "Sign out",
      wrongKey: "Wrong key ID or secret",
      failed: "The request failed, please try again",
      operator: "Alliance operator",
      merchant: "Merchant",
      today: "Today",
      todayNote: "Today by the chain's clock (UTC), from confirmed block #{block}, refreshed every 2 s",
      issued: "Points issued today",
      redeemed: "Points redeemed here today",
      foreign: "of which other merchants' points",
      redeemedAll: "Points redeemed today (every merchant)",
      foreignAll: "of which at another merchant",
      issues: "Issues: {n}",
      redemptions: "Redemptions: {n}",
      live: "Live",
      trend: "Today's trend (since this page opened)",
      perMerchant: "Every merchant today",
      colMerchant: "Merchant",
      positions: "Clearing positions and statements",
      positionsNote: "Positive: owed to you; negative: you owe (settlement units, fen)",
      period: "Period",
      status: "Status",
      open: "Open",
      closed: "Closed {date}",
      net: "Net position",
      accepted: "Foreign value accepted",
      paid: "Paid",
      received: "Received",
      outstanding: "Outstanding",
      totalOwed: "Period total owed",
      statement: "Statement",
      download: "Download CSV",
      chooseMerchant: "Merchant",
      allMerchants: "All merchants (totals)",
      webhooks: "Webhooks",
      webhooksNA: "This build of the service has no webhooks API yet. Once it has, register callback URLs here, read the delivery log and replay deliveries.",
      notAvailable: "Not available",
      points: "points",
      fen: "fen",
    },
  };
  let lang = "zh-CN";
  try {
    const saved = window.localStorage.getItem("console.lang");
    if (saved && WORDS[saved]) lang = saved;
    else if (!/^zh/i.test(navigator.language || "zh")) lang = "en";
  } catch (e) { /* storage refused: keep the default */ }
  function t(key, vars) {
    let s = (WORDS[lang] && WORDS[lang][key]) || WORDS.en[key] || key;
    if (vars) for (const k of Object.keys(vars)) s = s.split("{" + k + "}").join(String(vars[k]));
    return s;
  }
  function setLang(l) {
    lang = WORDS[l] ? l : "en";
    try { window.localStorage.setItem("console.lang", lang); } catch (e) { /* ignore */ }
    document.documentElement.lang = lang;
  }
  window.ConsoleI18n = { t, setLang, lang: () => lang };
})();
