// The plantwatch dashboard: overview, alerts with acknowledge, models, live per-line charts. No dependencies.
"use strict";

const API = window.PLANTWATCH_API || "";
const REFRESH_MS = 5000;
const WINDOW_MS = 15 * 60 * 1000;
const TYPES = ["temperature", "vibration", "pressure"];
const state = { token: null, plant: null, timer: null };

function readToken() {
  const match = /token=([^&]+)/.exec(window.location.hash);
  if (match) {
    sessionStorage.setItem("plantwatch-token", decodeURIComponent(match[1]));
    history.replaceState(null, "", window.location.pathname);
  }
  return sessionStorage.getItem("plantwatch-token");
}

function showError(text) {
  document.getElementById("error").textContent = text || "";
}

async function api(path, params = {}, options = {}) {
  const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined && v !== null));
  const url = `${API}${path}${query.toString() ? "?" + query : ""}`;
  const response = await fetch(url, {
    ...options,
    headers: { Authorization: `Bearer ${state.token}`, "Content-Type": "application/json", ...(options.headers || {}) },
  });
  if (response.status === 401) {
    document.getElementById("token-form").hidden = false;
    throw new Error("the token was refused: paste a valid one");
  }
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    throw new Error(`${path}: ${response.status} ${JSON.stringify(body.detail || "")}`);
  }
  return response.json();
}

function text(tag, content, cls) {
  const el = document.createElement(tag);
  el.textContent = content;
  if (cls) el.className = cls;
  return el;
}

function time(iso) {
  return iso ? new Date(iso).toLocaleString() : "";
}

function renderOverview(lines) {
  const root = document.getElementById("overview");
  root.replaceChildren();
  for (const line of lines) {
    const card = document.createElement("div");
    card.className = "card";
    card.dataset.line = line.line;
    const cls = line.health_score >= 90 ? "good" : line.health_score >= 60 ? "warn" : "bad";
    card.append(text("div", line.line), text("div", line.health_score.toFixed(1), `score ${cls}`));
    card.append(text("div", `${line.open_alerts} open alert(s) · ${line.sensors.length} sensors`, "muted"));
    card.append(text("div", `model ${line.models.join(", ")}`, "muted"));
    card.append(text("div", `last reading ${time(line.last_ts)}`, "muted"));
    root.append(card);
  }
}

function renderAlerts(alerts) {
  const body = document.querySelector("#alerts tbody");
  body.replaceChildren();
  for (const alert of alerts) {
    const row = document.createElement("tr");
    row.dataset.alertId = alert.alert_id;
    row.append(text("td", time(alert.raised_at)), text("td", alert.line), text("td", alert.asset));
    row.append(text("td", alert.sensor_id), text("td", alert.kind), text("td", alert.state));
    row.append(text("td", alert.acknowledged_by ? `${alert.acknowledged_by}, ${time(alert.acknowledged_at)}` : "—", "acked"));
    const cell = document.createElement("td");
    if (!alert.acknowledged_by) {
      const button = text("button", "Acknowledge", "ack");
      button.addEventListener("click", () => acknowledge(alert.alert_id, button));
      cell.append(button);
    }
    row.append(cell);
    body.append(row);
  }
  if (alerts.length === 0) {
    const row = document.createElement("tr");
    const cell = text("td", "no alerts", "muted");
    cell.colSpan = 8;
    row.append(cell);
    body.append(row);
  }
}

function driftText(d) {
  const psi = `PSI ${d.psi.toFixed(3)} (threshold ${d.threshold})`;
  const held = `${d.summaries}/${d.summaries_per_check} windows, ${d.scores} scores`;
  const label = d.status === "partial" ? "partial" : d.drifted ? "drifted" : "stable";
  const retrain = d.retrain_requested_at ? `, retraining requested ${time(d.retrain_requested_at)}` : "";
  return `${label}: ${psi}, ${held}${retrain}`;
}

function driftCell(drift) {
  if (!drift) return text("td", "not reported yet", "muted");
  const cls = drift.drifted ? "bad drift" : drift.status === "partial" ? "muted drift" : "good drift";
  const cell = text("td", driftText(drift), cls);
  cell.dataset.driftStatus = drift.status;
  cell.dataset.psi = String(drift.psi);
  return cell;
}

function renderModels(lines) {
  const body = document.querySelector("#models tbody");
  body.replaceChildren();
  for (const line of lines) {
    const models = line.models.length ? line.models : line.drift.map((d) => ({ name: d.model_name, version: d.model_version, sensors: 0 }));
    for (const model of models) {
      const row = document.createElement("tr");
      const drift = line.drift.find((d) => d.model_name === model.name && d.model_version === model.version);
      row.append(text("td", line.line), text("td", model.name), text("td", model.version));
      row.append(text("td", String(model.sensors)), driftCell(drift));
      body.append(row);
    }
  }
}

function lineBlock(line) {
  let block = document.querySelector(`.line[data-line="${CSS.escape(line)}"]`);
  if (block) return block;
  block = document.createElement("div");
  block.className = "line";
  block.dataset.line = line;
  block.append(text("h3", line));
  const charts = document.createElement("div");
  charts.className = "charts";
  for (const type of TYPES) {
    const chart = document.createElement("div");
    chart.className = "chart";
    chart.dataset.sensorType = type;
    chart.append(text("h4", type));
    chart.append(document.createElementNS("http://www.w3.org/2000/svg", "svg"));
    const legend = document.createElement("div");
    legend.className = "legend";
    chart.append(legend);
    charts.append(chart);
  }
  block.append(charts);
  document.getElementById("lines").append(block);
  return block;
}

async function renderLine(line) {
  const end = Date.now();
  const start = end - WINDOW_MS;
  const data = await api("/v1/series", {
    plant: state.plant, line, bucket: "10s",
    start: new Date(start).toISOString(), end: new Date(end).toISOString(),
  });
  const block = lineBlock(line);
  for (const type of TYPES) {
    const chart = block.querySelector(`.chart[data-sensor-type="${type}"]`);
    const series = data.sensors.filter((s) => s.sensor_type === type).map((s) => ({
      label: `${s.asset} (${s.unit})`,
      points: s.buckets.map((b) => ({ t: Date.parse(b.ts), v: b.avg, anomalies: b.anomalies })),
    }));
    const drawn = window.drawChart(chart.querySelector("svg"), series, start, end);
    chart.dataset.points = String(drawn);
    const legend = chart.querySelector(".legend");
    legend.replaceChildren(...series.map((s, i) => {
      const item = text("span", `■ ${s.label}`);
      item.style.color = window.CHART_COLORS[i % window.CHART_COLORS.length];
      return item;
    }));
  }
}

async function acknowledge(alertId, button) {
  button.disabled = true;
  try {
    await api(`/v1/alerts/${encodeURIComponent(alertId)}/acknowledge`, {}, {
      method: "POST", body: JSON.stringify({ note: "acknowledged from the dashboard" }),
    });
    await refresh();
  } catch (error) {
    button.disabled = false;
    showError(error.message);
  }
}

async function refresh() {
  try {
    const [overview, alerts, models] = await Promise.all([
      api("/v1/overview", { plant: state.plant }),
      api("/v1/alerts", { plant: state.plant, limit: 50 }),
      api("/v1/models", { plant: state.plant }),
    ]);
    renderOverview(overview);
    renderAlerts(alerts);
    renderModels(models);
    overview.forEach((line) => lineBlock(line.line));  // blocks in overview order, filled as answers come
    await Promise.all(overview.map((line) => renderLine(line.line)));
    document.getElementById("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
    document.body.dataset.ready = "true";
    showError("");
  } catch (error) {
    showError(error.message);
  }
}

async function start() {
  state.token = readToken();
  if (!state.token) {
    document.getElementById("token-form").hidden = false;
    return;
  }
  try {
    const plants = await api("/v1/plants");
    const select = document.getElementById("plant");
    select.replaceChildren(...plants.map((p) => { const o = text("option", p.plant); o.value = p.plant; return o; }));
    state.plant = plants.length ? plants[0].plant : null;
    select.addEventListener("change", () => {
      state.plant = select.value;
      document.getElementById("lines").replaceChildren();
      refresh();
    });
    await refresh();
    clearInterval(state.timer);
    state.timer = setInterval(refresh, REFRESH_MS);
  } catch (error) {
    showError(error.message);
  }
}

document.getElementById("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem("plantwatch-token", document.getElementById("token-input").value.trim());
  document.getElementById("token-form").hidden = true;
  start();
});

start();
