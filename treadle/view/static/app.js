// treadle view: one page, hash-routed. Data comes from /api/... when served, or from the
// answers embedded in the page when exported (then nothing is fetched). Charts are SVG drawn
// here: no library, no network.
"use strict";

const EXPORTED = JSON.parse(document.getElementById("treadle-data").textContent);
const POLL_MS = 2000;
const PAGE_SIZE = 100;
const app = document.getElementById("app");
let pollTimer = null;
const tableState = {};  // per page: filters, sort, page (kept across live updates)

// ------------------------------------------------------------------ helpers

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const SVG_NS = "http://www.w3.org/2000/svg";
function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// the same escaping as Python's urllib.parse.quote(text, safe=""), so exported keys match
function enc(text) {
  return encodeURIComponent(text).replace(/[!'()*]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase());
}

function num(x, digits = 3) { return x === null || x === undefined ? "–" : Number(x).toFixed(digits); }
function secs(x) {
  if (x === null || x === undefined) return "–";
  return x < 1 ? (x * 1000).toFixed(1) + " ms" : x.toFixed(2) + " s";
}
function short(text, n) { return text.length <= n ? text : text.slice(0, n - 1) + "…"; }
function pct(x) { return x === null || x === undefined ? "–" : (100 * x).toFixed(1) + "%"; }
function show(value) {
  if (value === null || value === undefined) return "null";
  return typeof value === "string" ? value : JSON.stringify(value, null, 2);
}
function statusCell(status) { return h("span", { class: "status-" + (status || "none") }, status || "unfinished"); }
function card(label, value, sub, cls) {
  return h("div", { class: "card " + (cls || "") }, h("div", { class: "label" }, label),
    h("div", { class: "value" }, value), sub ? h("div", { class: "sub" }, sub) : null);
}

async function get(path) {
  if (EXPORTED) {
    const found = EXPORTED[path];
    return found === undefined ? { error: "This export does not hold " + path + "." } : found;
  }
  const response = await fetch(path, { cache: "no-store" });
  if (!response.ok) return { error: "The server has nothing at " + path + "." };
  return response.json();
}

function crumbs(...links) {
  const el = document.getElementById("crumbs");
  el.replaceChildren(...links.flatMap(([text, href]) => [" / ", href ? h("a", { href }, text) : h("span", {}, text)]));
}

// the page's content: nested lists flattened, empty parts dropped
function mount(...parts) {
  app.replaceChildren(...parts.flat(3).filter((x) => x !== null && x !== undefined && x !== ""));
}

function setLive(text) { document.getElementById("live").textContent = text; }

// Re-draw when the source's file changes (a running evaluation appends rows).
function watch(id, stamp, redraw) {
  if (EXPORTED) { setLive("exported"); return; }
  let last = JSON.stringify(stamp);
  setLive("live");
  pollTimer = setInterval(async () => {
    let now;
    try { now = await get("/api/source/" + id + "/stamp"); } catch (err) { setLive("the server is not answering"); return; }
    if (now.stamp && JSON.stringify(now.stamp) !== last) {
      last = JSON.stringify(now.stamp);
      setLive("updated " + new Date().toLocaleTimeString());
      await redraw();
    }
  }, POLL_MS);
}

// ------------------------------------------------------------------ the sortable, paged table

// columns: [{key, label, num, fmt(row) -> text|Node, value(row) -> sort key}]
function table(key, columns, rows, onRow) {
  const st = tableState[key] || (tableState[key] = { sort: null, desc: false, page: 0 });
  const wrap = h("div", { class: "table" });
  function draw() {
    let sorted = rows;
    if (st.sort !== null) {
      const col = columns.find((c) => c.key === st.sort);
      const val = col.value || ((r) => r[col.key]);
      const dir = st.desc ? -1 : 1;
      sorted = rows.slice().sort((a, b) => {
        const x = val(a), y = val(b);
        if (x === y) return 0;
        if (x === null || x === undefined) return 1;
        if (y === null || y === undefined) return -1;
        return (x < y ? -1 : 1) * dir;
      });
    }
    const pages = Math.max(1, Math.ceil(sorted.length / PAGE_SIZE));
    st.page = Math.min(st.page, pages - 1);
    const shown = sorted.slice(st.page * PAGE_SIZE, (st.page + 1) * PAGE_SIZE);
    const head = h("tr", {}, columns.map((c) => h("th", {
      class: (c.num ? "num " : "") + (st.sort === c.key ? "sorted" + (st.desc ? " desc" : "") : ""),
      "data-key": c.key,
      onclick: () => { if (st.sort === c.key) st.desc = !st.desc; else { st.sort = c.key; st.desc = false; } draw(); },
    }, c.label)));
    const body = shown.map((r) => h("tr", { class: onRow ? "link" : "", "data-id": r.id, onclick: onRow ? () => onRow(r) : null },
      columns.map((c) => h("td", { class: c.num ? "num" : "" }, c.fmt ? c.fmt(r) : r[c.key]))));
    const pager = h("div", { class: "pager" },
      h("button", { id: key + "-prev", disabled: st.page === 0, onclick: () => { st.page--; draw(); } }, "‹ prev"),
      h("span", { class: "muted" }, `page ${st.page + 1} of ${pages}`),
      h("button", { id: key + "-next", disabled: st.page >= pages - 1, onclick: () => { st.page++; draw(); } }, "next ›"));
    wrap.replaceChildren(h("table", { id: key }, h("thead", {}, head), h("tbody", {}, body)), pages > 1 ? pager : "");
  }
  draw();
  return wrap;
}

// ------------------------------------------------------------------ pages

const KIND_LABEL = { eval: "Evaluations", trace: "Traces", attribution: "Attribution", ranking: "Ranking", optimize: "Optimize runs" };

async function homePage() {
  crumbs();
  const cat = await get("/api/catalog");
  if (cat.error) return mount(h("p", { class: "error" }, cat.error));
  if (cat.single && !location.hash.startsWith("#/")) {
    const only = cat.sources.find((x) => x.id === cat.single);
    location.hash = "#/" + only.kind + "/" + only.id;
    return;
  }
  const parts = [h("h1", {}, "Runs")];
  if (!cat.sources.length) parts.push(h("p", { class: "muted" }, "Nothing to show yet: no evaluation, trace or report under the given paths."));
  for (const kind of Object.keys(KIND_LABEL)) {
    const items = cat.sources.filter((x) => x.kind === kind);
    if (!items.length) continue;
    parts.push(h("h2", {}, KIND_LABEL[kind] + " (" + items.length + ")"),
      h("ul", { class: "sources", "data-kind": kind }, items.map((x) => h("li", {}, h("a", { href: "#/" + x.kind + "/" + x.id }, x.title), " ", h("span", { class: "muted" }, x.path)))));
  }
  const evals = cat.sources.filter((x) => x.kind === "eval");
  if (evals.length >= 2) {
    const pick = (id) => h("select", { id }, evals.map((x, i) => h("option", { value: x.id, selected: (id === "cmp-b" ? i === 1 : i === 0) }, x.title)));
    const a = pick("cmp-a"), b = pick("cmp-b");
    parts.push(h("h2", {}, "Compare two evaluations"),
      h("div", { class: "filters" }, "A ", a, " B ", b,
        h("button", { id: "cmp-go", onclick: () => { location.hash = "#/compare/" + a.value + "/" + b.value; } }, "compare")));
  }
  mount(...parts);
  if (!EXPORTED) {
    let last = JSON.stringify(cat.sources.map((x) => x.id));
    pollTimer = setInterval(async () => {
      let now;
      try { now = await get("/api/catalog"); } catch (err) { setLive("the server is not answering"); return; }
      if (now.sources && JSON.stringify(now.sources.map((x) => x.id)) !== last) { last = ""; clearInterval(pollTimer); homePage(); }
    }, POLL_MS);
  }
}

function evalSummary(p) {
  const r = p.summary;
  const ci = r.mean === null ? "" : `95% CI [${num(r.ci_low)}, ${num(r.ci_high)}]`;
  const cards = [
    card("score (" + r.scorer + ")", num(r.mean), ci, "score"),
    card("rows", String(r.n), `scored ${r.scored} · failed ${r.failed}`, "rows"),
    card("errors", String(r.errors), "infrastructure, not scored", "errors" + (r.errors ? " error" : "")),
    card("tokens", String(r.tokens_in + r.tokens_out), `${r.tokens_in} in / ${r.tokens_out} out`, "tokens"),
    card("model calls", String(r.model_calls), `${r.cached_calls} cached`, "calls"),
    card("latency", secs(r.latency_p50_s), `p50 · p95 ${secs(r.latency_p95_s)}`, "latency"),
  ];
  for (const [name, value] of Object.entries(r.scorers || {}).slice(1)) cards.push(card(name, num(value), "mean", "scorer"));
  if (r.sandbox_runs) cards.push(card("sandbox runs", String(r.sandbox_runs)));
  return h("div", { class: "cards", id: "summary" }, cards);
}

function stepsTable(steps) {
  const rows = Object.entries(steps || {}).map(([name, st]) => ({ id: name, name, ...st }));
  if (!rows.length) return "";
  return [h("h2", {}, "Steps"), table("steps", [
    { key: "name", label: "step" },
    { key: "runs", label: "runs", num: true }, { key: "failures", label: "failures", num: true },
    { key: "skips", label: "skips", num: true },
    { key: "mean_latency_s", label: "mean latency", num: true, fmt: (x) => secs(x.mean_latency_s) },
    { key: "tokens_in", label: "tokens in", num: true }, { key: "tokens_out", label: "tokens out", num: true },
  ], rows)];
}

function rowFilter(key, draw) {
  const st = tableState[key + "-filter"] || (tableState[key + "-filter"] = { text: "", status: "", min: "", max: "" });
  const apply = () => draw();
  const text = h("input", { type: "search", id: "filter-text", placeholder: "search id, output, target, error", value: st.text,
    oninput: (e) => { st.text = e.target.value; apply(); } });
  const status = h("select", { id: "filter-status", onchange: (e) => { st.status = e.target.value; apply(); } },
    ["", "ok", "failed", "error"].map((v) => h("option", { value: v, selected: st.status === v }, v || "any status")));
  const min = h("input", { type: "number", id: "filter-min", step: "0.1", placeholder: "min", value: st.min, oninput: (e) => { st.min = e.target.value; apply(); } });
  const max = h("input", { type: "number", id: "filter-max", step: "0.1", placeholder: "max", value: st.max, oninput: (e) => { st.max = e.target.value; apply(); } });
  const keep = (r) => {
    if (st.status && r.status !== st.status) return false;
    if (st.min !== "" && !(r.score !== null && r.score >= Number(st.min))) return false;
    if (st.max !== "" && !(r.score !== null && r.score <= Number(st.max))) return false;
    if (st.text) {
      const t = st.text.toLowerCase();
      if (![r.id, r.output, r.target, r.error, r.error_kind].some((v) => v && String(v).toLowerCase().includes(t))) return false;
    }
    return true;
  };
  return { ui: h("div", { class: "filters" }, text, status, "score ", min, "–", max), keep };
}

async function evalPage(id) {
  const rowsBox = h("div", { id: "rows-box" });
  const summaryBox = h("div", {});
  const stepsBox = h("div", {});
  let p = await get("/api/source/" + id);
  if (p.error) return mount(h("p", { class: "error" }, p.error));
  crumbs([KIND_LABEL.eval], [p.title]);
  const filter = rowFilter("rows", () => drawRows());
  function drawRows() {
    const kept = p.rows.filter(filter.keep);
    const scoreCols = (p.scorers.length > 1 ? p.scorers : []).map((name) => ({ key: "s:" + name, label: name, num: true, value: (r) => r.scores[name], fmt: (r) => num(r.scores[name]) }));
    rowsBox.replaceChildren(
      h("div", { id: "row-count", class: "muted" }, `${kept.length} of ${p.rows.length} rows`),
      table("rows", [
        { key: "id", label: "id", value: (r) => (/^\d+$/.test(r.id) ? Number(r.id) : r.id) },
        { key: "status", label: "status", fmt: (r) => statusCell(r.status) },
        { key: "score", label: "score", num: true, fmt: (r) => num(r.score) },
        ...scoreCols,
        { key: "output", label: "output" }, { key: "target", label: "target" },
        { key: "error", label: "error", fmt: (r) => r.error ? h("span", { class: "error" }, (r.error_kind ? r.error_kind + ": " : "") + r.error) : "" },
        { key: "tokens", label: "tokens", num: true },
        { key: "latency_s", label: "latency", num: true, fmt: (r) => secs(r.latency_s) },
      ], kept, (r) => { location.hash = "#/eval/" + id + "/row/" + enc(r.id); }));
  }
  function drawAll() {
    const started = performance.now();
    const s = p.summary;
    summaryBox.replaceChildren(
      h("div", { class: "muted" }, `flow ${s.flow} · dataset ${s.dataset} · model ${short(s.model || "default", 90)}` + (s.epochs > 1 ? ` · epochs ${s.epochs} (${s.reducer})` : "")),
      s.stopped ? h("div", { class: "banner" }, "Stopped: " + s.stopped) : "",
      evalSummary(p));
    stepsBox.replaceChildren(...[stepsTable(s.steps)].flat());
    drawRows();
    window.treadleRendered = { rows: p.rows.length, ms: performance.now() - started };
  }
  mount(h("h1", {}, p.title), summaryBox, h("h2", {}, "Rows"), filter.ui, rowsBox, stepsBox);
  drawAll();
  watch(id, p.stamp, async () => {
    const now = await get("/api/source/" + id);
    if (!now.error) { p = now; drawAll(); }
  });
}

async function rowPage(id, rowId) {
  const p = await get("/api/source/" + id + "/row/" + enc(rowId));
  if (p.error) return mount(h("p", { class: "error" }, p.error));
  const run = await get("/api/source/" + id);
  crumbs([KIND_LABEL.eval], [run.title || id, "#/eval/" + id], ["row " + rowId]);
  const r = p.row;
  const parts = [h("h1", {}, "Row " + r.id + " "), h("div", { id: "row-detail" },
    h("div", { class: "kv" },
      h("div", {}, "status"), h("div", { class: "row-status" }, statusCell(r.status)),
      h("div", {}, "score"), h("div", { class: "row-score" }, num(r.score)),
      h("div", {}, "tokens"), h("div", {}, `${r.tokens_in} in / ${r.tokens_out} out · ${r.model_calls} calls (${r.cached_calls} cached)`),
      h("div", {}, "latency"), h("div", {}, secs(r.latency_s)),
      r.error ? [h("div", {}, "error"), h("div", { class: "error" }, (r.error_kind ? r.error_kind + ": " : "") + r.error)] : []),
    h("h2", {}, "Scores"),
    h("table", { id: "scores" }, h("thead", {}, h("tr", {}, h("th", {}, "scorer"), h("th", { class: "num" }, "score"), h("th", {}, "explanation"))),
      h("tbody", {}, Object.entries(r.scores).map(([name, value]) => h("tr", {}, h("td", {}, name), h("td", { class: "num" }, num(value)), h("td", {}, r.explanations[name] || ""))))))];
  for (const e of p.epochs) {
    if (p.epochs.length > 1) parts.push(h("h2", {}, "Epoch " + e.epoch + " · score " + num(e.score)));
    parts.push(h("div", { class: "two" },
      h("div", {}, h("h2", {}, "Inputs"), h("pre", { class: "inputs" }, show(e.inputs)),
        h("h2", {}, "Target"), h("pre", { class: "target" }, show(e.target))),
      h("div", {}, h("h2", {}, "Output"), h("pre", { class: "output" }, show(e.output)),
        Object.keys(e.outputs || {}).length > 1 ? [h("h2", {}, "All outputs"), h("pre", {}, show(e.outputs))] : "")));
    parts.push(h("h2", {}, "Trace"));
    if (!e.trace) parts.push(h("p", { class: "muted" }, "This row kept no trace."));
    else if (e.trace.missing) parts.push(h("p", { class: "muted" }, "The trace file " + e.trace.missing + " is not there."));
    else parts.push(traceView(e.trace));
  }
  mount(...parts);
}

// ------------------------------------------------------------------ traces

const KIND_COLOURS = [["workflow", "#8c959f"], ["step", "#54aeff"], ["model", "#c297ff"], ["sandbox", "#e3b341"], ["cached", "#4ac26b"]];

function traceView(t) {
  const box = h("div", { class: "trace" });
  const detail = h("div", { id: "span-detail" }, h("p", { class: "muted" }, "Click a bar for the span's inputs, outputs and tokens."));
  const spans = t.spans;
  const total = Math.max(t.total_s, 1e-6);
  const labelW = 300, barW = 820, rowH = 18, top = 22;
  const x = (sec) => labelW + (sec / total) * barW;
  const svg = s("svg", { class: "gantt", width: labelW + barW + 20, height: top + spans.length * rowH + 6, viewBox: `0 0 ${labelW + barW + 20} ${top + spans.length * rowH + 6}` });
  for (let i = 0; i <= 5; i++) {
    const sec = (total * i) / 5;
    svg.append(s("line", { class: "grid", x1: x(sec), x2: x(sec), y1: top - 4, y2: top + spans.length * rowH }),
      s("text", { x: x(sec), y: 12, "text-anchor": i === 5 ? "end" : "middle" }, secs(sec)));
  }
  let selected = null;
  spans.forEach((sp, i) => {
    const y = top + i * rowH;
    const dur = sp.duration === null ? total - sp.start : sp.duration;
    const cls = ["bar", sp.cached ? "cached" : "k-" + sp.kind, sp.status === "error" ? "s-error" : "", sp.duration === null ? "unfinished" : ""].join(" ");
    const pick = () => { if (selected) selected.classList.remove("sel"); selected = bar; bar.classList.add("sel"); detail.replaceChildren(spanDetail(sp)); };
    const label = (sp.op && sp.kind === "step" && sp.op !== sp.name ? `${sp.name} (${sp.op})` : sp.name);
    // one group per span, clickable across its whole row (a 1 ms bar is too thin to hit)
    const bar = s("rect", { class: cls, x: x(sp.start), y: y + 3, width: Math.max(3, (dur / total) * barW), height: rowH - 6, rx: 2 },
      s("title", {}, `${sp.name} · ${sp.status || "unfinished"} · +${secs(sp.start)} · ${secs(sp.duration)}`));
    svg.append(s("g", { class: "span", "data-kind": sp.kind, "data-id": sp.id, onclick: pick },
      s("rect", { class: "band", x: 0, y, width: labelW + barW + 20, height: rowH }),
      s("text", { class: "label", x: 4 + sp.depth * 12, y: y + 13 }, label.length > 40 ? label.slice(0, 39) + "…" : label),
      bar));
  });
  const head = h("div", { class: "cards trace-head" },
    card("duration", secs(t.total_s)), card("spans", String(spans.length), t.unfinished ? `${t.unfinished} unfinished` : ""),
    card("model calls", String(t.model_calls), `${t.cached_calls} cached`), card("tokens", `${t.tokens_in} → ${t.tokens_out}`),
    card("errors", String(t.errors)));
  const legend = h("div", { class: "legend" }, KIND_COLOURS.map(([k, c]) => h("span", {}, h("i", { style: "background:" + c }), k)));
  box.append(head, t.bad_lines ? h("div", { class: "banner" }, `${t.bad_lines} unreadable lines skipped (the run was cut short)`) : "", legend, h("div", { style: "overflow-x:auto" }, svg), detail);
  return box;
}

function spanDetail(sp) {
  const kv = [["kind", sp.kind], ["operator", sp.op], ["step", sp.step], ["status", sp.status || "unfinished (the run was cut short or is still going)"],
    ["start", "+" + secs(sp.start)], ["duration", secs(sp.duration)]];
  if (sp.tokens_in !== null || sp.tokens_out !== null) kv.push(["tokens", `${sp.tokens_in || 0} in → ${sp.tokens_out || 0} out`]);
  if (sp.cached !== null) kv.push(["cache", sp.cached ? "hit" : "miss"]);
  const retries = (sp.events || []).filter((e) => e.name === "retry").length;
  if (retries) kv.push(["retries", String(retries)]);
  const parts = [h("h2", {}, sp.name), h("div", { class: "kv" }, kv.filter(([, v]) => v !== null && v !== undefined).flatMap(([k, v]) => [h("div", {}, k), h("div", {}, v)]))];
  if (sp.error) parts.push(h("h2", {}, "Error"), h("pre", { class: "error span-error" }, sp.error));
  if (sp.kind === "sandbox") {
    parts.push(h("h2", {}, "stdout"), h("pre", { class: "stdout" }, sp.stdout || ""), h("h2", {}, "stderr"), h("pre", { class: "stderr" }, sp.stderr || ""));
  }
  parts.push(h("h2", {}, "Inputs"), h("pre", { class: "span-inputs" }, show(sp.inputs)),
    h("h2", {}, "Outputs" + (sp.truncated ? " (cut: the trace keeps a preview)" : "")), h("pre", { class: "span-outputs" }, show(sp.outputs)));
  if (Object.keys(sp.attrs || {}).length) parts.push(h("h2", {}, "Attributes"), h("pre", {}, show(sp.attrs)));
  return h("div", {}, parts);
}

async function tracePage(id) {
  const p = await get("/api/source/" + id);
  if (p.error) return mount(h("p", { class: "error" }, p.error));
  crumbs([KIND_LABEL.trace], [p.title]);
  const wf = (p.trace.header && p.trace.header.workflow) || "";
  mount(h("h1", {}, "Trace " + wf), traceView(p.trace));
  watch(id, p.stamp, () => tracePage(id));
}

// ------------------------------------------------------------------ attribution and ranking

function attributionChart(units) {
  const measured = units.filter((u) => u.effect !== null);
  if (!measured.length) return h("p", { class: "muted" }, "No unit could be measured.");
  const lo = Math.min(0, ...measured.map((u) => (u.ci_low ?? u.effect)));
  const hi = Math.max(0, ...measured.map((u) => (u.ci_high ?? u.effect)));
  const span = hi - lo || 1;
  const labelW = 260, W = 620, rowH = 24, top = 20;
  const x = (v) => labelW + ((v - lo) / span) * W;
  const svg = s("svg", { id: "attr-chart", width: labelW + W + 80, height: top + measured.length * rowH + 10 });
  svg.append(s("line", { class: "axis", x1: x(0), x2: x(0), y1: top - 6, y2: top + measured.length * rowH }),
    lo < 0 ? s("text", { x: x(lo), y: 12 }, num(lo, 2)) : null, s("text", { x: x(hi), y: 12, "text-anchor": "end" }, num(hi, 2)), s("text", { x: x(0), y: 12, "text-anchor": "middle" }, "0"));
  measured.forEach((u, i) => {
    const y = top + i * rowH;
    const a = x(Math.min(0, u.effect)), b = x(Math.max(0, u.effect));
    svg.append(s("text", { x: 4, y: y + 15 }, `${u.rank ?? "–"}. ${u.unit} (${u.target})`),
      s("rect", { class: "effect " + (u.effect >= 0 ? "bar-pos" : "bar-neg"), x: a, y: y + 4, width: Math.max(1, b - a), height: rowH - 8, "data-unit": u.unit },
        s("title", {}, `${u.unit}: effect ${num(u.effect)} [${num(u.ci_low)}, ${num(u.ci_high)}]`)));
    if (u.ci_low !== null && u.ci_high !== null) {
      svg.append(s("line", { class: "whisker", x1: x(u.ci_low), x2: x(u.ci_high), y1: y + rowH / 2, y2: y + rowH / 2 }),
        s("line", { class: "whisker", x1: x(u.ci_low), x2: x(u.ci_low), y1: y + 6, y2: y + rowH - 6 }),
        s("line", { class: "whisker", x1: x(u.ci_high), x2: x(u.ci_high), y1: y + 6, y2: y + rowH - 6 }));
    }
    svg.append(s("text", { x: labelW + W + 6, y: y + 15 }, num(u.effect)));
  });
  return svg;
}

function lineChart(id, points, xLabel, yLabel) {
  // points: [[x, y]], y in [0, 1]
  const W = 420, H = 220, L = 40, B = 30;
  const xs = points.map((p) => p[0]);
  const x0 = Math.min(...xs, 0), x1 = Math.max(...xs, 1);
  const px = (v) => L + ((v - x0) / (x1 - x0 || 1)) * (W - L - 10);
  const py = (v) => H - B - v * (H - B - 10);
  const svg = s("svg", { id, width: W, height: H },
    s("line", { class: "axis", x1: L, x2: W - 10, y1: H - B, y2: H - B }), s("line", { class: "axis", x1: L, x2: L, y1: 10, y2: H - B }),
    s("text", { x: L - 4, y: py(1) + 4, "text-anchor": "end" }, "1"), s("text", { x: L - 4, y: py(0) + 4, "text-anchor": "end" }, "0"),
    s("text", { x: (L + W) / 2, y: H - 6, "text-anchor": "middle" }, xLabel), s("text", { x: 12, y: 20 }, yLabel),
    s("polyline", { class: "curve", points: points.map((p) => px(p[0]) + "," + py(p[1])).join(" ") }),
    points.map((p) => s("circle", { class: "point", cx: px(p[0]), cy: py(p[1]), r: 3 }, s("title", {}, `${p[0]}: ${pct(p[1])}`))));
  return svg;
}

async function attributionPage(id) {
  const p = await get("/api/source/" + id);
  if (p.error) return mount(h("p", { class: "error" }, p.error));
  crumbs([KIND_LABEL.attribution], [p.title]);
  const r = p.report;
  const cumulative = [[0, 0], ...r.cumulative.map((c) => [c.units, c.share])];
  mount(
    h("h1", {}, "Attribution by " + r.by),
    h("div", { class: "muted" }, `${r.flows.join(", ")} · dataset ${r.dataset} · scorer ${r.scorer}`),
    h("div", { class: "cards", id: "summary" },
      card("baseline", num(r.baseline), `95% CI [${num(r.baseline_ci[0])}, ${num(r.baseline_ci[1])}]`, "score"),
      card("rows", String(r.n), `${r.successes} successes (score ≥ ${r.success})`),
      card("model calls", String(r.model_calls), `${r.cached_calls} cached · ${r.model_calls_naive} without the cache`),
      card("tokens", String(r.tokens)), card("wall", secs(r.wall_s))),
    h("h2", {}, "Effect of removing each unit (baseline − ablated, 95% paired interval)"),
    attributionChart(r.units),
    r.cumulative.length ? [h("h2", {}, "Cumulative share of successes carried by the top units"), lineChart("attr-cumulative", cumulative, "units (ranked)", "share")] : "",
    h("h2", {}, "Units"),
    table("units", [
      { key: "rank", label: "rank", num: true, fmt: (u) => u.rank ?? "–" },
      { key: "unit", label: "unit" }, { key: "kind", label: "kind" }, { key: "target", label: "operator" },
      { key: "effect", label: "effect", num: true, fmt: (u) => num(u.effect) },
      { key: "ci_low", label: "95% CI", num: true, fmt: (u) => u.effect === null ? "–" : `[${num(u.ci_low)}, ${num(u.ci_high)}]` },
      { key: "sign", label: "sign", fmt: (u) => u.sign || (u.removable ? "–" : "not removable: " + u.reason) },
      { key: "share", label: "share", num: true, fmt: (u) => pct(u.share) },
      { key: "mean", label: "ablated mean", num: true, fmt: (u) => num(u.mean) },
      { key: "tokens", label: "tokens", num: true },
    ], r.units.map((u) => ({ id: u.unit, ...u }))),
    r.prune ? [h("h2", {}, "Pruned flow"), h("div", { class: "kv" }, h("div", {}, "written to"), h("div", {}, r.prune.path),
      h("div", {}, "removed"), h("div", {}, r.prune.removed.join(", ") || "nothing"),
      h("div", {}, "score"), h("div", {}, `${num(r.prune.score)} (baseline ${num(r.prune.baseline)})`),
      h("div", {}, "tokens"), h("div", {}, `${r.prune.tokens} (baseline ${r.prune.tokens_baseline})`))] : "");
}

function scatter(id, points, xLabel, yLabel) {
  // points: [{x, y, label}] in [0, 1]
  const W = 460, H = 360, L = 44, B = 36;
  const px = (v) => L + v * (W - L - 14), py = (v) => H - B - v * (H - B - 14);
  return s("svg", { id, width: W, height: H },
    s("line", { class: "axis", x1: L, x2: W - 14, y1: H - B, y2: H - B }), s("line", { class: "axis", x1: L, x2: L, y1: 14, y2: H - B }),
    s("line", { class: "diag", x1: px(0), y1: py(0), x2: px(1), y2: py(1) }),
    [0, 0.5, 1].map((v) => [s("text", { x: px(v), y: H - B + 14, "text-anchor": "middle" }, v), s("text", { x: L - 6, y: py(v) + 4, "text-anchor": "end" }, v)]),
    s("text", { x: (L + W) / 2, y: H - 4, "text-anchor": "middle" }, xLabel), s("text", { x: L + 4, y: 12 }, yLabel),
    points.map((p) => [s("circle", { class: "point", cx: px(p.x), cy: py(p.y), r: 5, "data-label": p.label }, s("title", {}, `${p.label}: ${num(p.x)} vs ${num(p.y)}`)),
      s("text", { x: px(p.x) + 7, y: py(p.y) + 4 }, p.label)]));
}

const base = (path) => String(path).split("/").pop();

async function rankingPage(id) {
  const p = await get("/api/source/" + id);
  if (p.error) return mount(h("p", { class: "error" }, p.error));
  crumbs([KIND_LABEL.ranking], [p.title]);
  const r = p.report;
  const verified = r.flows.filter((f) => f.full !== null && f.score !== null);
  mount(
    h("h1", {}, "Ranking of " + r.flows.length + " flows"),
    h("div", { class: "muted" }, `dataset ${r.dataset} · scorer ${r.scorer} · ${r.n} rows · few-shot rows ${r.few_ids.length}`),
    h("div", { class: "cards", id: "summary" },
      card("tokens spent", String(r.tokens_spent), `of ${r.tokens_full} for full runs` + (r.tokens_full_measured ? "" : " (estimated)")),
      card("tokens saved", pct(r.saving), "", "saving"),
      card("pearson", num(r.pearson)), card("spearman", num(r.spearman)), card("MAE", num(r.mae)),
      card("α", num(r.alpha), `max ${num(r.alpha_max)} · τ ${num(r.tau)}`)),
    verified.length ? [h("h2", {}, "Predicted (Ŝ) against the full evaluation"),
      scatter("rank-scatter", verified.map((f) => ({ x: f.score, y: f.full, label: base(f.path) })), "predicted Ŝ", "full score")]
      : h("p", { class: "muted" }, "Not verified: run `treadle rank --verify` for the full scores to compare against."),
    h("h2", {}, "Flows"),
    table("flows", [
      { key: "rank", label: "rank", num: true, fmt: (f) => f.rank ?? "–" },
      { key: "path", label: "flow", fmt: (f) => base(f.path) },
      { key: "warmup", label: "warm-up", fmt: (f) => (f.warmup ? "yes" : "") },
      { key: "score", label: "Ŝ", num: true, fmt: (f) => num(f.score) },
      { key: "s_few", label: "few-shot", num: true, fmt: (f) => num(f.s_few) },
      { key: "s_pred", label: "self-prediction", num: true, fmt: (f) => num(f.s_pred) },
      { key: "full", label: "full", num: true, fmt: (f) => num(f.full) },
      { key: "tokens", label: "tokens", num: true },
      { key: "error", label: "error", fmt: (f) => f.error ? h("span", { class: "error" }, f.error) : "" },
    ], r.flows.map((f) => ({ id: f.path, ...f }))));
}

// ------------------------------------------------------------------ compare and optimize

async function comparePage(a, b) {
  const p = await get("/api/compare/" + a + "/" + b);
  if (p.error) return mount(h("p", { class: "error" }, p.error));
  crumbs([KIND_LABEL.eval], ["compare"]);
  const c = p.result;
  const st = tableState["cmp-filter"] || (tableState["cmp-filter"] = { changed: false });
  const box = h("div", {});
  const draw = () => box.replaceChildren(table("compare-rows", [
    { key: "id", label: "id", value: (r) => (/^\d+$/.test(r.id) ? Number(r.id) : r.id) },
    { key: "a", label: "A", num: true, fmt: (r) => num(r.a) }, { key: "b", label: "B", num: true, fmt: (r) => num(r.b) },
    { key: "diff", label: "B − A", num: true, fmt: (r) => num(r.diff) },
    { key: "output_a", label: "output A" }, { key: "output_b", label: "output B" },
  ], p.rows.filter((r) => !st.changed || (r.diff !== null && r.diff !== 0)), (r) => { location.hash = "#/eval/" + a + "/row/" + enc(r.id); }));
  mount(
    h("h1", {}, "B against A"),
    h("div", { class: "kv" }, h("div", {}, "A"), h("div", {}, h("a", { href: "#/eval/" + a }, c.a)), h("div", {}, "B"), h("div", {}, h("a", { href: "#/eval/" + b }, c.b))),
    h("div", { class: "cards", id: "compare-result" },
      card("A", num(c.mean_a), "mean on common rows"), card("B", num(c.mean_b), "mean on common rows"),
      card("B − A", num(c.diff), c.diff === null ? "" : `95% CI [${num(c.ci_low)}, ${num(c.ci_high)}]`, "diff"),
      card("common rows", String(c.common), `only A ${c.only_a} · only B ${c.only_b}`),
      card("wins", `B ${c.wins_b} · A ${c.wins_a}`, `ties ${c.ties}`)),
    h("p", { class: "verdict" }, c.message),
    h("div", { class: "filters" }, h("label", {}, h("input", { type: "checkbox", id: "changed-only", checked: st.changed, onchange: (e) => { st.changed = e.target.checked; draw(); } }), " rows whose score changed")),
    box);
  draw();
}

async function optimizePage(id) {
  const p = await get("/api/source/" + id);
  if (p.error) return mount(h("p", { class: "error" }, p.error));
  crumbs([KIND_LABEL.optimize], [p.title]);
  const rounds = p.rounds.map((r) => ({ id: r.name, name: r.name, flows: Object.keys(r.flows).length,
    best: Math.max(...r.evals.map((e) => e.mean ?? -1), -1), tokens: r.evals.reduce((t, e) => t + e.tokens, 0) }));
  const frontier = p.lineage.filter((e) => typeof e.score === "number" && typeof e.tokens === "number");
  const maxTok = Math.max(1, ...frontier.map((e) => e.tokens));
  mount(
    h("h1", {}, "Optimize run " + p.title),
    rounds.length ? [h("h2", {}, "Best score per round"), lineChart("opt-rounds", rounds.map((r, i) => [i + 1, Math.max(0, r.best)]), "round", "best"),
      table("rounds", [{ key: "name", label: "round" }, { key: "flows", label: "flows", num: true },
        { key: "best", label: "best", num: true, fmt: (r) => (r.best < 0 ? "–" : num(r.best)) }, { key: "tokens", label: "tokens", num: true }], rounds)] : "",
    frontier.length ? [h("h2", {}, "Score against tokens"), scatter("opt-pareto", frontier.map((e) => ({ x: e.tokens / maxTok, y: e.score, label: base(e.child) })), `tokens (÷ ${maxTok})`, "score")] : "",
    p.lineage.length ? [h("h2", {}, "Lineage"), h("div", {}, p.lineage.map((e) => h("details", {},
      h("summary", {}, `${e.parent ? base(e.parent) : "seed"} → ${base(e.child)}` + (e.move ? ` (${e.move})` : "") + (typeof e.score === "number" ? ` · ${num(e.score)}` : "")),
      e.diff ? h("pre", {}, e.diff) : "")))] : "",
    h("h2", {}, "State"), h("pre", {}, show(p.state)));
  watch(id, p.stamp, () => optimizePage(id));
}

// ------------------------------------------------------------------ routing

async function route() {
  if (pollTimer) { clearInterval(pollTimer); pollTimer = null; }
  setLive("");
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  const [kind, id] = parts;
  try {
    if (!kind) await homePage();
    else if (kind === "eval" && parts[2] === "row") await rowPage(id, parts.slice(3).join("/"));
    else if (kind === "eval") await evalPage(id);
    else if (kind === "trace") await tracePage(id);
    else if (kind === "attribution") await attributionPage(id);
    else if (kind === "ranking") await rankingPage(id);
    else if (kind === "optimize") await optimizePage(id);
    else if (kind === "compare") await comparePage(id, parts[2]);
    else mount(h("p", { class: "error" }, "No page " + location.hash));
  } catch (err) {
    mount(h("p", { class: "error" }, "This page could not be drawn: " + err));
    throw err;
  }
  window.scrollTo(0, 0);
}

window.addEventListener("hashchange", route);
route();
