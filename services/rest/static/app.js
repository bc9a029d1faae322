// hanport live page: follows /events (server-sent events) and says plainly when data is stale or
// the stream is down. No build step, no dependencies.
"use strict";

const $ = (id) => document.getElementById(id);
const PHASES = ["L1", "L2", "L3"];
let staleAfter = 30;          // seconds; the server tells us its limit in HAN_STATUS events
let receivedAt = null;        // Date.now() (ms) when the newest reading was received
let redisUp = true;
let connected = false;
let why = "";                 // while no fresh reading: the ingest service's reason and fix (/han)
let whyAsked = 0;             // Date.now() when /han was last asked why
const WHY_EVERY_MS = 5000;
// Several meters: the one shown (null: the default meter, what /events serves) and the box's
// meters as GET /meters last listed them. The page's address says the meter (#meter=<id>).
let picked = null;
let meters = [];
let defaultMeter = null;
let source = null;            // the EventSource of the meter shown
const METERS_EVERY_MS = 5000;
const UNITS = { m3: "m³" };

function fmt(value, digits) {
  return value === null || value === undefined ? "–" : Number(value).toFixed(digits);
}

function buildPhases() {
  const host = $("phases");
  for (const [n, name] of PHASES.entries()) {
    const card = document.createElement("div");
    card.className = "card phase";
    card.innerHTML = `<h2>${name}</h2>
      <div class="row"><span class="name">Power</span><div class="bar" id="pbar${n}"><i></i></div><span class="num" id="p${n}">–</span></div>
      <div class="row"><span class="name">Voltage</span><div class="bar volt" id="ubar${n}"><i></i></div><span class="num" id="u${n}">–</span></div>
      <div class="row"><span class="name">Current</span><div class="bar amp" id="ibar${n}"><i></i></div><span class="num" id="i${n}">–</span></div>`;
    host.appendChild(card);
  }
}

function setBar(id, value, low, high, exporting) {
  const bar = $(id);
  const share = value === null || value === undefined ? 0 : (Math.abs(value) - low) / (high - low);
  bar.firstElementChild.style.width = `${Math.max(0, Math.min(1, share)) * 100}%`;
  if (exporting !== undefined) bar.classList.toggle("export", exporting);
}

function showReading(m) {
  const net = m.p[0] ?? ((m.pi[0] ?? 0) - (m.pe[0] ?? 0));
  const big = document.querySelector(".big");
  big.classList.toggle("importing", net > 0);
  big.classList.toggle("exporting", net < 0);
  $("direction").textContent = net < 0 ? "Exporting now" : net > 0 ? "Importing now" : "Power now";
  $("net").textContent = fmt(Math.abs(net) / 1000, 3);
  $("pi").textContent = fmt(m.pi[0] === null ? null : m.pi[0] / 1000, 3);
  $("pe").textContent = fmt(m.pe[0] === null ? null : m.pe[0] / 1000, 3);
  $("ic").textContent = fmt(m.ic, 3);
  $("ec").textContent = fmt(m.ec, 3);
  $("ric").textContent = fmt(m.ric, 3);
  $("rec").textContent = fmt(m.rec, 3);
  for (let n = 0; n < 3; n++) {
    const p = m.p[n + 1];
    const cell = $(`p${n}`);
    cell.textContent = p === null ? "–" : `${p < 0 ? "↑ " : ""}${fmt(Math.abs(p), 0)} W`;
    cell.title = p === null ? "" : p < 0 ? "exporting" : "importing";
    cell.classList.toggle("export", p !== null && p < 0);
    cell.classList.toggle("import", p !== null && p > 0);
    setBar(`pbar${n}`, p, 0, 5000, p !== null && p < 0);
    $(`u${n}`).textContent = m.u[n] === null ? "–" : `${fmt(m.u[n], 1)} V`;
    setBar(`ubar${n}`, m.u[n], 200, 260);
    $(`i${n}`).textContent = m.i[n] === null ? "–" : `${fmt(m.i[n], 2)} A`;
    setBar(`ibar${n}`, m.i[n], 0, 25);
  }
}

function banner(kind, text, detail = "") {
  const b = $("banner");
  b.className = `banner ${kind}`;
  b.textContent = text;
  if (detail) {
    const line = document.createElement("span");
    line.className = "why";
    line.textContent = detail;
    b.appendChild(line);
  }
}

// While no fresh reading arrives, /han carries `ingest`: why (the source is missing, no bytes,
// no frames...) and what to do. Asked every few seconds, only while data is missing or stale.
async function askWhy() {
  whyAsked = Date.now();
  try {
    // /han speaks of the default meter; a stale /meters/{id} says why for its meter
    const other = picked !== null && picked !== defaultMeter;
    const answer = await (await fetch(other ? meterPath(picked) : "/han")).json();
    const ingest = answer.ingest;
    why = ingest ? `Why: ${ingest.reason}.${ingest.fix ? ` Fix: ${ingest.fix}.` : ""}` : "";
  } catch (_) { why = ""; }
  refresh();
}

function refresh() {
  const age = receivedAt === null ? null : (Date.now() - receivedAt) / 1000;
  $("age").textContent = age === null ? "none yet" : age < 1.5 ? "just now" : `${Math.round(age)} s ago`;
  const stale = age === null || age > staleAfter;
  if (!stale) why = "";
  else if (connected && redisUp && Date.now() - whyAsked > WHY_EVERY_MS) askWhy();
  document.body.classList.toggle("stale", stale && receivedAt !== null);
  if (!connected) {
    banner("bad", "Connection to the hanport service lost — retrying. Values shown are old.");
  } else if (!redisUp) {
    banner("bad", "The readings stream (Redis) is down — showing the last reading held in memory.");
  } else if (age === null) {
    banner("wait", "Connected — waiting for the first reading from the meter.", why);
  } else if (stale) {
    banner("bad", `Data is stale: the last reading is ${Math.round(age)} s old (limit ${staleAfter} s). Check the meter connection.`, why);
  } else {
    banner("ok", "Live");
  }
}

function meterPath(name) {
  return `/meters/${encodeURIComponent(name)}`;
}

function connect() {
  const mine = new EventSource(picked === null ? "/events" : `${meterPath(picked)}/events`);
  source = mine;
  mine.onopen = () => { if (source === mine) { connected = true; refresh(); } };
  mine.onerror = () => {
    if (source !== mine) return;
    connected = false;
    refresh();
    if (mine.readyState === EventSource.CLOSED) {
      // e.g. 403 (no license) or 503: ask /meter why, then try again later
      fetch(picked === null ? "/meter" : meterPath(picked)).then((r) => r.json()).then((body) => {
        if (body && body.message) banner("bad", body.message);
      }).catch(() => {});
      setTimeout(() => { if (source === mine) connect(); }, 5000);
    }
  };
  mine.addEventListener("HAN_METER_MESSAGE", (event) => {
    if (source !== mine) return;
    const m = JSON.parse(event.data);
    receivedAt = Date.now();
    showReading(m);
    window.dispatchEvent(new CustomEvent("hanport-reading", { detail: m })); // accounting.js
    if (["–", "unknown"].includes($("meter-id").textContent)) loadMeterId();
    refresh();
  });
  mine.addEventListener("HAN_STATUS", (event) => {
    if (source !== mine) return;
    const s = JSON.parse(event.data);
    staleAfter = s.stale_after;
    redisUp = s.redis;
    if (s.age !== null) receivedAt = Date.now() - s.age * 1000;
    refresh();
  });
}

async function loadMeterId() {
  if (picked !== null) {
    const shown = meters.find((m) => m.id === picked);
    $("meter-id").textContent = shown ? shown.meter_id ?? shown.id : picked;
    return;
  }
  try {
    const han = await (await fetch("/han")).json();
    $("meter-id").textContent = han.meter.id ?? "unknown";
  } catch (_) { /* shown on the next reading */ }
}

// --- several meters: a button per meter, the sub-meters of the one shown ------------------
async function loadMeters() {
  try {
    const listing = await (await fetch("/meters")).json();
    meters = listing.meters || [];
    defaultMeter = listing.default;
  } catch (_) { return; }
  const nav = $("meters");
  nav.hidden = meters.length < 2 && picked === null;
  const shown = picked ?? defaultMeter;
  nav.replaceChildren(...meters.map((m) => {
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.meter = m.id;
    button.className = m.stale ? "stale" : "live";
    button.setAttribute("aria-pressed", String(m.id === shown));
    button.title = `${m.model ?? "meter"} ${m.meter_id ?? ""}: ${m.stale ? "stale" : "live"}`;
    const dot = document.createElement("span");
    dot.className = "dot";
    button.append(dot, m.id);
    if (m.default) {
      const tag = document.createElement("span");
      tag.className = "tag";
      tag.textContent = "default";
      button.append(tag);
    }
    button.addEventListener("click", () => pick(m.default && picked === null ? null : m.id));
    return button;
  }));
  loadSubmeters(shown);
}

async function loadSubmeters(name) {
  const host = $("submeters");
  const listed = meters.find((m) => m.id === name);
  if (!listed || listed.submeters.length === 0) { host.hidden = true; return; }
  let body;
  try { body = await (await fetch(meterPath(name))).json(); } catch (_) { return; }
  if (!body.submeters || (picked ?? defaultMeter) !== name) return;
  host.replaceChildren(...Object.entries(body.submeters).map(([channel, sub]) => {
    const card = document.createElement("div");
    card.className = "card";
    card.id = `sub${channel}`;
    const when = sub.ts === null ? "–" : new Date(sub.ts).toLocaleString();
    card.innerHTML = `<div class="label"></div><div class="value"><span class="num"></span> <small></small></div><div class="sub"></div>`;
    card.querySelector(".label").textContent = `${sub.medium.replace("_", " ")} · channel ${channel}`;
    card.querySelector(".num").textContent = fmt(sub.value, 3);
    card.querySelector("small").textContent = UNITS[sub.unit] ?? sub.unit ?? "";
    card.querySelector(".sub").textContent = `read ${when}`;
    return card;
  }));
  host.hidden = false;
}

function pick(name) {
  picked = name;
  history.replaceState(null, "", name === null ? location.pathname : `#meter=${encodeURIComponent(name)}`);
  if (source) source.close();
  connected = false;
  receivedAt = null;
  why = "";
  whyAsked = 0;               // the new meter's why, at once
  $("meter-id").textContent = "–";
  $("submeters").hidden = true;
  connect();
  loadMeters().then(loadMeterId);
}

const fromAddress = /^#meter=(.+)$/.exec(location.hash);
if (fromAddress) picked = decodeURIComponent(fromAddress[1]);
buildPhases();
connect();
loadMeters().then(loadMeterId);
setInterval(refresh, 1000);
setInterval(loadMeterId, 30000);
setInterval(loadMeters, METERS_EVERY_MS);
