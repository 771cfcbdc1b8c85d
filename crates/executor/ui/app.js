// kiln fleet page: reads the operator API with the operator's token and
// keeps a live view of the machines. Data reaches the DOM only as text
// (textContent), never as markup.
"use strict";

const STATES = ["new", "commissioning", "commissioned", "booting", "installing", "installed", "failed"];
const TIMELINE_MAX = 200;
const OVERSCAN = 8;
const TOKEN_KEY = "kiln.operatorToken";

const $ = (id) => document.getElementById(id);
const fmt = (n) => n.toLocaleString("en-US");

const view = {
  machines: [],        // the active plan's machines, as /v1/machines lists them
  byName: new Map(),
  shown: [],           // the machines that pass the filters, in plan order
  rowHeight: 32,
  selected: null,      // the name of the machine in the detail panel
  queue: [],           // events waiting for the next frame
  frame: 0,
  stream: null,        // AbortController of the event stream
  reload: 0,           // timer of a pending list reload
  detailTimer: 0,
  started: 0,          // performance.now() when the token was given
};

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (k === "text") node.textContent = v;
    else if (k === "class") node.className = v;
    else if (k.startsWith("data-") || k.startsWith("aria-") || k === "scope" || k === "type" || k === "datetime" || k === "tabindex" || k === "colspan")
      node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children) if (c != null) node.append(c);
  return node;
}

function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

// ------------------------------------------------------------ the API

class Refused extends Error {}

async function api(path, options) {
  const response = await fetch(path, {
    ...options,
    headers: { Authorization: "Bearer " + token(), Accept: "application/json" },
    cache: "no-store",
    credentials: "omit",
  });
  if (response.status === 401 || response.status === 403) {
    let reason = "";
    try { reason = (await response.json()).error || ""; } catch (_) { /* not JSON */ }
    throw new Refused(reason || "status " + response.status);
  }
  return response;
}

async function json(path) {
  const response = await api(path);
  if (!response.ok) {
    let reason = "";
    try { reason = (await response.json()).error || ""; } catch (_) { /* not JSON */ }
    throw new Error(path + ": " + (reason || "status " + response.status));
  }
  return response.json();
}

function signOut(message) {
  if (view.stream) view.stream.abort();
  view.stream = null;
  sessionStorage.removeItem(TOKEN_KEY);
  $("fleet").hidden = true;
  $("plan").hidden = true;
  $("signout").hidden = true;
  $("login").hidden = false;
  $("live").textContent = "";
  $("error").textContent = message || "";
  $("token").value = "";
  $("token").focus();
}

function failed(error) {
  if (error instanceof Refused) {
    signOut("The executor refused this token (" + error.message + "). Give an operator's token; the viewer role is enough.");
  } else {
    $("live").textContent = "Error: " + error.message;
  }
}

// ------------------------------------------------------------ the list

async function loadMachines() {
  const list = await json("/v1/machines");
  view.machines = list.machines || [];
  view.byName = new Map(view.machines.map((m) => [m.name, m]));
  $("site").textContent = list.site;
  $("digest").textContent = (list.planDigest || "").slice(0, 12);
  $("digest").title = list.planDigest || "";
  $("plan").hidden = false;
  fillBlueprints();
  refilter();
}

function fillBlueprints() {
  const select = $("f-blueprint");
  const chosen = select.value;
  const names = [...new Set(view.machines.map((m) => m.blueprint))].sort();
  select.replaceChildren(el("option", { value: "", text: "every blueprint" }),
    ...names.map((n) => el("option", { value: n, text: n })));
  select.value = names.includes(chosen) ? chosen : "";
}

function labelMatch(m, filter) {
  if (!filter) return true;
  const labels = m.labels || {};
  const at = filter.indexOf("=");
  if (at < 0) return Object.prototype.hasOwnProperty.call(labels, filter);
  const key = filter.slice(0, at).trim();
  return Object.prototype.hasOwnProperty.call(labels, key) && String(labels[key]) === filter.slice(at + 1).trim();
}

function refilter() {
  const name = $("f-name").value.trim().toLowerCase();
  const state = $("f-state").value;
  const blueprint = $("f-blueprint").value;
  const label = $("f-label").value.trim();
  view.shown = view.machines.filter((m) =>
    (!state || m.state === state || (state === "stale" && m.stale)) &&
    (!blueprint || m.blueprint === blueprint) &&
    labelMatch(m, label) &&
    (!name || m.name.toLowerCase().includes(name) || (m.ip || "").includes(name) || (m.mac || "").toLowerCase().includes(name)));
  renderCounts();
  renderRows();
}

function renderCounts() {
  const counts = new Map(STATES.map((s) => [s, 0]));
  let stale = 0;
  for (const m of view.machines) {
    counts.set(m.state, (counts.get(m.state) || 0) + 1);
    if (m.stale) stale++;
  }
  const chosen = $("f-state").value;
  const item = (state, n, words) => el("li", { "data-state": state },
    el("button", { type: "button", class: "state-" + state, "data-count": state, "aria-pressed": String(chosen === state) },
      el("span", { class: "n", text: fmt(n) }), el("span", { text: words })));
  const items = [el("li", { "data-state": "" },
    el("button", { type: "button", "aria-pressed": String(chosen === ""), "data-count": "" },
      el("span", { class: "n", id: "count-total", "data-total": String(view.machines.length), text: fmt(view.machines.length) }),
      el("span", { text: "machines" })))];
  for (const [state, n] of counts) items.push(item(state, n, state));
  if (stale) items.push(item("stale", stale, "stale"));
  $("counts").replaceChildren(...items);
  const select = $("f-state");
  if (select.options.length === 1) {
    for (const s of [...STATES, "stale"]) select.append(el("option", { value: s, text: s }));
  }
  const total = view.machines.length;
  $("shown").textContent = view.shown.length === total ? "(" + fmt(total) + ")" : "(" + fmt(view.shown.length) + " of " + fmt(total) + ")";
  $("shown").dataset.shown = String(view.shown.length);
}

function when(rfc3339) {
  return rfc3339 ? rfc3339.replace("T", " ").replace(/\+00:00$|Z$/, " UTC") : "—";
}

// Today's times as HH:MM:SS, older ones as their date (UTC, as the API).
function short(rfc3339) {
  if (!rfc3339) return "—";
  const today = new Date().toISOString().slice(0, 10);
  return rfc3339.slice(0, 10) === today ? rfc3339.slice(11, 19) : rfc3339.slice(0, 10);
}

function time(rfc3339) {
  const t = el("time", { text: short(rfc3339) });
  if (rfc3339) {
    t.setAttribute("datetime", rfc3339);
    t.title = when(rfc3339);
  }
  return t;
}

function stateBadge(m) {
  const badge = el("span", { class: "badge state-" + m.state, text: m.state });
  return m.stale ? [badge, el("span", { class: "stale", text: "(stale)" })] : [badge];
}

function labelsText(labels) {
  return labels ? Object.entries(labels).map(([k, v]) => k + "=" + v).join(", ") : "";
}

function row(m, index) {
  const open = el("button", { type: "button", class: "link", "data-name": m.name, text: m.name });
  const tr = el("tr", { "data-machine": m.name, "aria-rowindex": String(index + 2) },
    el("th", { scope: "row" }, open),
    el("td", { class: "state" }, ...stateBadge(m)),
    el("td", { text: m.step || "—" }),
    el("td", { text: m.blueprint, title: m.blueprint }),
    el("td", { class: "mono", text: m.ip }),
    el("td", { class: "mono", text: m.mac }),
    el("td", { class: "seen" }, time(m.lastSeen)),
    el("td", { text: labelsText(m.labels), title: labelsText(m.labels) }));
  if (m.name === view.selected) tr.classList.add("selected");
  return tr;
}

function spacer(height) {
  const td = el("td", { colspan: "8" });
  td.style.height = height + "px";
  return el("tr", { class: "spacer", "aria-hidden": "true" }, td);
}

// Only the rows in view (and a few around them) are in the DOM; spacers
// keep the scroll height of the whole list.
function renderRows() {
  const scroller = $("scroller");
  const total = view.shown.length;
  const h = view.rowHeight;
  const first = Math.max(0, Math.floor(scroller.scrollTop / h) - OVERSCAN);
  const last = Math.min(total, Math.ceil((scroller.scrollTop + scroller.clientHeight) / h) + OVERSCAN);
  const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.name : undefined;
  const rows = [];
  if (first > 0) rows.push(spacer(first * h));
  for (let i = first; i < last; i++) rows.push(row(view.shown[i], i));
  if (last < total) rows.push(spacer((total - last) * h));
  $("rows").replaceChildren(...rows);
  $("table").setAttribute("aria-rowcount", String(total + 1));
  $("empty").hidden = total > 0 || view.machines.length === 0;
  if (focused) {
    const again = $("rows").querySelector('button[data-name="' + CSS.escape(focused) + '"]');
    if (again) again.focus({ preventScroll: true });
  }
  // The CSS row height is in rem: measure it once, then keep it.
  const sample = $("rows").querySelector("tr:not(.spacer)");
  if (sample && !view.measured) {
    view.measured = true;
    const real = sample.getBoundingClientRect().height;
    if (real > 0 && Math.abs(real - h) > 0.5) {
      view.rowHeight = real;
      renderRows();
    }
  }
}

let scrollFrame = 0;
function onScroll() {
  if (scrollFrame) return;
  scrollFrame = requestAnimationFrame(() => { scrollFrame = 0; renderRows(); });
}

// ------------------------------------------------------------ events

function scheduleReload() {
  clearTimeout(view.reload);
  view.reload = setTimeout(() => loadMachines().catch(failed), 1000);
}

// Events are applied once per frame, however many arrive: a boot storm
// costs one re-render of the visible rows per frame.
function enqueue(event) {
  view.queue.push(event);
  if (view.queue.length > 20000) {
    // The tab was hidden through a storm: start again from the list.
    view.queue = [];
    scheduleReload();
    return;
  }
  if (!view.frame) view.frame = requestAnimationFrame(flush);
}

// The step a machine is in once it reaches a state (none when at rest).
const STEP_OF = { commissioning: "commission", booting: "install", installing: "install" };

const BY_MACHINE = new Set(["booting", "commissioning", "commissioned", "installing", "installed"]);

function flush() {
  view.frame = 0;
  const events = view.queue;
  view.queue = [];
  const entries = [];
  let detailTouched = false;
  for (const e of events) {
    const m = e.machine ? view.byName.get(e.machine) : undefined;
    if (e.machine && !m) scheduleReload(); // a machine this page does not know yet
    if (m && e.type === "state" && e.to) {
      m.state = e.to;
      if (BY_MACHINE.has(e.to) && e.at) m.lastSeen = e.at;
      // Where the executor reports a machine's step, a new state says it.
      if ("step" in m) m.step = STEP_OF[e.to] || null;
    }
    if (m && e.type === "run" && e.outcome && "run" in m && m.run === e.run) m.run = null;
    if (e.type === "plan") scheduleReload(); // another plan: other machines
    if (e.machine && e.machine === view.selected) detailTouched = true;
  }
  // Only the newest TIMELINE_MAX can be shown: build no more than those.
  for (const e of events.slice(-TIMELINE_MAX)) entries.push(timelineEntry(e));
  if (events.some((e) => e.type === "state")) refilter();
  const list = $("timeline");
  for (const entry of entries) list.prepend(entry);
  while (list.children.length > TIMELINE_MAX) list.lastElementChild.remove();
  $("timeline-empty").hidden = list.children.length > 0;
  if (detailTouched) {
    clearTimeout(view.detailTimer);
    view.detailTimer = setTimeout(() => openDetail(view.selected, false), 300);
  }
}

function timelineEntry(e) {
  const at = e.at ? e.at.slice(11, 19) : "";
  let words;
  switch (e.type) {
    case "state":
      words = (e.from || "—") + " → " + e.to + (e.reason ? " (" + e.reason + ")" : "");
      break;
    case "run":
      words = "run " + e.run + " " + e.outcome + (e.reason ? " (" + e.reason + ")" : "");
      break;
    case "discovered":
      words = "unknown MAC " + e.mac + " booted (recorded as discovered)";
      break;
    default:
      words = e.type + (e.reason ? " (" + e.reason + ")" : "");
  }
  const li = el("li", { "data-type": e.type || "", "data-machine": e.machine || "" },
    el("time", { datetime: e.at || "", text: at }));
  if (e.machine) li.append(el("strong", { text: e.machine + ": " }));
  li.append(words);
  return li;
}

function parseEvent(block) {
  let type = "message";
  const data = [];
  for (const line of block.split(/\r?\n/)) {
    if (line.startsWith("event:")) type = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
  }
  if (!data.length) return;
  try {
    const e = JSON.parse(data.join("\n"));
    if (!e.type) e.type = type;
    enqueue(e);
  } catch (_) { /* not JSON: not ours */ }
}

// EventSource cannot send the token, so the stream is read with fetch().
async function follow() {
  const stop = new AbortController();
  view.stream = stop;
  $("live").textContent = "Connecting to the event stream…";
  try {
    const response = await api("/v1/events", { signal: stop.signal });
    if (!response.ok || !response.body) throw new Error("the event stream answered " + response.status);
    $("live").textContent = "Live";
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
        parseEvent(buffer.slice(0, end));
        buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, "");
      }
    }
  } catch (error) {
    if (stop.signal.aborted) return;
    if (error instanceof Refused) return failed(error);
  }
  if (stop.signal.aborted || view.stream !== stop) return;
  // The stream ended: catch up with what was missed, then follow again.
  $("live").textContent = "Event stream lost; reconnecting…";
  const again = () => {
    if (view.stream !== stop) return;
    loadMachines().then(follow, (error) => {
      if (error instanceof Refused) return failed(error);
      $("live").textContent = "Executor unreachable (" + error.message + "); retrying…";
      setTimeout(again, 5000);
    });
  };
  setTimeout(again, 3000);
}

// ------------------------------------------------------------ the detail

function dl(pairs) {
  const list = el("dl");
  for (const [k, v] of pairs) if (v != null && v !== "") list.append(el("dt", { text: k }), el("dd", { text: v }));
  return list;
}

function table(caption, heads, rows) {
  return el("table", {},
    el("caption", { class: "skip", text: caption }),
    el("thead", {}, el("tr", {}, ...heads.map((h) => el("th", { scope: "col", text: h })))),
    el("tbody", {}, ...rows.map((r) => el("tr", {}, ...r.map((c) => el("td", { text: c == null ? "—" : String(c) }))))));
}

function renderDetail(d) {
  const body = [];
  body.push(dl([
    ["state", d.state + (d.stale ? " (stale)" : "")],
    ["blueprint", d.blueprint],
    ["generation", String(d.generation)],
    ["IP", d.ip],
    ["MAC", d.mac],
    ["last seen", when(d.lastSeen)],
    ["step", d.step],
    ["current run", d.run == null ? null : String(d.run)],
    ["last report", d.lastReport ? when(d.lastReport) : null],
    ["agent last seen", d.agentLastSeen ? when(d.agentLastSeen) : null],
    ["labels", labelsText(d.labels)],
  ]));
  body.push(el("h3", { text: "Files its plan serves" }));
  const files = el("ul", { class: "mono" });
  for (const f of d.files || []) {
    files.append(el("li", { text: f.step + ": " + f.bootScript }));
    if (f.installFile) files.append(el("li", { text: f.step + ": " + f.installFile }));
  }
  body.push(files);
  body.push(el("h3", { text: "Runs" }));
  const runs = (d.runs || []).slice().reverse();
  body.push(runs.length
    ? table("Runs, newest first", ["run", "step", "started", "ended", "outcome"],
      runs.map((r) => [r.id, r.step, short(r.startedAt), r.endedAt ? short(r.endedAt) : null, r.state + (r.reason ? ": " + r.reason : "")]))
    : el("p", { class: "empty", text: "No run yet." }));
  body.push(el("h3", { text: "Last facts" }));
  if (!d.lastFacts) body.push(el("p", { class: "empty", text: "No report yet." }));
  else if (d.lastFacts.hidden) body.push(el("p", { text: "Reported " + when(d.lastFacts.at) + "; " + d.lastFacts.hidden + "." }));
  else body.push(el("p", { text: "Reported " + when(d.lastFacts.at) + ":" }),
    el("pre", { tabindex: "0", "aria-label": "Last facts (JSON)", text: JSON.stringify(d.lastFacts.snapshot, null, 2) }));
  body.push(el("h3", { text: "Audit trail" }));
  const trail = el("ol", { reversed: true });
  for (const a of (d.timeline || []).slice(-50).reverse()) {
    const change = a.detail && a.detail.to ? ": " + (a.detail.from || "—") + " → " + a.detail.to : "";
    trail.append(el("li", {}, time(a.at), " " + a.actor + " " + a.action + change));
  }
  body.push(trail.children.length ? trail : el("p", { class: "empty", text: "Nothing audited yet." }));
  $("detail-body").replaceChildren(...body);
}

async function openDetail(name, focus) {
  if (!name) return;
  view.selected = name;
  for (const tr of $("rows").querySelectorAll("tr.selected")) tr.classList.remove("selected");
  const tr = $("rows").querySelector('tr[data-machine="' + CSS.escape(name) + '"]');
  if (tr) tr.classList.add("selected");
  $("detail").hidden = false;
  $("detail").dataset.machine = name;
  $("detail-h").textContent = name;
  if (focus) $("detail-h").focus();
  try {
    const d = await json("/v1/machines/" + encodeURIComponent(name));
    if (view.selected === name) renderDetail(d);
  } catch (error) {
    if (error instanceof Refused) return failed(error);
    $("detail-body").replaceChildren(el("p", { class: "error", text: error.message }));
  }
}

function closeDetail() {
  const name = view.selected;
  view.selected = null;
  $("detail").hidden = true;
  for (const tr of $("rows").querySelectorAll("tr.selected")) tr.classList.remove("selected");
  const back = name && $("rows").querySelector('button[data-name="' + CSS.escape(name) + '"]');
  if (back) back.focus();
}

// ------------------------------------------------------------ start

async function start() {
  $("login").hidden = true;
  $("fleet").hidden = false;
  $("signout").hidden = false;
  $("error").textContent = "";
  $("live").textContent = "Loading…";
  try {
    await loadMachines();
  } catch (error) {
    return failed(error);
  }
  // When the first rows are on screen, for whoever measures the page.
  requestAnimationFrame(() => {
    document.documentElement.dataset.renderedMs = String(Math.round(performance.now() - view.started));
  });
  follow();
}

function init() {
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const given = $("token").value.trim();
    if (!given) return;
    view.started = performance.now();
    delete document.documentElement.dataset.renderedMs;
    sessionStorage.setItem(TOKEN_KEY, given);
    $("token").value = "";
    start();
  });
  $("signout").addEventListener("click", () => signOut(""));
  $("scroller").addEventListener("scroll", onScroll, { passive: true });
  window.addEventListener("resize", onScroll);
  for (const id of ["f-name", "f-label"]) $(id).addEventListener("input", refilter);
  for (const id of ["f-state", "f-blueprint"]) $(id).addEventListener("change", refilter);
  $("filters").addEventListener("submit", (event) => event.preventDefault());
  $("counts").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-count]");
    if (!button) return;
    $("f-state").value = button.dataset.count;
    refilter();
  });
  $("rows").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-name]");
    if (button) openDetail(button.dataset.name, true);
  });
  $("detail-close").addEventListener("click", closeDetail);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && view.selected) closeDetail();
  });
  if (token()) {
    view.started = performance.now();
    start();
  } else {
    $("token").focus();
  }
}

init();
