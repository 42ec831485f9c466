// The landing page's charts, drawn as SVG elements (h("svg:...")): no library, no network.
"use strict";

const CHART_W = 460, CHART_H = 160, LEFT = 48, BOTTOM = 22;

function seconds(value) { return value < 1 ? `${Math.round(value * 1000)} ms` : `${+value.toFixed(2)} s`; }

// Messages per second: per bucket, a bar for each direction.
function rateChart(rate) {
  const n = rate.client.length;
  if (!n) return h("p", {class: "empty"}, "no messages yet");
  const top = Math.max(1, ...rate.client, ...rate.server);
  const room = CHART_W - LEFT - 8, slot = room / n, bar = Math.max(0.5, slot / 2 - 0.5);
  const y = (v) => 8 + (1 - v / top) * (CHART_H - BOTTOM - 8);
  const bars = [];
  for (let i = 0; i < n; i++) {
    for (const [k, sender] of [[0, "client"], [1, "server"]]) {
      const v = rate[sender][i];
      if (!v) continue;
      bars.push(h("svg:rect", {class: `series-${sender}`, x: LEFT + i * slot + k * (bar + 0.5), y: y(v), width: bar,
                               height: CHART_H - BOTTOM - y(v)},
                  h("svg:title", {}, `${seconds(i * rate.bucket_s)}: ${Math.round(v).toLocaleString()} msg/s ${sender === "client" ? "client →" : "← server"}`)));
    }
  }
  return h("svg:svg", {class: "chart rate-chart", viewBox: `0 0 ${CHART_W} ${CHART_H}`, role: "img",
                       "aria-label": "messages per second by direction"},
    h("svg:line", {x1: LEFT, y1: CHART_H - BOTTOM, x2: CHART_W - 8, y2: CHART_H - BOTTOM, class: "axis"}),
    h("svg:text", {x: LEFT - 4, y: 14, class: "tick", "text-anchor": "end"}, `${Math.round(top).toLocaleString()}/s`),
    h("svg:text", {x: LEFT - 4, y: CHART_H - BOTTOM, class: "tick", "text-anchor": "end"}, "0"),
    h("svg:text", {x: LEFT, y: CHART_H - 6, class: "tick"}, "0"),
    h("svg:text", {x: CHART_W - 8, y: CHART_H - 6, class: "tick", "text-anchor": "end"},
      `${seconds(n * rate.bucket_s)} (bars of ${seconds(rate.bucket_s)})`),
    bars);
}

// Horizontal bars: rows of {label, value, text, class, title, parts: [[value, class], ...]}.
function barChart(rows, emptyText) {
  if (!rows.length) return h("p", {class: "empty"}, emptyText);
  const top = Math.max(...rows.map((r) => r.value), 1e-9);
  const rowH = 22, labelW = 130, width = CHART_W, room = width - labelW - 170;
  const w = (v) => Math.max(1, (v / top) * room);
  return h("svg:svg", {class: "chart bar-chart", viewBox: `0 0 ${width} ${rows.length * rowH + 4}`, role: "img"},
    rows.map((r, i) => h("svg:g", {class: `bar ${r.class || ""}`},
      h("svg:title", {}, r.title || r.label),
      h("svg:text", {x: labelW - 6, y: i * rowH + 15, class: "label", "text-anchor": "end"}, r.label),
      (r.parts || [[r.value, ""]]).map(([v, cls]) => h("svg:rect", {x: labelW, y: i * rowH + 4, height: rowH - 8, width: w(v), class: cls})),
      h("svg:text", {x: labelW + w(r.value) + 6, y: i * rowH + 15, class: "value"}, r.text))));
}

function latencyChart(latency) {
  return barChart(latency.map((t) => {
    const name = t.payload_type || "(none)";
    const unanswered = t.requests - t.answered;
    if (!t.answered) return {label: name, value: 0, text: `no answers (${t.requests})`, class: "p-none"};
    return {label: name, value: t.p99, parts: [[t.p99, "p99"], [t.p90, "p90"], [t.p50, "p50"]],
            text: `${ms(t.p50)} · ${ms(t.p90)} · ${ms(t.p99)}` + (unanswered ? ` (${unanswered} unanswered)` : ""),
            title: `${name}: p50 ${ms(t.p50)}, p90 ${ms(t.p90)}, p99 ${ms(t.p99)}, max ${ms(t.max)}; ` +
                   `${t.answered} of ${t.requests} answered`};
  }), "no requests yet");
}

function rulesChart(rules) {
  return barChart(rules.map((r) => ({label: r.code, value: r.count, text: r.count.toLocaleString(),
                                     class: `sev-${r.severity}`, title: `${r.severity}: ${r.when || r.code}`})),
                  "no findings");
}
