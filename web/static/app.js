// The txfs console page: it shows the state the server streams
// (/api/events) and sends the changes asked for. No library, no build.
"use strict";

const $ = (sel) => document.querySelector(sel);
const el = (tag, attrs = {}, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k === "style") e.style.cssText = v; // not an attribute: the page's CSP forbids inline styles
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k);
  return e;
};

const view = { dir: null, name: "overview", tree: "", path: "/", file: null };
let state = null;
const history = {}; // dir -> samples of counters, for the charts
const HISTORY = 120; // samples kept (two minutes at one a second)
let fingerprint = ""; // what the file view last saw of the volume

// ---- formatting

function bytes(n) {
  if (n == null) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n.toFixed(0) : n.toFixed(n < 10 ? 2 : 1)) + " " + units[i];
}
const rate = (n) => bytes(n) + "/s";
const when = (s) => new Date(s).toLocaleString();
const ms = (s) => (s * 1000 < 1 ? (s * 1e6).toFixed(0) + " µs" : (s * 1000).toFixed(s < 0.01 ? 2 : 1) + " ms");

// ---- messages

function say(text, isError) {
  const m = el("p", { class: "message" + (isError ? " error" : "") }, text);
  $("#messages").prepend(m);
  while ($("#messages").children.length > 4) $("#messages").lastChild.remove();
  setTimeout(() => m.remove(), isError ? 20000 : 8000);
}

// api sends a request and answers its JSON, or throws an Error whose
// message is the server's words.
async function api(method, path, params) {
  const url = path + (params ? "?" + new URLSearchParams(params) : "");
  let resp;
  try {
    resp = await fetch(url, { method, headers: { "X-Txfs-Console": "1" } });
  } catch (e) {
    throw new Error("the console does not answer (" + e.message + ")");
  }
  let body = null;
  try { body = await resp.json(); } catch (e) { /* not JSON */ }
  if (!resp.ok) throw new Error((body && body.error) || resp.status + " " + resp.statusText);
  return body;
}

// ---- state from the server

function connect() {
  const es = new EventSource("/api/events");
  es.onopen = () => { $("#link").textContent = "live"; $("#link").className = "link"; };
  es.onerror = () => { $("#link").textContent = "console unreachable, retrying…"; $("#link").className = "link down"; };
  es.onmessage = (ev) => receive(JSON.parse(ev.data));
}

function receive(s) {
  if (!s.volumes) return;
  state = s;
  for (const v of s.volumes) record(v, s.time);
  if (!view.dir || !s.volumes.some((v) => v.dir === view.dir)) view.dir = s.volumes.length ? s.volumes[0].dir : null;
  render();
}

function current() { return state && state.volumes.find((v) => v.dir === view.dir); }

// ---- rendering

function render() {
  renderVolumes();
  for (const a of document.querySelectorAll("#views a")) {
    a.setAttribute("aria-current", a.dataset.view === view.name ? "page" : "false");
  }
  for (const name of ["overview", "snapshots", "files"]) $("#view-" + name).hidden = name !== view.name;
  const v = current();
  $("#volume-error").hidden = !(v && v.error);
  $("#volume-error").textContent = v && v.error ? v.dir + ": " + v.error : "";
  if (!v) return;
  if (view.name === "overview") renderOverview(v);
  if (view.name === "snapshots") renderSnapshots(v);
  if (view.name === "files") refreshFiles(v);
}

function renderVolumes() {
  const nav = $("#volumes");
  nav.replaceChildren(...state.volumes.map((v) => {
    const b = el("button", { type: "button", class: v.error ? "down" : "", title: v.error || "mounted" },
      el("span", { class: "dot" }), v.dir);
    b.setAttribute("aria-current", v.dir === view.dir ? "true" : "false");
    b.onclick = () => { view.dir = v.dir; view.tree = ""; view.path = "/"; view.file = null; fingerprint = ""; render(); };
    return b;
  }));
}

function figures(dl, rows) {
  dl.replaceChildren(...rows.flatMap(([k, v, color]) => [
    el("dt", {}, ...(color ? [el("span", { class: "swatch", style: "background:" + color })] : []), k),
    el("dd", {}, v),
  ]));
}

function renderOverview(v) {
  const st = v.status;
  if (!st) { $("#space-bar").replaceChildren(); figures($("#space"), []); figures($("#cleaner"), []); return; }
  const snap = st.snapshot_bytes, live = Math.max(st.live_bytes - snap, 0);
  const parts = [["Live tree", live, "var(--live)"], ["Only in snapshots", snap, "var(--snap)"],
    ["Reclaimable", st.reclaimable_bytes, "var(--recl)"], ["Free", st.free_bytes, "var(--free)"]];
  $("#space-bar").replaceChildren(...parts.map(([k, n, c]) =>
    el("span", { title: k + ": " + bytes(n), style: `width:${(100 * n / st.size_bytes).toFixed(2)}%;background:${c}` })));
  figures($("#space"), [...parts.map(([k, n, c]) => [k, bytes(n), c]),
    ["Size", bytes(st.size_bytes) + ` (${st.segments} segments of ${bytes(st.segment_size)}, ${st.free_segments} free)`],
    ["Snapshots", String(st.snapshots)], ["Mode", st.read_only ? "read-only" : "read-write"]]);
  const c = st.cleaner;
  figures($("#cleaner"), [["State", c.state], ["Policy", c.policy],
    ["Watermarks", `${c.low_watermark} / ${c.high_watermark} free segments`],
    ["Passes", String(c.passes)], ["Segments cleaned", String(c.segments_cleaned)],
    ["Bytes moved", bytes(c.bytes_moved)], ["Write amplification", c.write_amplification.toFixed(2)]]);
  $("#clean").disabled = st.read_only;
  renderCharts(v);
  renderSegments(v);
}

function renderSnapshots(v) {
  const body = $("#snapshot-table tbody");
  body.replaceChildren(...v.snapshots.slice().reverse().map((s) => el("tr", { "data-snapshot": s.name },
    el("td", {}, el("strong", {}, s.name)), el("td", {}, when(s.created)),
    el("td", { class: "num" }, bytes(s.exclusive_bytes)), el("td", { class: "num" }, bytes(s.shared_bytes)),
    el("td", { class: "actions" },
      el("button", { type: "button", class: "plain small", "data-op": "browse", onclick: () => browse(s.name) }, "Browse"),
      el("button", { type: "button", class: "plain small", "data-op": "restore", onclick: () => confirmOp("restore", s.name) }, "Restore…"),
      el("button", { type: "button", class: "plain small", "data-op": "delete", onclick: () => confirmOp("delete", s.name) }, "Delete…")))));
  $("#no-snapshots").hidden = v.snapshots.length > 0;
}

// ---- charts (canvas, drawn by hand)

const COLORS = ["#2f6fdf", "#e4572e", "#17a398", "#9b5de5", "#f4a259", "#5c677d"];

function record(v, time) {
  const h = (history[v.dir] = history[v.dir] || []);
  if (!v.status) return;
  const m = v.metrics;
  h.push({ t: time, user: v.status.cleaner.user_bytes, device: v.status.cleaner.device_bytes,
    counters: m ? m.counters : null, hist: m ? m.histograms : null });
  if (h.length > HISTORY + 1) h.shift();
}

// The daemon's metrics the charts show: byte counters as rates, and
// duration histograms as their mean over each second (operations: of all
// kinds, as timed).
const RATES = {
  txfs_read_bytes_total: "read by users",
  txfs_written_bytes_total: "written by users",
  txfs_cleaner_moved_bytes_total: "moved by the cleaner",
};
const LATENCIES = {
  txfs_operation_duration_seconds: "operations, mean",
  txfs_log_flush_duration_seconds: "log flushes, mean",
  txfs_checkpoint_duration_seconds: "checkpoints, mean",
};

// series derives, from each pair of samples, the rates of the byte
// counters and the latency of each histogram.
function series(dir) {
  const h = history[dir] || [];
  const tp = {}, lat = {};
  const add = (set, name, t, y) => { (set[name] = set[name] || []).push([t, y]); };
  for (let i = 1; i < h.length; i++) {
    const a = h[i - 1], b = h[i], dt = (b.t - a.t) / 1000;
    if (dt <= 0) continue;
    add(tp, "written by operations", b.t, Math.max(b.user - a.user, 0) / dt);
    add(tp, "written to the device", b.t, Math.max(b.device - a.device, 0) / dt);
    if (a.counters && b.counters) {
      for (const [name, label] of Object.entries(RATES)) {
        if (!(name in a.counters) || !(name in b.counters)) continue;
        add(tp, label, b.t, Math.max(b.counters[name] - a.counters[name], 0) / dt);
      }
    }
    if (a.hist && b.hist) {
      for (const [name, label] of Object.entries(LATENCIES)) {
        const x = a.hist[name], y = b.hist[name];
        if (!x || !y || y.count - x.count <= 0) continue;
        add(lat, label, b.t, (y.sum - x.sum) / (y.count - x.count));
      }
    }
  }
  return { tp, lat };
}

function chart(canvas, sets, fmt, legend, empty, floor) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, hgt = canvas.clientHeight || 180;
  canvas.width = w * dpr; canvas.height = hgt * dpr;
  const g = canvas.getContext("2d");
  g.scale(dpr, dpr);
  g.clearRect(0, 0, w, hgt);
  const names = Object.keys(sets).slice(0, COLORS.length);
  // The window grows with the samples, from 30 seconds up to HISTORY.
  const h = history[view.dir] || [], now = state.time;
  const span = Math.min(HISTORY * 1000, Math.max(30000, h.length ? now - h[0].t : 0));
  const left = 70, bottom = hgt - 18, top = 8, right = w - 6;
  let max = 0;
  for (const n of names) for (const [, y] of sets[n]) max = Math.max(max, y);
  max = Math.max(max * 1.15, floor);
  g.font = "11px system-ui, sans-serif";
  g.fillStyle = "#667085"; g.strokeStyle = "#e3e6ea"; g.lineWidth = 1;
  for (let i = 0; i <= 3; i++) {
    const y = bottom - (bottom - top) * i / 3;
    g.beginPath(); g.moveTo(left, y); g.lineTo(right, y); g.stroke();
    g.fillText(fmt(max * i / 3), 4, y + 4);
  }
  g.fillText(Math.round(span / 1000) + " s ago", left, hgt - 4);
  g.fillText("now", right - 22, hgt - 4);
  const x = (t) => left + (right - left) * (1 - (now - t) / span);
  names.forEach((n, i) => {
    g.strokeStyle = COLORS[i]; g.lineWidth = 2; g.beginPath();
    sets[n].forEach(([t, y], j) => {
      const px = x(t), py = bottom - (bottom - top) * y / max;
      if (j === 0) g.moveTo(px, py); else g.lineTo(px, py);
    });
    g.stroke();
  });
  legend.replaceChildren(...(names.length ? names.map((n, i) => {
    const last = sets[n][sets[n].length - 1];
    return el("span", {}, el("span", { class: "swatch", style: "background:" + COLORS[i] }), `${n}: ${fmt(last[1])}`);
  }) : [empty]));
}

function renderCharts(v) {
  const { tp, lat } = series(v.dir);
  chart($("#chart-throughput"), tp, rate, $("#legend-throughput"), "Waiting for a second sample…", 1024);
  // Without /metrics there is nothing to draw: say so instead.
  $("#chart-latency").hidden = !v.metrics;
  $("#legend-latency").classList.toggle("empty", !v.metrics);
  if (!v.metrics) {
    $("#legend-latency").replaceChildren("Latency needs the daemon's /metrics, which this mount does not serve.");
    return;
  }
  chart($("#chart-latency"), lat, ms, $("#legend-latency"), "No operations timed in the last samples.", 0.001);
}

function renderSegments(v) {
  const canvas = $("#segments"), segs = v.segments;
  if (!segs) { $("#segments-caption").textContent = "(this daemon does not report them)"; return; }
  const n = segs.live_bytes.length, free = new Set(segs.free);
  const dpr = window.devicePixelRatio || 1, w = canvas.clientWidth;
  const cell = Math.max(4, Math.min(14, Math.floor(Math.sqrt(w * 200 / n)))), perRow = Math.floor(w / cell);
  const rows = Math.ceil(n / perRow), hgt = rows * cell;
  canvas.style.height = hgt + "px";
  canvas.width = w * dpr; canvas.height = hgt * dpr;
  const g = canvas.getContext("2d");
  g.scale(dpr, dpr);
  let full = 0;
  segs.live_bytes.forEach((live, i) => {
    const f = Math.min(live / segs.segment_size, 1);
    if (!free.has(i)) full += f;
    // From a pale blue (empty) to a deep one (full).
    g.fillStyle = free.has(i) ? "#e7ebf0" : `rgb(${Math.round(219 - 189 * f)},${Math.round(234 - 176 * f)},${Math.round(254 - 116 * f)})`;
    g.fillRect((i % perRow) * cell, Math.floor(i / perRow) * cell, cell - 1, cell - 1);
  });
  const used = n - free.size;
  $("#segments-caption").textContent = `${n} segments, ${free.size} free, ${used} in use, ${used ? Math.round(100 * full / used) : 0}% full on average`;
}

// ---- operations

async function operate(what, fn, failed) {
  try {
    const r = await fn();
    say(what(r));
  } catch (e) {
    say(failed + ": " + e.message, true);
  }
}

$("#clean").onclick = async () => {
  $("#clean").disabled = true;
  await operate((r) => `Cleaner pass on ${view.dir}: ${r.segments_cleaned} segments cleaned, ${bytes(r.bytes_moved)} moved, ${bytes(r.bytes_freed)} freed.`,
    () => api("POST", "/api/clean", { dir: view.dir }), "The cleaner pass failed");
  $("#clean").disabled = false;
};

$("#create").onsubmit = (ev) => {
  ev.preventDefault();
  const name = $("#snapshot-name").value.trim();
  snapshotOp("create", name).then(() => { $("#snapshot-name").value = ""; });
};

function snapshotOp(op, name) {
  const done = { create: "taken", restore: "restored: the live tree is now as it was then", delete: "deleted" }[op];
  return operate(() => `Snapshot ${name} ${done}.`, async () => {
    const r = await api("POST", "/api/snapshot", { dir: view.dir, name, op });
    fingerprint = ""; // the file view shows what is there now
    return r;
  }, `Could not ${op} snapshot ${name}`).then(() => { if (view.name === "files") refreshFiles(current()); });
}

function confirmOp(op, name) {
  const d = $("#confirm");
  $("#confirm-title").textContent = (op === "restore" ? "Restore" : "Delete") + " snapshot " + name + "?";
  $("#confirm-text").textContent = op === "restore"
    ? `Every file in ${view.dir} becomes as it was when ${name} was taken. Changes made since are lost unless another snapshot holds them. Every snapshot is kept.`
    : `Snapshot ${name} goes, and the space only it holds is freed. The live tree does not change.`;
  $("#confirm-ok").textContent = op === "restore" ? "Restore" : "Delete";
  d.returnValue = "";
  d.onclose = () => { if (d.returnValue === "ok") snapshotOp(op, name); };
  d.showModal();
}

// ---- files

function browse(snap) {
  view.tree = snap; view.path = "/"; view.file = null; fingerprint = "";
  location.hash = "#files";
}

function treeOptions(v) {
  const sel = $("#tree");
  const want = ["", ...v.snapshots.map((s) => s.name)];
  const have = [...sel.options].map((o) => o.value);
  if (want.join("/") !== have.join("/")) {
    sel.replaceChildren(...want.map((n) => el("option", { value: n }, n ? "Snapshot " + n : "Live tree")));
  }
  if (!want.includes(view.tree)) { view.tree = ""; view.path = "/"; view.file = null; }
  sel.value = view.tree;
}

$("#tree").onchange = () => { view.tree = $("#tree").value; view.path = "/"; view.file = null; fingerprint = ""; refreshFiles(current()); };

// refreshFiles reads the listing (and the open file) again when the
// volume changed since the last time, or the place did.
async function refreshFiles(v) {
  if (!v) return;
  treeOptions(v);
  const c = v.status ? v.status.cleaner : {};
  const fp = [v.dir, view.tree, view.path, view.file, c.user_bytes, v.snapshots.map((s) => s.name).join(",")].join("|");
  if (fp === fingerprint) return;
  fingerprint = fp;
  const params = { dir: v.dir, path: view.path };
  if (view.tree) params.snap = view.tree;
  renderCrumbs();
  try {
    const l = await api("GET", "/api/files", params);
    renderListing(l);
    $("#files-note").hidden = true;
  } catch (e) {
    $("#file-table tbody").replaceChildren();
    $("#files-note").textContent = e.message;
    $("#files-note").hidden = false;
  }
  if (!view.file) { $("#file-pane").hidden = true; return; }
  try {
    renderFile(await api("GET", "/api/files", { ...params, path: join(view.path, view.file) }), params);
  } catch (e) {
    $("#file-pane").hidden = false;
    $("#file-name").textContent = view.file;
    $("#file-meta").textContent = e.message;
    $("#file-preview").textContent = "";
    $("#file-download").hidden = true;
  }
}

const join = (dir, name) => (dir.endsWith("/") ? dir : dir + "/") + name;

function go(path, file) { view.path = path; view.file = file || null; fingerprint = ""; refreshFiles(current()); }

function renderCrumbs() {
  const parts = view.path.split("/").filter(Boolean);
  const crumbs = [el("a", { onclick: () => go("/") }, view.tree ? "snapshot " + view.tree : "live")];
  parts.forEach((p, i) => {
    crumbs.push(el("span", {}, "/"), el("a", { onclick: () => go("/" + parts.slice(0, i + 1).join("/")) }, p));
  });
  $("#crumbs").replaceChildren(...crumbs);
}

function renderListing(l) {
  const rows = [];
  if (view.path !== "/") {
    rows.push(el("tr", {}, el("td", {}, el("a", { onclick: () => go(view.path.replace(/\/[^/]*$/, "") || "/") }, "..")), el("td"), el("td")));
  }
  for (const e of l.entries || []) {
    const open = e.kind === "dir" ? () => go(join(view.path, e.name)) : () => go(view.path, e.name);
    const name = e.kind === "dir" ? e.name + "/" : e.kind === "symlink" ? e.name + " →" : e.name;
    const row = el("tr", { class: e.name === view.file ? "current" : "", "data-name": e.name },
      el("td", {}, e.kind === "other" ? name : el("a", { onclick: open }, name)),
      el("td", { class: "num" }, e.kind === "file" ? bytes(e.size) : ""), el("td", {}, when(e.mtime)));
    rows.push(row);
  }
  $("#file-table tbody").replaceChildren(...rows);
  if (l.truncated) { $("#files-note").textContent = "Only the first entries are shown."; }
  $("#files-note").hidden = !l.truncated && (l.entries || []).length > 0;
  if (!l.truncated && !(l.entries || []).length) $("#files-note").textContent = "This directory is empty.";
}

function renderFile(l, params) {
  const f = l.file;
  $("#file-pane").hidden = false;
  $("#file-name").textContent = l.path;
  $("#file-meta").textContent = `${bytes(f.size)}, ${f.mode}, modified ${when(f.mtime)}` + (view.tree ? `, in snapshot ${view.tree}` : "");
  $("#file-download").hidden = false;
  $("#file-download").href = "/api/download?" + new URLSearchParams({ ...params, path: l.path });
  $("#file-preview").textContent = l.preview == null ? "(not text: download it to see it)"
    : l.preview + (l.truncated ? "\n… (the first " + bytes(l.preview.length) + " only)" : "");
}

// ---- views

function route() {
  const name = location.hash.slice(1);
  view.name = ["overview", "snapshots", "files"].includes(name) ? name : "overview";
  fingerprint = "";
  if (state) render();
}
window.addEventListener("hashchange", route);
window.addEventListener("resize", () => { if (state) render(); });
route();
api("GET", "/api/state").then(receive).catch((e) => say(e.message, true));
connect();
