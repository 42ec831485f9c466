// What both pages share: the token, the API, building DOM from data, formatting, the live socket.
// A payload is data, never markup: every text from a recording goes into the page as a text node
// (h() below); nothing here assigns innerHTML. The page's Content-Security-Policy backs this up.
"use strict";

const params = new URLSearchParams(location.search);
const TOKEN = params.get("token") || "";

// The query string a link keeps: the token and the session, plus what is given.
function linkQuery(extra) {
  const q = new URLSearchParams();
  if (TOKEN) q.set("token", TOKEN);
  if (params.get("session")) q.set("session", params.get("session"));
  for (const [k, v] of Object.entries(extra || {})) {
    if (v !== null && v !== undefined && v !== "") q.set(k, v);
  }
  return "?" + q.toString();
}

async function api(path, query) {
  const response = await fetch(path + linkQuery(query), {headers: {"X-Wsproxy-Token": TOKEN}});
  const body = await response.json().catch(() => ({error: response.statusText}));
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

// A change (hands on the wire): a JSON body, the token in a header.
async function request(method, path, body) {
  const response = await fetch(path + linkQuery(), {method, body: JSON.stringify(body || {}),
    headers: {"X-Wsproxy-Token": TOKEN, "Content-Type": "application/json"}});
  const answer = await response.json().catch(() => ({error: response.statusText}));
  if (!response.ok) throw new Error(answer.error || response.statusText);
  return answer;
}
function post(path, body) { return request("POST", path, body); }

// h("td", {class: "x", title: t}, "text", node, ...): an element; strings become text nodes.
function h(tag, attrs, ...children) {
  const node = tag.startsWith("svg:")
    ? document.createElementNS("http://www.w3.org/2000/svg", tag.slice(4))
    : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function clear(node, ...children) {
  node.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
}

function showError(message) {
  const bar = document.getElementById("error");
  if (message) console.error(`wsproxy ui: ${message}`);  // what the page shows, the console says too (the tests read it)
  if (!bar) return;
  bar.hidden = !message;
  bar.textContent = message || "";
}

const pad = (n, width) => String(n).padStart(width, "0");
function clock(us) {  // local time of day, to the millisecond
  if (us === null || us === undefined) return "";
  const d = new Date(us / 1000);
  return `${pad(d.getHours(), 2)}:${pad(d.getMinutes(), 2)}:${pad(d.getSeconds(), 2)}.${pad(d.getMilliseconds(), 3)}`;
}
function dateTime(us) {
  return us === null || us === undefined ? "" : new Date(us / 1000).toLocaleString();
}
function bytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}
function ms(value) {
  if (value === null || value === undefined) return "";
  return value < 10 ? `${value.toFixed(2)} ms` : value < 1000 ? `${value.toFixed(0)} ms` : `${(value / 1000).toFixed(2)} s`;
}
const ARROWS = {client: "→", server: "←"};
function direction(sender) { return h("span", {class: `dir dir-${sender}`, title: sender === "client" ? "client → server" : "server → client"}, ARROWS[sender] || "?"); }
function typeBadge(type) { return h("span", {class: `badge type-${type}`}, type); }
function idText(row) {
  if (row.type === "event") return row.event_id === null ? "" : `#${row.event_id}`;
  return row.msg_id === null ? "" : row.msg_id;
}
function severityMark(severity) { return severity === "error" ? "⚠" : severity === "warning" ? "△" : "ℹ"; }

// The live socket: calls onVersion(version) whenever the recording grows (and when it first
// answers, unless that is ``known``, the version the page was drawn from), and onHands(state) with
// what it says of held messages (record --ui); reconnects.
function listen(onVersion, onState, known, onHands) {
  let last = known ? JSON.stringify(known) : null;
  function connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${scheme}//${location.host}/api/live?token=${encodeURIComponent(TOKEN)}`);
    socket.onopen = () => onState && onState("live");
    socket.onmessage = async (event) => {
      const text = typeof event.data === "string" ? event.data : await event.data.text();
      const message = JSON.parse(text);
      if (onHands && message.hands) onHands(message.hands);
      const version = message.version;
      const key = JSON.stringify(version);
      if (key !== last) { last = key; onVersion(version); }
    };
    socket.onclose = () => { onState && onState("offline"); setTimeout(connect, 1000); };
  }
  connect();
}

function liveState(state) {
  const dot = document.getElementById("live");
  if (!dot) return;
  dot.className = `live live-${state}`;
  dot.textContent = state === "live" ? "● live" : "○ reconnecting";
}
