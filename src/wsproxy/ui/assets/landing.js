// The landing page: the session's connections, charts, newest frames and a sequence diagram, live.
"use strict";

const unticked = new Set();  // connections left out of the diagram

function stateCell(c) {
  if (c.status !== 101) return h("span", {class: "state state-failed", title: c.error || ""}, `refused ${c.status}`);
  if (c.closed_us === null) return h("span", {class: "state state-open"}, "open");
  const by = c.closed_by ? ` by ${c.closed_by}` : "";
  return h("span", {class: "state state-closed", title: c.close_reason || c.error || ""},
           `closed ${c.close_code === null ? "" : c.close_code}${by}`);
}

function findingsCell(c) {
  const parts = [];
  if (c.errors) parts.push(h("span", {class: "count sev-error", title: "errors"}, `⚠ ${c.errors}`));
  if (c.warnings) parts.push(h("span", {class: "count sev-warning", title: "warnings"}, `△ ${c.warnings}`));
  if (c.infos) parts.push(h("span", {class: "count sev-info", title: "info"}, `ℹ ${c.infos}`));
  return parts.length ? parts : h("span", {class: "none"}, "none");
}

function connectionLink(id, text, extra) {
  return h("a", {href: `/connections/${id}${linkQuery(extra)}`}, text);
}

function renderConnections(list) {
  const body = document.querySelector("#connections tbody");
  clear(body, list.map((c) => h("tr", {class: "connection", dataset: {conn: c.conn_id}},
    h("td", {}, h("input", {type: "checkbox", class: "pick", checked: !unticked.has(c.conn_id),
                           onchange: (e) => { e.target.checked ? unticked.delete(c.conn_id) : unticked.add(c.conn_id); }})),
    h("td", {}, connectionLink(c.conn_id, `#${c.conn_id}`)),
    h("td", {}, connectionLink(c.conn_id, c.user_name || c.query || "—")),
    h("td", {class: "path"}, c.path + (c.query ? `?${c.query}` : "")),
    h("td", {}, stateCell(c)),
    h("td", {class: "num"}, c.sent.toLocaleString()),
    h("td", {class: "num"}, c.received.toLocaleString()),
    h("td", {class: "findings"}, findingsCell(c)),
    h("td", {class: "num"}, c.injected ? `⚡ ${c.injected}` : ""))));
  if (!list.length) clear(body, h("tr", {}, h("td", {colspan: 9, class: "empty"}, "no connections yet")));
}

function frameCells(row) {
  return [
    h("td", {class: "time"}, clock(row.ts_us)),
    h("td", {}, `${row.user_name || "conn"} #${row.conn_id}`),
    h("td", {}, direction(row.sender)),
    h("td", {}, typeBadge(row.type)),
    h("td", {}, row.name || ""),
    h("td", {class: "id"}, idText(row)),
    h("td", {class: "num"}, bytes(row.size)),
    h("td", {class: "preview"}, row.preview === null ? (row.kind === "binary" ? `binary ${bytes(row.size)}` : row.kind) : row.preview),
    h("td", {class: "findings"}, row.findings.map((f) => h("span", {class: `finding sev-${f.severity}`, title: f.when || ""},
                                                          `${severityMark(f.severity)} ${f.code}`))),
  ];
}

function renderTimeline(rows) {
  const body = document.querySelector("#timeline tbody");
  clear(body, rows.map((row) => h("tr", {class: "frame", dataset: {conn: row.conn_id, seq: row.seq}},
    frameCells(row).map((cell, i) => i === 1 ? h("td", {}, connectionLink(row.conn_id, cell.textContent, {seq: row.seq})) : cell))));
  if (!rows.length) clear(body, h("tr", {}, h("td", {colspan: 9, class: "empty"}, "no frames yet")));
}

let drawn = false;
function drawDiagram() {
  const picked = [...document.querySelectorAll("#connections tr.connection")]
    .map((tr) => Number(tr.dataset.conn)).filter((id) => !unticked.has(id));
  const limit = document.getElementById("diagram-limit").value || 200;
  const img = h("img", {class: "sequence", alt: "sequence diagram",
                        // all ticked: ask for the session's (a list of thousands would not fit a URL)
                        src: `/api/diagram.svg${linkQuery({conns: unticked.size ? picked.join(",") : "", limit})}`});
  clear(document.getElementById("diagram"), img);
  drawn = true;
}

async function refresh() {
  try {
    const [summary, charts, newest] = await Promise.all([api("/api/summary"), api("/api/charts"), api("/api/timeline")]);
    const select = document.getElementById("session");
    clear(select, summary.sessions.map((s) => h("option", {value: s.id, selected: s.id === summary.session},
                                                  `${s.id}${s.label ? " · " + s.label : ""} · ${dateTime(s.started_us)}`)));
    const current = summary.sessions.find((s) => s.id === summary.session);
    document.getElementById("title").textContent = current && current.upstream ? `→ ${current.upstream}` : "";
    document.title = `wsproxy · session ${summary.session}`;
    renderConnections(summary.connections);
    clear(document.getElementById("rate"), rateChart(charts.rate));
    clear(document.getElementById("latency"), latencyChart(charts.latency));
    clear(document.getElementById("rules"), rulesChart(charts.rules));
    renderTimeline(newest);
    if (!drawn) drawDiagram();
    showError(null);
    return summary.version;
  } catch (error) {
    showError(`could not read the recording: ${error.message}`);
  }
}

let pending = null, busy = false;
function scheduleRefresh() {  // at most one refresh at a time; a change meanwhile asks for one more
  if (busy) { pending = true; return Promise.resolve(); }
  busy = true;
  return refresh().finally(() => { busy = false; if (pending) { pending = false; scheduleRefresh(); } });
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("home").href = "/" + linkQuery();
  document.getElementById("session").addEventListener("change", (e) => {
    const q = new URLSearchParams(location.search);
    q.set("session", e.target.value);
    location.search = q.toString();
  });
  document.getElementById("select-all").addEventListener("change", (e) => {
    document.querySelectorAll("#connections tr.connection").forEach((tr) => {
      const id = Number(tr.dataset.conn);
      e.target.checked ? unticked.delete(id) : unticked.add(id);
      tr.querySelector("input.pick").checked = e.target.checked;
    });
  });
  document.getElementById("draw").addEventListener("click", drawDiagram);
  scheduleRefresh().then(async (version) => {
    await handsInit(null);
    listen(scheduleRefresh, liveState, version, handsChanged);
  });
});
