// A small SVG line chart written for plantwatch: one polyline per series, red markers on anomalous buckets.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const COLORS = ["#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

function svgEl(name, attrs) {
  const el = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

// series: [{label, points: [{t: ms, v: number, anomalies: n}]}]
function drawChart(svg, series, t0, t1) {
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const width = 600, height = 160, left = 44, bottom = 18, top = 6;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const values = series.flatMap((s) => s.points.map((p) => p.v));
  if (values.length === 0) {
    const text = svgEl("text", { x: width / 2, y: height / 2, "text-anchor": "middle", fill: "#8a96a3" });
    text.textContent = "no data";
    svg.appendChild(text);
    return 0;
  }
  let lo = Math.min(...values), hi = Math.max(...values);
  if (hi === lo) { hi += 1; lo -= 1; }
  const x = (t) => left + ((t - t0) / Math.max(1, t1 - t0)) * (width - left - 4);
  const y = (v) => top + (1 - (v - lo) / (hi - lo)) * (height - top - bottom);
  for (const v of [lo, (lo + hi) / 2, hi]) {
    svg.appendChild(svgEl("line", { x1: left, x2: width, y1: y(v), y2: y(v), stroke: "#e3e7eb" }));
    const label = svgEl("text", { x: left - 4, y: y(v) + 4, "text-anchor": "end", "font-size": 10, fill: "#8a96a3" });
    label.textContent = v.toFixed(1);
    svg.appendChild(label);
  }
  let drawn = 0;
  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    const points = s.points.map((p) => `${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(" ");
    svg.appendChild(svgEl("polyline", { points, fill: "none", stroke: color, "stroke-width": 1.5, class: "series" }));
    drawn += s.points.length;
    for (const p of s.points.filter((q) => q.anomalies > 0)) {
      const marker = svgEl("circle", { cx: x(p.t), cy: y(p.v), r: 3.5, fill: "#c62828", class: "anomaly-marker" });
      const title = svgEl("title", {});
      title.textContent = `${s.label}: ${p.anomalies} anomalous reading(s) at ${new Date(p.t).toISOString()}`;
      marker.appendChild(title);
      svg.appendChild(marker);
    }
  });
  return drawn;
}

window.drawChart = drawChart;
window.CHART_COLORS = COLORS;
