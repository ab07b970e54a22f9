"""The audit's reports: a JSON document for tools and a self-contained HTML page for a board.

The HTML page carries everything it shows: its data as JSON inside the page, and the chart
library (uPlot, pinned in ``package.json``) inlined from ``node_modules``: it opens from a
USB stick on a machine with no network.
"""

from __future__ import annotations

import html
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..contracts.compiler import ROOT
from ..errors import LedgerConfigError
from .engine import AuditReport

UPLOT = ROOT / "node_modules" / "uplot" / "dist"


def write_json(report: AuditReport, path: Path) -> None:
    path.write_text(json.dumps(report.as_dict(), indent=2, sort_keys=False))


def write_html(report: AuditReport, path: Path) -> None:
    path.write_text(render_html(report))


def _chart_library() -> tuple[str, str]:
    try:
        return ((UPLOT / "uPlot.iife.min.js").read_text(),
                (UPLOT / "uPlot.min.css").read_text())
    except FileNotFoundError as exc:
        raise LedgerConfigError("the chart library is missing: run `npm ci` (package uplot)"
                                ) from exc


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _when(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC") if ts else "-"


def _short(value: Any, keep: int = 66) -> str:
    """A long value (call data, a hash) cut in the middle for a table cell."""
    text = str(value)
    return text if len(text) <= keep else f"{text[:keep - 12]}…{text[-10:]}"


def _table(head: list[str], rows: list[list[Any]], cls: str = "") -> str:
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>" for r in rows)
    if not rows:
        body = f'<tr><td colspan="{len(head)}" class="none">none</td></tr>'
    return f'<table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


def _series(doc: dict[str, Any]) -> dict[str, Any]:
    """Chart data: alliance-wide points issued / redeemed per day, net positions per period."""
    daily: dict[int, list[int]] = {}
    for rows in doc["sections"]["points"]["daily"].values():
        for day, issued, redeemed in rows:
            d = daily.setdefault(day, [0, 0])
            d[0] += issued
            d[1] += redeemed
    days = sorted(daily)
    periods = doc["sections"]["clearing"]["periods"]
    merchants = [m["merchant_id"] for m in doc["sections"]["governance"]["merchants"]]
    return {
        "days": days, "issued": [daily[d][0] for d in days],
        "redeemed": [daily[d][1] for d in days],
        "periods": [p["period"] for p in periods],
        "positions": {str(m): [p["positions"].get(m, p["positions"].get(str(m), 0))
                               for p in periods] for m in merchants},
    }


def render_html(report: AuditReport) -> str:
    doc = report.as_dict()
    js, css = _chart_library()
    secs = doc["sections"]
    gov, pts, clr = secs["governance"], secs["points"], secs["clearing"]
    verdict = ("CLEAN: every rebuilt number matches the contracts and every invariant holds"
               if report.clean else f"{len(report.violations)} VIOLATION(S) FOUND")
    findings = _table(["severity", "rule", "code", "message", "block", "transaction"],
                      [[f.severity, f.rule, f.code, f.message, f.block, f.tx]
                       for f in report.findings], "findings")
    names = {m["merchant_id"]: m for m in gov["merchants"]}
    merchants = _table(
        ["merchant", "status", "rate", "supply", "holders", "orders", "issued", "reversed",
         "redeemed here", "redeemed elsewhere", "refunded", "converted out", "converted in",
         "expired"],
        [[p["merchant_id"], names.get(p["merchant_id"], {}).get("status"),
          names.get(p["merchant_id"], {}).get("rate"), p["supply"], p["holders"], p["orders"],
          p["issued"], p["reversed"], p["redeemed_here"], p["redeemed_elsewhere"],
          p["refunded"], p["converted_out"], p["converted_in"], p["expired"]]
         for p in pts["programs"]], "num")
    mids = sorted(names)
    periods = _table(
        ["period", "closed", "total owed", "paid", "received", "escrow",
         *[f"net #{m}" for m in mids]],
        [[p["period"], "yes" if p["closed"] else "open", p["total_owed"], p["paid"],
          p["received"], p["escrow"], *[p["positions"].get(m, 0) for m in mids]]
         for p in clr["periods"]], "num")
    roles = _table(["contract", "role", "holder", "since block", "granted after deployment"],
                   [[r["contract"], r["role"], r["account"], r["since_block"],
                     "YES" if r["after_deployment"] else "no"] for r in gov["role_holders"]])
    changes = _table(["block", "contract", "event", "details"],
                     [[c["block"], c["contract"], c["event"],
                       ", ".join(f"{k}={_short(v)}" for k, v in c["args"].items())]
                      for c in gov["admin_changes"][-200:]], "changes")
    contracts = _table(["contract", "address"],
                       [[k, v] for k, v in doc["contracts"].items() if k != "programs"]
                       + [[f"program #{m}", a] for m, a in doc["contracts"]["programs"].items()])
    cpn, itm = secs.get("coupons", {}), secs.get("items", {})
    campaigns = _table(
        ["campaign", "issuer", "granted", "supply cap", "used now", "redeemed", "rolled back",
         "budget", "budget used", "paused"],
        [[c["campaign_id"], c["issuer"], c["granted"], c["supply_cap"] or "none", c["used"],
          c["redeemed"], c["rolled_back"], c["budget"], c["budget_used"],
          "yes" if c["paused"] else "no"] for c in cpn.get("campaigns", [])], "num")
    vouchers = ", ".join(f"{k}: {v}" for k, v in cpn.get("vouchers", {}).items()) or "none"
    brands = _table(
        ["brand", "products", "batches", "items activated", "sold", "recalled", "claimed",
         "flagged"],
        [[b["brand"], b["products"], b["batches"], b["items"], b["sold"], b["recalled"],
          b["claimed"], b["flagged"]] for b in itm.get("brands", [])], "num")
    steps = ", ".join(f"{k}: {v}" for k, v in itm.get("steps", {}).items()) or "none"
    item_status = ", ".join(f"{k}: {v}" for k, v in itm.get("status", {}).items()) or "none"
    data = json.dumps(_series(doc)).replace("</", "<\\/")
    full = json.dumps(doc, indent=1).replace("</", "<\\/")
    status = "clean" if report.clean else "violations"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Alliance audit, chain {doc['chain_id']} block {doc['head']}</title>
<style>{css}</style>
<style>
body{{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1100px;padding:24px;
color:#1d2430}}
h1{{font-size:22px;margin:0 0 4px}} h2{{font-size:17px;margin:28px 0 8px;
border-bottom:1px solid #d8dde6;padding-bottom:4px}}
.verdict{{padding:12px 16px;border-radius:6px;font-weight:600;margin:14px 0}}
.verdict.clean{{background:#e5f5ea;color:#155d2b}} .verdict.violations{{background:#fde8e8;
color:#8a1c1c}}
.facts{{display:grid;grid-template-columns:repeat(4,1fr);gap:8px}}
.fact{{background:#f4f6f9;border-radius:6px;padding:8px 10px}}
.fact b{{display:block;font-size:18px}}
table{{border-collapse:collapse;width:100%;font-size:12.5px;margin:6px 0}}
th,td{{border-bottom:1px solid #e3e7ee;padding:4px 6px;text-align:left;vertical-align:top}}
td{{overflow-wrap:anywhere}} th{{white-space:nowrap}}
table.findings td:nth-child(-n+3),table.changes td:nth-child(-n+3){{white-space:nowrap;
overflow-wrap:normal}}
th{{background:#f4f6f9}} table.num td{{text-align:right}} td.none{{color:#888}}
table.findings td:first-child{{font-weight:600;color:#8a1c1c}}
.chart{{margin:8px 0 4px}} footer{{color:#667;font-size:12px;margin-top:30px}}
</style></head>
<body>
<h1>Alliance Ledger audit</h1>
<div>Chain {doc['chain_id']}, registry <code>{_e(doc['registry'])}</code>, blocks
{doc['from_block']} to {doc['head']} ({_when(doc['head_time'])}); rebuilt from chain logs
alone, compared with the contracts' own views.</div>
<div class="verdict {status}" id="verdict">{_e(verdict)}</div>
<div class="facts">
<div class="fact"><b>{doc['events']}</b>events read</div>
<div class="fact"><b>{len(gov['merchants'])}</b>merchants</div>
<div class="fact"><b>{doc['views_asked']}</b>views compared</div>
<div class="fact"><b>{doc['summary']['violations']}</b>violations</div>
</div>
<h2>Findings</h2>{findings}
<h2>Points issued and redeemed per day (all programs)</h2><div id="daily" class="chart"></div>
<h2>Net position per merchant and clearing period (settlement units)</h2>
<div id="positions" class="chart"></div>
<h2>Merchants' point programs</h2>{merchants}
<h2>Clearing periods and settlement</h2>{periods}
<h2>Coupons: campaigns of the coupon book</h2>{campaigns}
<div>{cpn.get('coupons', 0)} coupons granted; vouchers: {_e(vouchers)}</div>
<h2>Items: brands of the item registry</h2>{brands}
<div>Items by status: {_e(item_status)}. Custody events by step: {_e(steps)}.
Recalled batches: {_e(itm.get('recalled_batches', []) or 'none')}.</div>
<h2>Role holders</h2>{roles}
<h2>Role grants, admissions and admin changes (latest 200)</h2>{changes}
<h2>Contracts</h2>{contracts}
<footer>Generated {_when(doc['generated_at'])} by <code>alliance audit</code>. Rebuild
{doc['timings_s'].get('rebuild')} s, checks {doc['timings_s'].get('check')} s. The full JSON
report is embedded in this page (<code>#audit-json</code>).</footer>
<script type="application/json" id="audit-data">{data}</script>
<script type="application/json" id="audit-json">{full}</script>
<script>{js}</script>
<script>
(function () {{
  var d = JSON.parse(document.getElementById('audit-data').textContent);
  var width = Math.min(1050, document.body.clientWidth - 48);
  var palette = ['#2b6cb0', '#c05621', '#2f855a', '#6b46c1', '#b83280', '#2c7a7b'];
  if (d.days.length) {{
    // One bar pair per day, days as categories: a time scale stretches a single day's
    // data across years.
    var idx = d.days.map(function (_, i) {{ return i; }});
    var label = d.days.map(function (t) {{
      return new Date(t * 1000).toISOString().slice(0, 10); }});
    new uPlot({{width: width, height: 260,
      scales: {{x: {{time: false, auto: false, range: [-0.6, idx.length - 0.4]}}}},
      axes: [{{splits: function () {{ return idx; }},
               values: function (u, splits) {{ return splits.map(function (i) {{
                 return label[i] || ''; }}); }}}}, {{size: 70}}],
      series: [{{label: 'day', value: function (u, i) {{ return i == null ? '--' : label[i]; }}}},
        {{label: 'issued', stroke: palette[0], fill: palette[0] + '99', width: 1,
          paths: uPlot.paths.bars({{size: [0.35, 60], align: -1}})}},
        {{label: 'redeemed', stroke: palette[1], fill: palette[1] + '99', width: 1,
          paths: uPlot.paths.bars({{size: [0.35, 60], align: 1}})}}]}},
      [idx, d.issued, d.redeemed], document.getElementById('daily'));
  }}
  var ms = Object.keys(d.positions);
  if (d.periods.length && ms.length) {{
    var series = [{{label: 'period'}}], data = [d.periods];
    ms.forEach(function (m, i) {{
      series.push({{label: 'merchant #' + m, stroke: palette[i % palette.length], width: 2,
                   points: {{show: true, size: 8}}}});
      data.push(d.positions[m]);
    }});
    var lo = d.periods[0], hi = d.periods[d.periods.length - 1];
    new uPlot({{width: width, height: 260,
      scales: {{x: {{time: false, auto: false, range: [lo - 0.3, hi + 0.3]}}}},
      axes: [{{label: 'period', splits: function () {{ return d.periods; }}}}, {{size: 70}}],
      series: series}}, data,
      document.getElementById('positions'));
  }}
  document.body.setAttribute('data-rendered', 'yes');
}})();
</script>
</body></html>
"""
