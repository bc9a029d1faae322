// hanport live page, energy accounting: the capacity-tariff card (/meter/tariff), power over the
// last hour (/meter/history, then the live readings app.js receives), energy per hour today and
// yesterday and per day this month (/meter/energy). Hidden while the accounting service has no
// state (404). No build step, no dependencies.
"use strict";

const HOUR_MS = 3600 * 1000;
const powerSamples = [];       // [received ms, net W], the last hour, of the meter shown
let accountingOf;              // the meter the card shows (app.js's `picked`: null = default)

// The meter app.js shows: `/meter` (the default meter) or `/meters/<id>`
function meterBase() {
  return typeof picked === "undefined" || picked === null ? "/meter" : meterPath(picked);
}

// A meter picked on the page: its own samples and numbers from now on
function followPicked() {
  const now = typeof picked === "undefined" ? null : picked;
  if (now === accountingOf) return false;
  accountingOf = now;
  powerSamples.length = 0;
  return true;
}

function fmtW(watts) {
  if (watts === null || watts === undefined) return "no limit in this window";
  return watts >= 1000 ? `${(watts / 1000).toFixed(2)} kW` : `${Math.round(watts)} W`;
}

async function getJson(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: ${response.status}`);
  return response.json();
}

function drawBars(id, intervals, slots, top = Math.max(0.001, ...intervals.map((i) => i.import))) {
  const host = document.getElementById(id);
  host.replaceChildren();
  for (let n = 0; n < Math.max(slots, intervals.length); n++) {
    const bar = document.createElement("i");
    const interval = intervals[n];
    bar.style.height = interval ? `${(interval.import / top) * 100}%` : "0";
    if (interval) {
      bar.title = `${interval.start.slice(0, 16).replace("T", " ")}: ${interval.import.toFixed(3)} kWh${interval.estimated ? " (estimated)" : ""}`;
      bar.classList.toggle("estimated", interval.estimated);
    }
    host.appendChild(bar);
  }
}

function dayBefore(isoDate) {
  const [y, m, d] = isoDate.split("-").map(Number);
  return new Date(Date.UTC(y, m - 1, d - 1)).toISOString().slice(0, 10);
}

async function showTariff() {
  let t;
  try {
    t = await getJson(`${meterBase()}/tariff`);
  } catch (_) {
    document.getElementById("accounting").hidden = true;
    return null;
  }
  document.getElementById("accounting").hidden = false;
  document.getElementById("tariff-rule").textContent = `(${t.rule})`;
  document.getElementById("month-value").textContent = t.value_kw.toFixed(2);
  const step = t.step;
  document.getElementById("tariff-step").textContent = step.index
    ? `${step.index} (${step.from_kw}–${step.to_kw ?? "∞"} kW)` : "–";
  document.getElementById("tariff-peaks").textContent =
    t.peaks.map((p) => `${p.kw.toFixed(2)} kW ${p.start.slice(5, 10)}`).join(", ") || "none yet";
  document.getElementById("window-kwh").textContent = t.window_energy_kwh.toFixed(3);
  document.getElementById("projected-kw").textContent = t.projected_kw.toFixed(2);
  document.getElementById("headroom").textContent = fmtW(t.headroom_w);
  return t;
}

async function showEnergy(tariff) {
  const today = tariff.energy["1d"].start.slice(0, 10);
  const yesterday = dayBefore(today);
  const [hoursToday, hoursYesterday, days] = await Promise.all([
    getJson(`${meterBase()}/energy?resolution=1h&from=${today}`),
    getJson(`${meterBase()}/energy?resolution=1h&from=${yesterday}&to=${today}`),
    getJson(`${meterBase()}/energy?resolution=1d`),
  ]);
  // today and yesterday on one scale, so their hours compare
  const top = Math.max(0.001, ...[...hoursToday.intervals, ...hoursYesterday.intervals].map((i) => i.import));
  drawBars("hours-today", hoursToday.intervals, 24, top);
  drawBars("hours-yesterday", hoursYesterday.intervals, 24, top);
  drawBars("days-month", days.intervals, 31);
}

function addPower(receivedMs, watts) {
  if (watts === null || watts === undefined) return;
  powerSamples.push([receivedMs, watts]);
  while (powerSamples.length && powerSamples[0][0] < Date.now() - HOUR_MS) powerSamples.shift();
}

function drawPower() {
  const line = document.querySelector("#power-hour polyline");
  const now = Date.now();
  const top = Math.max(1, ...powerSamples.map((s) => Math.abs(s[1])));
  line.setAttribute("points", powerSamples
    .map(([t, w]) => `${(((t - (now - HOUR_MS)) / HOUR_MS) * 600).toFixed(1)},${(120 - (Math.abs(w) / top) * 115).toFixed(1)}`)
    .join(" "));
}

async function loadLastHour() {
  try {
    const history = await getJson(`${meterBase()}/history?from=${Date.now() - HOUR_MS}&limit=3600`);
    for (const r of history.readings) addPower(r.ts, r.p[0] ?? ((r.pi[0] ?? 0) - (r.pe[0] ?? 0)));
  } catch (_) { /* the live readings fill it */ }
}

function followLive() {
  // app.js owns the /events connection and hands each reading on
  window.addEventListener("hanport-reading", (event) => {
    if (followPicked()) loadLastHour();
    const m = event.detail;
    addPower(Date.now(), m.p[0] ?? ((m.pi[0] ?? 0) - (m.pe[0] ?? 0)));
  });
}

async function refreshAccounting() {
  if (followPicked()) loadLastHour().then(drawPower);
  const tariff = await showTariff();
  if (tariff) {
    try { await showEnergy(tariff); } catch (_) { /* next round */ }
  }
}

followPicked();
loadLastHour().then(drawPower);
followLive();
refreshAccounting();
setInterval(refreshAccounting, 10000);
setInterval(drawPower, 5000);
