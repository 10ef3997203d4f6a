// The consortium console: calls this node's own /v1 endpoints only (the page's CSP allows nothing
// else). Amounts are integer fen, shown as CNY exactly; every figure says the block it is as of.
"use strict";

const state = { token: sessionStorage.getItem("token") || "", me: null, names: {}, chart: null };

function cny(fen) {
  let v = BigInt(fen);
  const sign = v < 0n ? "-" : "";
  if (v < 0n) v = -v;
  const yuan = (v / 100n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  const cents = (v % 100n).toString().padStart(2, "0");
  return `${sign}¥${yuan}.${cents}`;
}

function esc(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

function name(addr) {
  const n = state.names[addr];
  return n ? `${esc(n)} <span class="addr">${esc(addr.slice(0, 10))}…</span>` : `<span class="addr">${esc(addr)}</span>`;
}

function asof(block) {
  return `<p class="asof">as of block ${esc(block)}</p>`;
}

async function api(method, path, body) {
  const headers = { "content-type": "application/json" };
  if (state.token) headers.authorization = `Bearer ${state.token}`;
  const r = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  const data = text ? JSON.parse(text) : null;
  if (!r.ok) {
    const err = new Error(data && data.detail ? `${data.code}: ${data.detail}` : `HTTP ${r.status}`);
    err.problem = data;
    throw err;
  }
  return data;
}

function table(head, rows) {
  return `<table><tr>${head.map((h) => `<th>${h}</th>`).join("")}</tr>${rows.map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join("")}</tr>`).join("")}</table>`;
}

function money(fen) {
  return `<span class="num">${cny(fen)}</span>`;
}

function show(id, yes) {
  document.getElementById(id).classList.toggle("hidden", !yes);
}

// ------------------------------------------------------------------ sign-in

async function signIn() {
  const input = document.getElementById("token");
  if (input.value) state.token = input.value.trim();
  input.value = "";
  const problem = document.getElementById("signin-problem");
  problem.textContent = "";
  try {
    state.me = await api("GET", "/v1/console/me");
  } catch (e) {
    problem.textContent = e.message;
    return;
  }
  sessionStorage.setItem("token", state.token);
  await loadMembers();
  const me = state.me;
  document.getElementById("who").innerHTML = `${esc(me.name || me.address)} (${esc(me.role)})`;
  show("signin", false);
  show("common", true);
  show("lender", me.role === "lender");
  show("platform", me.role === "platform");
  show("auditor", me.role === "auditor");
  show("guarantor", me.role === "guarantor");
  // the alert feed serves platforms, banks and the auditor; a guarantor's node refuses it
  show("alerts-section", me.role !== "guarantor");
  if (me.role === "lender") await Promise.all([loadLimits(), loadPortfolio(), loadLines()]);
  if (me.role === "platform") {
    await Promise.all([loadPending(), loadActivity()]);
    // the queue moves by the second: refreshed while the page is open
    setInterval(() => loadPending().catch(() => {}), 2000);
  }
  if (me.role === "auditor") await Promise.all([loadSeries(), loadPolicies(), loadCouncil()]);
  if (me.role === "guarantor") await loadGuarantees();
  else streamAlerts();
}

function utf8Hex(text) {
  return `0x${Array.from(new TextEncoder().encode(text), (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

// EIP-4361 through the page's EIP-1193 provider (a browser wallet's window.ethereum): the wallet
// shares its account, the node issues its one-time sign-in message for it, the wallet signs it
// (personal_sign, EIP-191) and the node exchanges the signature for a short-lived token.
async function walletSignIn() {
  const problem = document.getElementById("signin-problem");
  problem.textContent = "";
  const wallet = window.ethereum;
  if (!wallet || typeof wallet.request !== "function") {
    problem.textContent = "no browser wallet found (an EIP-1193 provider, window.ethereum)";
    return;
  }
  try {
    const [account] = await wallet.request({ method: "eth_requestAccounts" });
    if (!account) throw new Error("the wallet shared no account");
    state.token = "";
    const c = await api("POST", "/v1/auth/challenge", { address: account });
    const signature = await wallet.request({ method: "personal_sign", params: [utf8Hex(c.message), account] });
    const t = await api("POST", "/v1/auth/token", { message: c.message, signature });
    state.token = t.access_token;
  } catch (e) {
    problem.textContent = e.message || String(e);
    return;
  }
  await signIn();
}

async function loadMembers() {
  const m = await api("GET", "/v1/console/members");
  for (const x of m.members) state.names[x.address] = x.name;
  const now = Date.now() / 1000;
  document.getElementById("members").innerHTML =
    table(["member", "role", "status", "tier-1 capital (guarantor: net assets)", "attested until"],
      m.members.map((x) => [name(x.address), esc(x.role), esc(x.frozen ? `${x.status}, frozen` : x.status),
        x.role === "lender" || x.role === "guarantor" ? money(x.tier1_capital) : "",
        x.attested_until ? `${new Date(x.attested_until * 1000).toISOString().slice(0, 10)}${x.attested_until < now ? ' <span class="bad">expired</span>' : ""}` : ""])) +
    asof(m.as_of_block);
}

// ------------------------------------------------------------------ bank

async function lookup() {
  const input = document.getElementById("national-id");
  const id = input.value.trim();
  input.value = ""; // entered once: gone from the page before anything else happens
  const problem = document.getElementById("lookup-problem");
  problem.textContent = "";
  try {
    const { borrower_key: key } = await api("POST", "/v1/borrowers/key", { national_id: id, purpose: "enquiry" });
    const x = await api("GET", `/v1/borrowers/${key}/exposure`);
    const loans = await api("GET", `/v1/loans?borrower_key=${key}`);
    document.getElementById("exposure").innerHTML =
      `<p>borrower key <span class="addr" id="borrower-key">${esc(key)}</span></p>` +
      table(["", "consumer", "business"], [
        ["consortium exposure", money(x.exposure.consumer), money(x.exposure.business)],
        ["cap (R1, R2)", money(x.caps.consumer), money(x.caps.business)],
        ["headroom", money(x.headroom.consumer), money(x.headroom.business)],
      ]) +
      table(["institutions with open records (R3)", "further institutions allowed", "this bank's own share"],
        [[esc(x.lender_count), esc(x.headroom.institutions), x.own_exposure === null ? "" : money(x.own_exposure)]]) +
      table(["loan", "principal", "outstanding", "status", "lenders"],
        loans.loans.map((l) => [`<span class="addr">${esc(l.loan_id.slice(0, 14))}…</span>`, money(l.principal), money(l.outstanding),
          esc(l.status), l.tranches.map((t) => name(t.lender)).join("<br>")])) +
      asof(x.as_of_block);
  } catch (e) {
    problem.textContent = e.message;
  }
}

function gauge(used, limit) {
  const pct = limit > 0 ? Math.min(100, Number((BigInt(used) * 10000n) / BigInt(limit)) / 100) : 100;
  const cls = pct >= 95 ? "bad" : pct >= 80 ? "warn" : "";
  return `<span class="gauge ${cls}"><span data-pct="${pct}"></span></span> ${pct.toFixed(2)}% — ${cny(used)} of ${cny(limit)}`;
}

async function loadLimits() {
  const l = await api("GET", `/v1/lenders/${state.me.address}/limits`);
  document.getElementById("limits").innerHTML =
    table(["rule", "usage"], [
      ["R6: joint loans / total loan balance", gauge(l.joint_loans.outstanding, l.joint_loans.limit)],
      ...l.partners.map((p) => [`R5: with ${name(p.partner)} / tier-1 capital`, gauge(p.outstanding, p.limit)]),
    ]) +
    `<p>capital attested until ${new Date(l.attested_until * 1000).toISOString().slice(0, 10)}: ` +
    `<span class="${l.attestation_fresh ? "ok" : "bad"}">${l.attestation_fresh ? "fresh" : "stale: new tranches blocked (R8)"}</span></p>` +
    asof(l.as_of_block);
  // widths through the CSSOM: the page's CSP allows no inline style attributes
  for (const g of document.querySelectorAll("#limits [data-pct]")) g.style.width = `${g.dataset.pct}%`;
}

async function loadPortfolio() {
  // the node's portfolio read (GET /v1/lenders/{a}/portfolio): outstanding by 五级分类
  const p = await api("GET", `/v1/lenders/${state.me.address}/portfolio`);
  const tranches = {};
  for (const l of p.loans) tranches[l.category] = (tranches[l.category] || 0) + 1;
  document.getElementById("portfolio").innerHTML =
    table(["classification", "tranches", "outstanding"],
      Object.entries(p.by_category).map(([c, v]) => [esc(c.replace("_", " ")), esc(tranches[c] || 0), money(v)])
        .concat([["<b>total</b>", esc(p.loans.length), money(p.total)]])) +
    '<p class="asof">its own recorded classification of each tranche, else the days-past-due floor\'s; net of guarantee payouts</p>' +
    asof(p.as_of_block);
}

async function loadLines() {
  const l = await api("GET", "/v1/console/lines");
  const me = state.me.address;
  document.getElementById("lines").innerHTML =
    table(["line", "limit", "drawn", "this bank's share", "frozen by", ""],
      l.lines.map((x) => {
        const frozen = x.frozen_by.includes(me);
        return [`<span class="addr">${esc(x.line_id.slice(0, 14))}…</span>`, money(x.limit), money(x.drawn), money(x.own_share),
          x.frozen_by.map(name).join("<br>"),
          `<button class="${frozen ? "secondary" : ""}" data-line="${esc(x.line_id)}" data-frozen="${frozen ? "0" : "1"}">${frozen ? "Unfreeze" : "Freeze"} my share</button>`];
      })) + asof(l.as_of_block);
  for (const b of document.querySelectorAll("#lines button")) b.addEventListener("click", freeze);
}

async function freeze(ev) {
  const b = ev.target;
  const problem = document.getElementById("freeze-problem");
  problem.textContent = "";
  try {
    const r = await api("POST", `/v1/credit-lines/${b.dataset.line}/freeze`, { frozen: b.dataset.frozen === "1" });
    problem.innerHTML = `<span class="ok">${r.frozen ? "frozen" : "unfrozen"} in block ${esc(r.block_number)}</span>`;
    await loadLines();
  } catch (e) {
    problem.textContent = e.message;
  }
}

// ------------------------------------------------------------------ platform

function age(seconds) {
  const s = Math.floor(seconds);
  return s < 60 ? `${s} s` : s < 3600 ? `${Math.floor(s / 60)} min ${s % 60} s` : `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

const STATES = {
  gathering_cosignatures: "gathering co-signatures",
  queued: "signed, queued for submission",
  submitted: "submitted, waiting for confirmation",
  unsettled: "sent, outcome unknown: retry the request",
  claimed: "claimed, nothing sent",
};

async function loadPending() {
  const q = await api("GET", "/v1/originations/pending?limit=50");
  document.getElementById("pending").innerHTML =
    (q.items.length
      ? table(["loan", "state", "age", "transaction"],
        // the whole id: a platform's ids all begin with its own address (their namespace)
        q.items.map((x) => [`<span class="addr">${esc(x.loan_id)}</span>`, esc(STATES[x.state] || x.state),
          esc(age(x.age_s)), x.tx_hash ? `<span class="addr">${esc(x.tx_hash)}</span>` : ""]))
      : '<p id="pending-none">none in flight</p>') +
    `<p class="asof">${esc(q.total)} in flight as of ${esc(new Date(q.as_of * 1000).toISOString())}</p>`;
}

async function loadActivity() {
  const a = await api("GET", "/v1/console/activity");
  document.getElementById("recent").innerHTML =
    table(["loan", "principal", "status", "block"],
      a.recent.map((r) => [`<span class="addr">${esc(r.loan_id.slice(0, 14))}…</span>`, money(r.principal), esc(r.status), esc(r.block)])) +
    asof(a.as_of_block);
  document.getElementById("refusals").innerHTML =
    table(["loan", "rule", "numbers", "block"],
      a.refusals.map((r) => [`<span class="addr">${esc(r.loan_id.slice(0, 14))}…</span>`, esc(r.code),
        Object.entries(r.values).map(([k, v]) => `${esc(k)} = ${esc(v)}`).join("<br>"), esc(r.block)])) +
    asof(a.as_of_block);
  // the platform's statement (GET /v1/lenders/{a}/statement): the ledger's ServiceFees events
  const s = await api("GET", `/v1/lenders/${state.me.address}/statement`);
  const fees = Object.entries(s.loans).filter(([, l]) => l.fee_income > 0);
  document.getElementById("fees").innerHTML =
    `<p class="figure" id="fee-total">${money(s.total.fee_income)}</p>` +
    table(["loan", "fee income"], fees.map(([id, l]) => [`<span class="addr">${esc(id.slice(0, 14))}…</span>`, money(l.fee_income)])) +
    '<p class="asof">service fees the banks paid out of their interest, from the ledger\'s ServiceFees events</p>' +
    asof(s.as_of_block);
}

// ------------------------------------------------------------------ guarantor

async function loadGuarantees() {
  // the guarantor's statement (GET /v1/guarantors/{a}/statement): R10 cap, headroom, guarantees
  const s = await api("GET", `/v1/guarantors/${state.me.address}/statement`);
  document.getElementById("guarantees").innerHTML =
    table(["net assets", "cap (R10)", "outstanding", "headroom", "paid out"],
      [[money(s.net_assets), money(s.cap), money(s.outstanding), money(s.headroom), money(s.paid_out)]]) +
    table(["loan", "cover", "amount", "state", "paid out"],
      s.guarantees.map((g) => [`<span class="addr">${esc(g.loan_id.slice(0, 14))}…</span>`, `${esc(g.cover_bps / 100)}%`,
        money(g.amount), esc(g.state), money(g.paid_out)])) +
    asof(s.as_of_block);
}

// ------------------------------------------------------------------ auditor

async function runAudit() {
  const out = document.getElementById("audit");
  out.innerHTML = "<p>replaying the whole history…</p>";
  try {
    const r = await api("GET", "/v1/audit/report");
    for (const [a, n] of Object.entries(r.names || {})) state.names[a] = n;
    out.innerHTML =
      `<h3 id="verdict" class="${r.ok ? "ok" : "bad"}">${r.ok ? "PASS: no violations" : `FAIL: ${r.violation_count} violations`}</h3>` +
      table(["check", "code", "record", "message"], r.violations.map((v) => [esc(v.check), esc(v.code), esc(v.record || ""), esc(v.message)])) +
      table(["lender", "outstanding joint loans"], Object.entries(r.usage_by_lender).map(([a, v]) => [name(a), money(v)])) +
      asof(r.blocks[1]);
  } catch (e) {
    out.innerHTML = `<p class="problem">${esc(e.message)}</p>`;
  }
}

async function loadSeries() {
  const s = await api("GET", "/v1/console/exposure-series");
  const ctx = document.getElementById("exposure-chart");
  if (window.Chart) {
    state.chart = new window.Chart(ctx, {
      type: "line",
      data: { labels: s.points.map((p) => p[0]), datasets: [{ label: "consortium exposure (CNY)", data: s.points.map((p) => p[1] / 100), stepped: true, borderColor: "#1f5fa8" }] },
      options: { animation: false, scales: { x: { title: { display: true, text: "block" } } } },
    });
  }
  document.getElementById("series-asof").innerHTML = `<p>now ${cny(s.total_now)}</p>` + asof(s.as_of_block);
}

async function loadPolicies() {
  const p = await api("GET", "/v1/console/policies");
  document.getElementById("policies").innerHTML =
    table(["version", "from block", "R1 consumer cap", "R2 business cap", "R3", "R4 bps", "R5 bps", "R6 bps", "R7 days", "R8 s", "R0"],
      p.versions.map((v) => [esc(v.version), esc(v.effective_block), money(v.consumer_cap), money(v.business_cap), esc(v.max_institutions),
        esc(v.min_platform_share_bps), esc(v.max_partner_capital_bps), esc(v.max_joint_loan_bps), esc(v.max_consumer_bullet_days),
        esc(v.max_attestation_age), esc(v.min_bank_tranches)])) + asof(p.as_of_block);
}

async function loadCouncil() {
  const c = await api("GET", "/v1/console/council");
  document.getElementById("council").innerHTML =
    table(["proposal", "action", "state", "approvals", "ready at"],
      c.proposals.map((p) => [`<span class="addr">${esc(p.id.slice(0, 14))}…</span>`, esc(p.action), esc(p.state),
        `${esc(p.approvals)} / ${esc(p.threshold)}`, p.ready_at ? new Date(p.ready_at * 1000).toISOString() : ""])) +
    (c.proposals.length ? "" : "<p>none</p>");
}

// ------------------------------------------------------------------ live alerts (SSE over fetch, so the token travels in a header)

async function streamAlerts() {
  let last = sessionStorage.getItem("lastAlert") || "";
  const feed = document.getElementById("alerts");
  for (;;) {
    try {
      const headers = { authorization: `Bearer ${state.token}`, accept: "text/event-stream" };
      if (last) headers["last-event-id"] = last;
      const r = await fetch("/v1/alerts/stream", { headers });
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      const reader = r.body.getReader();
      const dec = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true }).replace(/\r\n/g, "\n");
        let i;
        while ((i = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const ev = {};
          for (const line of block.split("\n")) {
            if (line.startsWith(":")) continue;
            const k = line.indexOf(":");
            ev[line.slice(0, k)] = line.slice(k + 1).replace(/^ /, "");
          }
          if (!ev.data) continue;
          const a = JSON.parse(ev.data);
          last = ev.id;
          const li = document.createElement("li");
          li.className = `${a.severity} alert-${a.type.replace(".", "-")}`;
          const f = a.figures;
          const who = f.lender ? ` by ${name(f.lender)}` : f.member ? ` ${name(f.member)}` : "";
          li.innerHTML = `<b>${esc(a.type)}</b> ${esc(a.severity)}${who} — ${esc(a.subject.slice(0, 14))}… ` +
            `${Object.entries(f).filter(([k]) => ["status", "outstanding", "limit", "usage_bps", "own_share"].includes(k))
              .map(([k, v]) => `${esc(k)}: ${["outstanding", "limit", "own_share"].includes(k) ? cny(v) : esc(v)}`).join(", ")} ` +
            `<span class="asof">block ${esc(a.block)}</span>`;
          feed.prepend(li);
        }
      }
    } catch (e) {
      // the node restarted or the connection dropped: resume after the last id seen
    }
    await new Promise((res) => setTimeout(res, 1000));
  }
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("signin-btn").addEventListener("click", signIn);
  document.getElementById("wallet-btn").addEventListener("click", walletSignIn);
  document.getElementById("lookup-btn").addEventListener("click", lookup);
  document.getElementById("audit-btn").addEventListener("click", runAudit);
  if (state.token) signIn();
});
