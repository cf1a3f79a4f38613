// whathappens · lab metrics dashboard. Polls this server's /api/metrics (which asks the lab's
// Prometheus server-side) and draws each series as an inline SVG line, built with DOM calls
// under the page's strict CSP: no inline script, no inline style, nothing from elsewhere.
"use strict";

(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const WIDTH = 360, HEIGHT = 120, PAD = 4;
  const POLL_MS = 2000, SECONDS = 120;
  const charts = document.getElementById("dash-charts");
  const status = document.getElementById("dash-status");
  const cards = new Map();

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function svg(tag, attrs) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    return node;
  }

  function shown(v, unit) {
    if (v === null || v === undefined) return "–";
    if (unit === "s") return (v * 1000).toFixed(1) + " ms";
    if (unit === "ratio") return (v * 100).toFixed(1) + " %";
    if (unit === "tasks") return v.toFixed(0);
    return v.toFixed(1) + " " + unit;
  }

  function card(series) {
    let c = cards.get(series.key);
    if (c) return c;
    const box = el("section", "dash-card");
    box.dataset.key = series.key;
    const title = el("h2", "dash-title", series.label);
    const now = el("p", "dash-now");
    const chart = svg("svg", {viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img",
                              "aria-label": series.label, class: "dash-svg"});
    chart.appendChild(svg("line", {x1: 0, y1: HEIGHT - PAD, x2: WIDTH, y2: HEIGHT - PAD,
                                   class: "dash-axis"}));
    const line = svg("path", {fill: "none", class: "dash-line", d: ""});
    chart.appendChild(line);
    const top = svg("text", {x: PAD, y: 12, class: "dash-label"});
    chart.appendChild(top);
    const source = el("p", "dash-source", series.source);
    box.append(title, now, chart, source);
    charts.appendChild(box);
    c = {box, now, line, top};
    cards.set(series.key, c);
    return c;
  }

  function draw(series, start, end) {
    const c = card(series);
    const pts = series.points.filter((p) => p[1] !== null);
    const peak = Math.max(...pts.map((p) => p[1]), series.unit === "ratio" ? 1 : 0);
    const span = Math.max(end - start, 1);
    const scale = peak > 0 ? peak : 1;
    // One path, lifted at each second with no value: a gap stays a gap.
    let d = "", pen = "M";
    for (const [t, v] of series.points) {
      if (v === null) { pen = "M"; continue; }
      const x = ((t - start) / span) * WIDTH;
      const y = HEIGHT - PAD - (v / scale) * (HEIGHT - 2 * PAD - 12);
      d += pen + x.toFixed(1) + "," + y.toFixed(1) + " ";
      pen = "L";
    }
    c.line.setAttribute("d", d.trim());
    c.top.textContent = "max " + shown(peak, series.unit);
    c.now.textContent = shown(series.last, series.unit);
    c.box.dataset.points = String(pts.length);
  }

  async function poll() {
    try {
      const resp = await fetch(`/api/metrics?seconds=${SECONDS}`, {cache: "no-store"});
      const data = await resp.json();
      if (data.error) {
        status.textContent = "no metrics: " + data.error;
      } else {
        for (const s of data.series) draw(s, data.start, data.end);
        status.textContent = "updated " + new Date(data.end * 1000).toLocaleTimeString() +
          " · the last " + SECONDS + " s, one point a second";
        document.body.dataset.updated = String(data.end);
      }
    } catch (err) {
      status.textContent = "the server did not answer: " + err;
    }
    setTimeout(poll, POLL_MS);
  }

  poll();
})();
