// Hands on the wire (docs/ui.md): breakpoints, held messages (forward, edit, drop), composing and
// resending — only when the page is served by `wsproxy record --ui` (GET /api/hands answers 200).
// Like everything else here, message text goes into the page as text, never as markup.
"use strict";

const hands = {available: false, state: null, held: [], version: -1, conn: null, preview: 0};

async function handsInit(conn) {
  hands.conn = conn;
  try {
    hands.state = await api("/api/hands");
  } catch (error) {
    showError(error.message);
    return;
  }
  if (!hands.state.available) return;  // `wsproxy ui` of a file: nothing to act on, the page leaves it out
  hands.available = true;
  for (const node of document.querySelectorAll(".hands-only")) node.hidden = false;
  const add = document.getElementById("breakpoint-form");
  if (add) add.addEventListener("submit", addBreakpoint);
  const compose = document.getElementById("compose");
  if (compose) compose.addEventListener("click", () => openCompose());
  await handsRefresh();
}

// The live socket said hands changed (or the page just loaded): breakpoints, held messages, badge.
async function handsChanged(info) {
  if (!hands.available || !info || info.version === hands.version) return;
  await handsRefresh();
}

async function handsRefresh() {
  try {
    hands.state = await api("/api/hands");
    hands.version = hands.state.version;
    hands.held = (await api("/api/held")).held;
  } catch (error) { showError(error.message); return; }
  const badge = document.getElementById("held-count");
  if (badge) {
    badge.hidden = hands.held.length === 0;
    clear(badge, `${hands.held.length} held`);
    const first = hands.held[0];
    badge.href = first ? `/connections/${first.conn_id}${linkQuery()}` : "#";
  }
  const compose = document.getElementById("compose");
  if (compose) compose.hidden = !hands.state.live.includes(hands.conn);  // only an open connection takes a message
  drawBreakpoints();
  drawHeld();
}

function drawBreakpoints() {
  const box = document.getElementById("breakpoints");
  if (!box) return;
  clear(box, hands.state.breakpoints.length ? null : h("span", {class: "none"}, "no breakpoints"),
    hands.state.breakpoints.map((b) => h("span", {class: "breakpoint"},
      h("label", {title: "hold what this selects"},
        h("input", {type: "checkbox", checked: b.enabled, dataset: {breakpoint: b.id},
                    onchange: (e) => post(`/api/breakpoints/${b.id}`, {enabled: e.target.checked, source: "ui"}).then(handsRefresh, (x) => showError(x.message))}),
        ` ${b.rule}`),
      h("button", {type: "button", class: "link", title: "remove this breakpoint",
                   onclick: () => request("DELETE", `/api/breakpoints/${b.id}`, {source: "ui"}).then(handsRefresh, (x) => showError(x.message))}, "×"))));
}

async function addBreakpoint(event) {
  event.preventDefault();
  const input = event.target.elements.rule;
  const said = document.getElementById("breakpoint-error");
  try {
    await post("/api/breakpoints", {rule: input.value, source: "ui"});
    input.value = "";
    clear(said);
  } catch (error) { clear(said, error.message); }  // the user's rule, said beside it until the next try
  await handsRefresh();
}

function drawHeld() {
  const box = document.getElementById("held");
  if (!box) return;
  const mine = hands.held.filter((m) => m.conn_id === hands.conn);
  box.hidden = mine.length === 0;
  clear(box, mine.map((m) => h("div", {class: `frame-row held-row from-${m.sender}`, dataset: {held: m.id}},
    h("span", {class: "time"}, clock(m.held_at_us)),
    h("span", {class: "seq"}, m.seq),
    direction(m.sender),
    h("span", {class: "type"}, h("span", {class: "badge held-badge"}, "held")),
    h("span", {class: "preview"}, m.text === null ? `binary ${bytes(m.size)}` : m.text),
    h("button", {type: "button", onclick: () => decide(m, "forward")}, "Forward"),
    m.text === null ? null : h("button", {type: "button", onclick: () => openEditor(m)}, "Edit…"),
    h("button", {type: "button", onclick: () => decide(m, "drop")}, "Drop"))));
}

async function decide(held, action, text) {
  try {
    await post(`/api/held/${held.id}`, {action, text, source: "ui"});
    showError(null);
  } catch (error) { showError(error.message); }
  await handsRefresh();
}

// The editor: a held message (forward edited), a composed one (send), or one to resend.
function editorPane(title, text, to, actions, held) {
  const area = h("textarea", {class: "editor", rows: 14, spellcheck: "false"});
  area.value = text;
  const findings = h("div", {class: "preview-findings"});
  async function check() {
    const asked = ++hands.preview;
    try {
      const answer = await post("/api/preview", {conn: hands.conn, to: to(), text: area.value, held: held ? held.id : null});
      if (asked !== hands.preview) return;
      clear(findings, answer.findings.length === 0
        ? h("p", {class: "clean"}, "✓ no findings: this message is what the protocol expects here")
        : answer.findings.map((x) => h("div", {class: `finding-detail sev-${x.severity}`},
            h("strong", {}, `${severityMark(x.severity)} ${x.severity} ${x.code}`), h("p", {}, x.message))));
    } catch (error) { clear(findings, h("p", {class: "sev-error"}, error.message)); }
  }
  let timer = null;
  area.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(check, 200); });
  check();
  return {area, node: [h("h2", {}, title), area, h("h3", {}, "Findings it would cause"), findings,
                       h("div", {class: "editor-actions"}, actions(area))], check};
}

function openEditor(held) {
  const pane = editorPane(`Held #${held.seq} ${held.direction}`, held.text, () => held.to, (area) => [
    h("button", {type: "button", class: "primary", onclick: () => decide(held, "forward", area.value).then(closeEditor)}, "Forward edited"),
    h("button", {type: "button", onclick: () => decide(held, "forward").then(closeEditor)}, "Forward as it came"),
    h("button", {type: "button", onclick: () => decide(held, "drop").then(closeEditor)}, "Drop"),
  ], held);
  clear(document.getElementById("detail"), pane.node);
  pane.area.focus();
}

function closeEditor() { clear(document.getElementById("detail"), h("p", {class: "empty"}, "Select a frame to see it whole.")); }

async function openCompose(text, to) {
  let templates = [];
  try { templates = (await api(`/api/connections/${hands.conn}/templates`)).templates; }
  catch (error) { showError(error.message); }
  const side = h("select", {name: "to"}, h("option", {value: "server"}, "to the server →"), h("option", {value: "client"}, "← to the client"));
  side.value = to || "server";
  // a message pasted from another recording: sent as a resend (a used request id renamed, stamped now)
  const asResend = h("input", {type: "checkbox", name: "resend"});
  const resendLabel = h("label", {title: "as `Resend` does: a request id this connection used already is renamed, the timestamp becomes now"},
                        asResend, " as a resend (from another recording)");
  const pane = editorPane(`Send on connection #${hands.conn}`, text || "", () => side.value, (area) => [
    h("button", {type: "button", class: "primary", onclick: async () => {
      try {
        const sent = asResend.checked && side.value === "server"
          ? await post(`/api/connections/${hands.conn}/resend`, {text: area.value, source: "ui"})
          : await post(`/api/connections/${hands.conn}/send`, {to: side.value, text: area.value, source: "ui"});
        clear(document.getElementById("detail"), h("p", {class: "clean"}, `Sent as #${sent.seq}` +
              (sent.renamed ? ` (request id renamed to ${sent.renamed})` : "") + "."));
        showError(null);
      } catch (error) { showError(error.message); }
    }}, "Send"),
  ]);
  const chooser = h("select", {class: "templates", onchange: (e) => {
    const chosen = templates[Number(e.target.value)];
    if (!chosen) return;
    pane.area.value = chosen.text;
    side.value = chosen.to;
    pane.check();
  }}, h("option", {value: ""}, "start from a template…"), templates.map((t, i) => h("option", {value: i}, `${t.to === "server" ? "→" : "←"} ${t.label}`)));
  const showResend = () => { resendLabel.hidden = side.value !== "server"; };
  side.addEventListener("change", () => { showResend(); pane.check(); });
  showResend();
  clear(document.getElementById("detail"), pane.node[0], h("div", {class: "compose-head"}, side, chooser, resendLabel),
        pane.node.slice(1));
  pane.area.focus();
}

// Any recorded text message as the start of a new one, to the side it went to, on this (open) connection.
function composeFromButton(frame) {
  if (!hands.available || frame.kind !== "text" || !hands.state.live.includes(hands.conn)) return null;
  return h("button", {type: "button", title: "open it in the compose box, to the side it went to",
                      onclick: () => openCompose(frame.text, frame.sender === "client" ? "server" : "client")},
           "Compose from this…");
}

// A recorded client message: resend it on a live connection (a used request id is renamed) or a new one.
function resendButton(frame) {
  if (!hands.available || frame.sender !== "client" || frame.kind !== "text") return null;
  const target = h("select", {class: "resend-target"},
    hands.state.live.map((c) => h("option", {value: c, selected: c === hands.conn}, `on connection #${c}`)),
    h("option", {value: "new"}, "on a new connection to the upstream"));
  return h("div", {class: "resend"}, h("button", {type: "button", onclick: async () => {
    const chosen = target.value === "new" ? null : Number(target.value);
    try {
      const sent = await post("/api/resend", {from_conn: frame.conn_id, seq: frame.seq, conn: chosen, source: "ui"});
      showError(null);
      clear(document.getElementById("resend-result"), `Resent as #${sent.seq} on connection #${sent.conn_id}` +
            (sent.renamed ? ` (request id renamed to ${sent.renamed})` : "") + ".");
      await handsRefresh();
    } catch (error) { showError(error.message); }
  }}, "Resend"), " ", target, h("span", {id: "resend-result", class: "clean"}));
}
