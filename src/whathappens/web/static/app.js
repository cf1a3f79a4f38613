// whathappens · live page. Streams one journey from POST /api/journey (server-sent events read
// with fetch, so nothing reconnects and re-runs a journey by itself) and shows each step as it
// arrives. Everything that came from the target is put in with textContent; the one block of
// HTML (the report) was rendered and escaped by the server, under this page's strict CSP.
"use strict";

(function () {
  const form = document.getElementById("go");
  const input = document.getElementById("url");
  const button = document.getElementById("go-button");
  const status = document.getElementById("status");
  const steps = document.getElementById("steps");
  const report = document.getElementById("report");
  const downloads = document.getElementById("downloads");
  const compareHttp = document.getElementById("compare-http");
  let running = null;

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  // Times arrive written by the server (render/format.py, as in the reports); this is the
  // fallback for an event without them.
  function ms(v) {
    return typeof v === "number" ? v.toFixed(2) + " ms" : "";
  }

  // The DNS row of this request while its questions and hops arrive (before the step ends).
  function workingDns(leg) {
    let li = steps.querySelector('li.working[data-step="dns"][data-leg="' + leg + '"]');
    if (!li) {
      li = el("li", "step k-dns working");
      li.dataset.step = "dns";
      li.dataset.leg = String(leg);
      const head = el("div", "step-head");
      head.append(el("span", "step-title", "DNS"));
      head.append(el("span", "step-leg muted", "request " + (leg + 1)));
      head.append(el("span", "step-took", "…"));
      li.append(head);
      li.append(el("p", "step-sum", "asking…"));
      li.append(el("ol", "hops small"));
      steps.append(li);
    }
    return li;
  }

  // The browser phase's row while its requests, stages and moments arrive (before it ends).
  // Offsets are counted from the first navigation request, as the reports count them.
  let navStart = null;
  function browserLists() {
    const lists = el("div", "browser-lists");
    [["requests", "Requests (type · priority · blocking · connection · stream · bytes)"],
     ["stages", "Rendering path"], ["marks", "Moments"]].forEach(function (pair) {
      const box = el("div", "browser-list");
      box.append(el("p", "small", pair[1]));
      box.append(el("ol", "hops small b-" + pair[0]));
      lists.append(box);
    });
    return lists;
  }

  function workingBrowser() {
    let li = steps.querySelector('li.working[data-step="browser"]');
    if (!li) {
      li = el("li", "step k-browser working");
      li.dataset.step = "browser";
      const head = el("div", "step-head");
      head.append(el("span", "step-title", "The page, in Chromium"));
      head.append(el("span", "step-took", "…"));
      li.append(head);
      li.append(el("p", "step-sum", "loading the page…"));
      li.append(browserLists());
      steps.append(li);
    }
    return li;
  }

  // The browser step's final lists replace what streamed in: the trace's facts (what was
  // render-blocking, the rendering stages) are known only once the load is over.
  function fillBrowserList(li, which, items) {
    if (!Array.isArray(items) || !items.length) return;
    let lists = li.querySelector(".browser-lists");
    if (!lists) {
      lists = browserLists();
      li.append(lists);
    }
    const list = lists.querySelector("ol.b-" + which);
    list.replaceChildren();
    items.forEach(function (it) {
      const text = it.summary + (it.offset ? " at " + it.offset : "") + (it.took ? " (" + it.took + ")" : "");
      list.append(el("li", it.failed ? "bad" : null, text));
    });
  }

  function offset(ev) {
    if (navStart === null || typeof ev.start_ms !== "number") return "";
    return "+" + (ev.start_ms - navStart).toFixed(1) + " ms";
  }

  function addBrowserDetail(ev) {
    const li = workingBrowser();
    if (ev.step === "browser.resource" && ev.navigation && navStart === null) navStart = ev.start_ms;
    const which = ev.step === "browser.resource" ? "requests" : ev.step === "browser.stage" ? "stages" : "marks";
    const at = offset(ev);
    const text = ev.summary + (at ? " at " + at : "") + (ev.step === "browser.mark" ? "" : " (" + ev.took + ")");
    const line = el("li", ev.failed ? "bad" : null, text);
    if (ev.kind) line.dataset.kind = String(ev.kind);
    li.querySelector("ol.b-" + which).append(line);
  }

  // The browser step's end: metrics with their verdicts, the chains, the filmstrip.
  function browserExtras(li, ev) {
    fillBrowserList(li, "requests", ev.resources);
    fillBrowserList(li, "stages", ev.stages);
    fillBrowserList(li, "marks", ev.marks);
    if (Array.isArray(ev.metrics) && ev.metrics.length) {
      const list = el("ul", "metrics small");
      ev.metrics.forEach(function (m) {
        const item = el("li", null, m.label + " " + m.value + " ");
        if (m.outcome) {
          const tone = m.outcome === "good" ? "ok" : m.outcome === "poor" ? "bad" : "warn";
          item.append(el("span", tone, m.outcome + " (" + m.guide + ")"));
        }
        if (m.detail) item.append(document.createTextNode(": " + m.detail));
        list.append(item);
      });
      li.append(list);
    }
    (ev.chains || []).forEach(function (c) { li.append(el("p", "chain", c)); });
    if (ev.settle) li.append(el("p", "small muted", ev.settle));
    (ev.notes || []).forEach(function (n) { li.append(el("p", "small warn", "note: " + n)); });
    const frames = (ev.filmstrip || []).filter(function (f) {
      return typeof f.image === "string" && f.image.startsWith("data:image/");
    });
    if (frames.length) {
      const strip = el("div", "filmstrip");
      frames.forEach(function (f) {
        const fig = el("figure");
        const img = el("img");
        img.src = f.image;  // a data: URI (the page's CSP allows img-src data:)
        img.alt = "the page at " + f.offset;
        fig.append(img);
        fig.append(el("figcaption", null, f.offset));
        strip.append(fig);
      });
      li.append(strip);
    }
  }

  // --compare-http: the medians side by side (a table as the report lays one out), every
  // sample, and the modelled lines, which say themselves that they are modelled.
  function httpCompareExtras(li, ev) {
    if (ev.target) li.append(el("p", "small muted", ev.target));
    if (Array.isArray(ev.head) && Array.isArray(ev.rows) && ev.rows.length) {
      const wrap = el("div", "scroll compare-table");
      const table = el("table", "tbl");
      const headRow = el("tr");
      ev.head.forEach(function (h) {
        const th = el("th", null, h);
        th.scope = "col";
        headRow.append(th);
      });
      const head = el("thead");
      head.append(headRow);
      table.append(head);
      const body = el("tbody");
      ev.rows.forEach(function (row) {
        const tr = el("tr");
        row.forEach(function (cell, i) {
          const td = el("td", "nw", cell);
          td.dataset.label = String(ev.head[i] || "");
          tr.append(td);
        });
        body.append(tr);
      });
      table.append(body);
      wrap.append(table);
      li.append(wrap);
    }
    if (Array.isArray(ev.samples) && ev.samples.length) {
      li.append(el("p", "small", "Every sample:"));
      const list = el("ul", "samples small");
      ev.samples.forEach(function (line) { list.append(el("li", null, line)); });
      li.append(list);
    }
    (ev.modelled || []).forEach(function (line) { li.append(el("p", "warn modelled small", line)); });
  }

  function addDetail(ev) {
    if (String(ev.step).startsWith("browser.")) {
      addBrowserDetail(ev);
      return;
    }
    const li = workingDns(ev.leg);
    const line = el("li", ev.failed ? "bad" : null, ev.summary + " (" + (ev.took || ms(ev.duration_ms)) + ")");
    li.querySelector("ol.hops").append(line);
  }

  function addStep(ev) {
    const pending = steps.querySelector("li.pending");
    if (pending) pending.remove();
    let working = null;
    if (ev.step === "dns") {
      working = steps.querySelector('li.working[data-step="dns"][data-leg="' + ev.leg + '"]');
    } else if (ev.step === "browser") {
      working = steps.querySelector('li.working[data-step="browser"]');
    }
    const li = el("li", "step k-" + String(ev.step).replace(/[^a-z0-9-]/g, ""));
    if (ev.failed) li.classList.add("failed");
    if (ev.pending) li.classList.add("pending");
    li.dataset.step = String(ev.step);
    const head = el("div", "step-head");
    head.append(el("span", "step-title", ev.title));
    if (ev.leg !== null && ev.leg !== undefined && ev.step !== "url" && ev.step !== "browser" && ev.step !== "revalidate") {
      head.append(el("span", "step-leg muted", ev.leg === 0 ? "request 1" : "request " + (ev.leg + 1)));
    }
    head.append(el("span", "step-took", ev.pending ? "…" : (ev.took || ms(ev.duration_ms))));
    li.append(head);
    li.append(el("p", "step-sum" + (ev.failed ? " bad" : ""), (ev.failed ? "✗ " : "") + ev.summary));
    const facts = el("p", "step-facts small");
    if (ev.actor) facts.append(el("span", null, "who: " + ev.actor));
    if (typeof ev.start_ms === "number") facts.append(el("span", null, "starts at " + (ev.starts || ms(ev.start_ms))));
    if (ev.layer) facts.append(el("span", null, ev.layer + " layer"));
    if (ev.budget) facts.append(el("span", "budget", "rule of thumb: " + ev.budget));
    if (facts.childNodes.length) li.append(facts);
    if (working && ev.step === "browser") li.append(working.querySelector(".browser-lists"));
    else if (working) li.append(working.querySelector("ol.hops"));
    if (ev.step === "browser") browserExtras(li, ev);
    if (ev.step === "http-compare") httpCompareExtras(li, ev);
    if (ev.beginner) li.append(el("p", "explain beginner", ev.beginner));
    if (ev.advanced) li.append(el("p", "explain advanced", ev.advanced));
    if (ev.measures) li.append(el("p", "explain measures small", "What the time measures: " + ev.measures));
    li.dataset.leg = String(ev.leg);
    if (working) working.replaceWith(li);  // same place: what is below does not jump
    else steps.append(li);
  }

  // Bars and marks of the waterfall carry their place as data-*; set it through the CSSOM,
  // which the page's CSP (no inline style) allows.
  function placeBars(root) {
    root.querySelectorAll("[data-left]").forEach(function (node) {
      const left = parseFloat(node.dataset.left);
      if (isFinite(left)) node.style.left = left + "%";
      if (node.dataset.width !== undefined) {
        const width = parseFloat(node.dataset.width);
        if (isFinite(width)) node.style.width = width + "%";
      }
    });
  }

  function finish(message, bad) {
    status.textContent = message;
    status.classList.toggle("bad", !!bad);
    button.disabled = false;
    form.setAttribute("aria-busy", "false");
    running = null;
  }

  function handle(kind, data) {
    if (kind === "start") {
      status.textContent = "Tracing " + data.url + " …";
    } else if (kind === "step") {
      addStep(data);
    } else if (kind === "detail") {
      addDetail(data);
    } else if (kind === "report") {
      // Rendered and escaped by the server (render/html.py); the section links first, below
      // the steps, so nothing already on screen moves.
      report.innerHTML = '<nav class="report-nav" aria-label="Sections of the report"><ul>' +
        data.nav + "</ul></nav>" + data.html;
      report.querySelectorAll(".report-nav a").forEach(function (a) {
        if (!document.getElementById(a.getAttribute("href").slice(1))) a.parentNode.remove();
      });
      placeBars(report);
      const base = "/journeys/" + encodeURIComponent(data.id);
      document.getElementById("dl-html").href = base + ".html";
      document.getElementById("dl-har").href = base + ".har";
      document.getElementById("dl-json").href = base + ".json";
      downloads.hidden = false;
      const total = typeof data.total_ms === "number" ? " in " + ms(data.total_ms) : "";
      if (data.error) {
        finish("Stopped at the " + data.error.step + " step" + total + ": " + data.error.message, true);
      } else {
        finish("Done" + total + ". The full report is below.", false);
      }
    } else if (kind === "refused" || kind === "failed") {
      finish(data.message, true);
    }
  }

  async function trace(url) {
    if (running) running.abort();
    const controller = new AbortController();
    running = controller;
    steps.replaceChildren();
    report.replaceChildren();
    navStart = null;
    downloads.hidden = true;
    status.classList.remove("bad");
    status.textContent = "Starting …";
    button.disabled = true;
    form.setAttribute("aria-busy", "true");
    let response;
    try {
      response = await fetch("/api/journey", {
        method: "POST",
        headers: { "Content-Type": "application/json", "Accept": "text/event-stream" },
        body: JSON.stringify({ url: url, compare_http: !!(compareHttp && compareHttp.checked) }),
        signal: controller.signal,
      });
    } catch (err) {
      if (controller.signal.aborted) return;
      finish("Could not reach the whathappens server: " + err, true);
      return;
    }
    const type = response.headers.get("content-type") || "";
    if (!type.startsWith("text/event-stream")) {
      finish((await response.text()).trim() || "The server said " + response.status, true);
      return;
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          let kind = "message";
          let data = "";
          block.split("\n").forEach(function (line) {
            if (line.startsWith("event: ")) kind = line.slice(7);
            else if (line.startsWith("data: ")) data += line.slice(6);
          });
          if (data) handle(kind, JSON.parse(data));
        }
      }
    } catch (err) {
      if (controller.signal.aborted) return;
      finish("The stream broke off: " + err, true);
      return;
    }
    if (running === controller) finish(status.textContent, status.classList.contains("bad"));
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    const url = input.value.trim();
    if (!url) {
      status.textContent = "Type a URL first, e.g. https://www.example.com/";
      input.focus();
      return;
    }
    trace(url);
  });
})();
