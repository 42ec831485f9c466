// /connections/N: the connection's frames in order, a page at a time from DuckDB (a virtual list:
// only the rows on show are in the page), filters, a frame whole on demand, request <-> response
// links, findings where they happened. New frames arrive at the end without moving what is on show.
"use strict";

const CONN = Number(location.pathname.split("/").pop());
const ROW = 26;            // px per row (the list is a fixed-height virtual list)
const PAGE = 200;          // rows asked for at once
const MAX_HEIGHT = 8e6;    // px: beyond this the scroll position maps to rows proportionally
const FILTERS = ["direction", "type", "name", "finding", "q", "where"];

const state = {total: 0, pages: new Map(), loading: new Map(), selected: null, filter: {}, generation: 0};
let list, rows, spacer;

function filterQuery(extra) { return Object.assign({}, state.filter, extra || {}); }
function height() { return Math.min(state.total * ROW, MAX_HEIGHT); }
function scaled() { return state.total * ROW > MAX_HEIGHT; }
function visibleCount() { return Math.ceil(list.clientHeight / ROW) + 1; }

// The first row on show, and how far it is scrolled up.
function firstRow() {
  if (!scaled()) return {index: Math.floor(list.scrollTop / ROW), shift: list.scrollTop % ROW};
  const room = Math.max(1, height() - list.clientHeight);
  return {index: Math.round((list.scrollTop / room) * Math.max(0, state.total - visibleCount() + 1)), shift: 0};
}
function scrollToIndex(index, center) {
  const target = Math.max(0, index - (center ? Math.floor(visibleCount() / 2) : 0));
  if (!scaled()) list.scrollTop = target * ROW;
  else list.scrollTop = (target / Math.max(1, state.total - visibleCount() + 1)) * (height() - list.clientHeight);
}
function atBottom() { return list.scrollTop + list.clientHeight >= list.scrollHeight - ROW; }

function loadPage(page) {
  if (state.pages.has(page) || state.loading.has(page)) return state.loading.get(page);
  const generation = state.generation;
  const promise = api(`/api/connections/${CONN}/frames`, filterQuery({offset: page * PAGE, limit: PAGE}))
    .then((answer) => {
      if (generation !== state.generation) return;
      state.pages.set(page, answer.rows);
      setTotal(answer.total);
      showError(null);
    })
    .catch((error) => showError(error.message))
    .finally(() => { state.loading.delete(page); render(); });
  state.loading.set(page, promise);
  return promise;
}

function rowAt(index) {
  const page = state.pages.get(Math.floor(index / PAGE));
  return page ? page[index % PAGE] : undefined;
}

function setTotal(total) {
  // said every time, also for 0: a connection the upstream refused has no frames, and the page says so
  document.getElementById("matched").textContent = `${total.toLocaleString()} frame${total === 1 ? "" : "s"}`;
  if (total === state.total) return;
  const keep = scaled() || total * ROW > MAX_HEIGHT ? firstRow().index : null;
  const follow = atBottom() && state.total > 0;
  state.total = total;
  spacer.style.height = `${height()}px`;
  if (follow) list.scrollTop = list.scrollHeight;          // at the end: stay at the end (like tail -f)
  else if (keep !== null) scrollToIndex(keep, false);      // proportional scrolling: keep the same rows
}

function render() {
  const {index, shift} = firstRow();
  const count = visibleCount() + 1;
  const shown = [];
  for (let i = index; i < Math.min(state.total, index + count); i++) {
    const row = rowAt(i);
    if (row === undefined) { loadPage(Math.floor(i / PAGE)); shown.push(placeholder(i)); continue; }
    shown.push(frameRow(row, i));
  }
  rows.style.transform = `translateY(${list.scrollTop - shift}px)`;
  clear(rows, shown);
}

function placeholder(i) { return h("div", {class: "frame-row loading"}, h("span", {}, "…")); }

function frameRow(row, index) {
  const gap = row.findings.some((f) => f.code === "event-id-gap");
  const worst = row.findings.find((f) => f.severity === "error") || row.findings[0];
  const classes = ["frame-row", `from-${row.sender}`, `type-${row.type}`];
  if (worst) classes.push(`has-sev-${worst.severity}`);
  if (gap) classes.push("gap");
  if (row.injected.length) classes.push("injected");
  if (state.selected === row.seq) classes.push("selected");
  return h("div", {class: classes.join(" "), dataset: {seq: row.seq, index},
                   onclick: () => select(row.seq, index)},
    h("span", {class: "time"}, clock(row.ts_us)),
    h("span", {class: "seq"}, row.seq),
    direction(row.sender),
    h("span", {class: "type"}, typeBadge(row.type)),
    h("span", {class: "name"}, row.name || ""),
    h("span", {class: "id"}, idText(row)),
    h("span", {class: "size"}, bytes(row.size)),
    h("span", {class: "pair"}, pairLink(row)),
    h("span", {class: "preview"},
      row.injected.map((i) => h("span", {class: "inject-mark", title: i.source === "inject" ? `--inject ${i.rule}` : `${i.rule} (${i.source})`}, `⚡ ${i.action} `)),
      row.findings.map((f) => h("span", {class: `finding sev-${f.severity}`, title: f.when || ""},
                                `${severityMark(f.severity)} ${f.code}: ${f.message} `)),
      row.preview === null ? (row.kind === "binary" ? `binary ${bytes(row.size)}` : row.kind) : row.preview));
}

function pairLink(row) {
  if (row.type === "request") {
    if (!row.pair || row.pair.seq === null) return h("span", {class: "unanswered", title: "no response recorded"}, "no response");
    return h("a", {href: "#", class: "pair-link", title: "go to the response",
                   onclick: (e) => { e.preventDefault(); e.stopPropagation(); jump(row.pair.seq); }},
             `→ #${row.pair.seq} ${ms(row.pair.latency_ms)}`);
  }
  if (row.type === "response" && row.pair) {
    return h("a", {href: "#", class: "pair-link", title: "go to the request",
                   onclick: (e) => { e.preventDefault(); e.stopPropagation(); jump(row.pair.seq); }},
             `← #${row.pair.seq} ${ms(row.pair.latency_ms)}`);
  }
  if (row.type === "response") return h("span", {class: "unanswered", title: "no request with this id"}, "orphan");
  return "";
}

async function jump(seq) {
  try {
    const {index} = await api(`/api/connections/${CONN}/position`, filterQuery({seq}));
    scrollToIndex(index, true);
    await select(seq, index);
  } catch (error) { showError(error.message); }
}

async function select(seq, index) {
  state.selected = seq;
  const q = new URLSearchParams(location.search);
  q.set("seq", seq);
  history.replaceState(null, "", `${location.pathname}?${q}`);
  render();
  try {
    const frame = await api(`/api/connections/${CONN}/frames/${seq}`);
    if (state.selected === seq) showDetail(frame, index);
  } catch (error) { showError(error.message); }
}

function showDetail(f) {
  const meta = [
    ["seq", f.seq], ["time", `${dateTime(f.ts_us)} (${clock(f.ts_us)})`],
    ["direction", f.sender === "client" ? "client → server" : "server → client"], ["type", f.type],
    ["payloadType / eventType", f.name], ["id", idText(f)], ["size", `${f.size.toLocaleString()} bytes`],
    ["close code", f.close_code], ["parse error", f.parse_error],
  ].filter(([, v]) => v !== null && v !== undefined && v !== "");
  const pretty = f.pretty !== null;
  const body = h("pre", {class: "payload"}, pretty ? f.pretty : (f.text !== null ? f.text : `base64: ${f.data_base64 || ""}`));
  const toggle = pretty ? h("button", {type: "button", onclick: () => {
    const raw = body.dataset.raw === "1";
    body.textContent = raw ? f.pretty : f.text;
    body.dataset.raw = raw ? "0" : "1";
    toggle.textContent = raw ? "as sent" : "pretty";
  }}, "as sent") : null;
  clear(document.getElementById("detail"),
    h("h2", {}, `Frame #${f.seq}`),
    h("dl", {}, meta.map(([k, v]) => [h("dt", {}, k), h("dd", {}, String(v))])),
    f.pair ? h("p", {class: "pair-detail"}, pairLink(f), f.type === "request" ? " (the response)" : " (the request)") : null,
    f.injected.map((i) => h("div", {class: "inject-mark"},
      `⚡ ${i.source === "inject" ? "--inject " + i.rule : i.rule + " (" + i.source + ")"}: ${i.action}${i.detail ? " (" + i.detail + ")" : ""}`,
      i.original !== null ? h("details", {}, h("summary", {}, "as its sender sent it"), h("pre", {class: "payload"}, i.original)) : null)),
    h("div", {class: "frame-actions"}, resendButton(f), composeFromButton(f)),
    f.findings.map((x) => h("div", {class: `finding-detail sev-${x.severity}`},
      h("strong", {}, `${severityMark(x.severity)} ${x.severity} ${x.code}`), h("p", {}, x.message),
      x.when ? h("p", {class: "when"}, `The rule: ${x.when}.`) : null)),
    h("div", {class: "payload-head"}, h("span", {}, "message"), toggle),
    body);
}

function readFilters() {
  const form = document.getElementById("filters");
  state.filter = {};
  for (const name of FILTERS) { const v = form.elements[name].value.trim(); if (v) state.filter[name] = v; }
  const q = new URLSearchParams(location.search);
  for (const name of FILTERS) { state.filter[name] ? q.set(name, state.filter[name]) : q.delete(name); }
  history.replaceState(null, "", `${location.pathname}?${q}`);
}

function reload(keepScroll) {
  state.generation += 1;
  state.pages.clear();
  state.loading.clear();
  if (!keepScroll) { state.total = 0; spacer.style.height = "0px"; list.scrollTop = 0; }
  return loadPage(keepScroll ? Math.floor(firstRow().index / PAGE) : 0);
}

// The recording grew: ask again for the rows on show (their pairs and findings may have changed
// too) and keep the others' place; new rows extend the list at its end.
let refreshing = false, again = false;
async function refreshShown() {
  if (refreshing) { again = true; return; }
  refreshing = true;
  try {
    const first = Math.floor(firstRow().index / PAGE);
    const last = Math.floor((firstRow().index + visibleCount()) / PAGE);
    const generation = ++state.generation;
    const answers = await Promise.all([...new Set([first, last])].map((page) =>
      api(`/api/connections/${CONN}/frames`, filterQuery({offset: page * PAGE, limit: PAGE})).then((a) => [page, a])));
    if (generation === state.generation) {
      state.pages.clear();
      for (const [page, answer] of answers) state.pages.set(page, answer.rows);
      setTotal(answers[answers.length - 1][1].total);
      render();
    }
    await header();
    showError(null);
  } catch (error) {
    showError(error.message);
  } finally {
    refreshing = false;
    if (again) { again = false; refreshShown(); }
  }
}

async function header() {
  const c = await api(`/api/connections/${CONN}`);
  document.title = `wsproxy · ${c.user_name || "connection"} #${CONN}`;
  document.getElementById("title").textContent = `${c.user_name || "connection"} #${CONN} · ${c.path}${c.query ? "?" + c.query : ""}`;
  const closed = c.closed_us !== null;
  const stateText = c.status !== 101 ? `refused ${c.status}` : closed ? `closed ${c.close_code ?? ""}${c.closed_by ? " by " + c.closed_by : ""}` : "open";
  const stateNode = document.getElementById("state");
  stateNode.textContent = stateText;
  stateNode.className = `state state-${c.status !== 101 ? "failed" : closed ? "closed" : "open"}`;
  document.getElementById("counts").textContent = `${c.sent.toLocaleString()} sent · ${c.received.toLocaleString()} received · ` +
    `${c.errors} errors · ${c.warnings} warnings · ${c.infos} info`;
  const names = document.querySelector("select[name=name]");
  if (names.options.length - 1 !== c.names.length) {
    const chosen = state.filter.name || "";
    clear(names, h("option", {value: ""}, "any payloadType / eventType"),
          c.names.map((n) => h("option", {value: n, selected: n === chosen}, n)));
  }
  const codes = document.querySelector("select[name=finding]");
  if (codes.options.length - 2 !== c.finding_codes.length) {
    const chosen = state.filter.finding || "";
    clear(codes, h("option", {value: ""}, "with or without findings"), h("option", {value: "any", selected: chosen === "any"}, "with a finding"),
          c.finding_codes.map((n) => h("option", {value: n, selected: n === chosen}, n)));
  }
  const lists = document.getElementById("header-lists");
  const headerList = (title, items) => h("div", {}, h("h3", {}, title),
    h("table", {class: "grid"}, (items || []).map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", {}, v)))));
  clear(lists, headerList("request headers", c.request_headers), headerList("response headers", c.response_headers));
  clear(document.getElementById("loose-findings"), c.findings.map((x) =>
    h("div", {class: `finding-detail sev-${x.severity}`}, `${severityMark(x.severity)} ${x.code}: ${x.message}`)));
}

function toggleDiagram() {
  const box = document.getElementById("diagram");
  box.hidden = !box.hidden;
  if (box.hidden) return;
  const top = rowAt(firstRow().index);
  clear(box, h("img", {class: "sequence", alt: "sequence diagram",
                       src: `/api/diagram.svg${linkQuery({conns: CONN, after_us: top ? top.ts_us : 0, limit: 200})}`}));
}

document.addEventListener("DOMContentLoaded", async () => {
  list = document.getElementById("list");
  rows = document.getElementById("rows");
  spacer = document.getElementById("spacer");
  document.getElementById("home").href = "/" + linkQuery();
  const form = document.getElementById("filters");
  for (const name of FILTERS) { if (params.get(name)) form.elements[name].value = params.get(name); }
  readFilters();
  let ticking = false;
  list.addEventListener("scroll", () => {
    if (!ticking) { ticking = true; requestAnimationFrame(() => { ticking = false; render(); }); }
  });
  window.addEventListener("resize", render);
  list.addEventListener("keydown", (e) => {
    if (e.key !== "ArrowDown" && e.key !== "ArrowUp") return;
    e.preventDefault();
    const current = [...rows.children].findIndex((r) => r.classList.contains("selected"));
    const node = rows.children[Math.max(0, Math.min(rows.children.length - 1, current + (e.key === "ArrowDown" ? 1 : -1)))];
    if (node && node.dataset.seq) select(Number(node.dataset.seq), Number(node.dataset.index));
  });
  form.addEventListener("submit", (e) => { e.preventDefault(); readFilters(); reload(false); });
  for (const name of ["direction", "type", "name", "finding"]) form.elements[name].addEventListener("change", () => { readFilters(); reload(false); });
  document.getElementById("reset").addEventListener("click", () => { form.reset(); readFilters(); reload(false); });
  document.getElementById("toggle-diagram").addEventListener("click", toggleDiagram);
  await Promise.all([header().catch((error) => showError(error.message)), loadPage(0), handsInit(CONN)]);
  const wanted = Number(params.get("seq"));
  if (wanted) await jump(wanted);
  listen(refreshShown, liveState, undefined, handsChanged);  // its first answer too: the recording may have grown since the load
});
