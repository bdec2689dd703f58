// kes event browser: hash-routed views over the JSON and SSE API of `kes serve`.
"use strict";

const view = () => document.getElementById("view");
let source = null; // the open EventSource of the live tail, if any

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null) el.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function token() {
  const m = document.cookie.match(/(?:^|; )kes_token=([^;]*)/);
  return m ? decodeURIComponent(m[1]) : null;
}

async function api(path) {
  const headers = { Accept: "application/json" };
  const t = token();
  if (t) headers.Authorization = "Bearer " + t;
  const r = await fetch(path, { headers });
  if (r.status === 401) {
    document.getElementById("login").hidden = false;
    throw new Error("a token is needed");
  }
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.detail || body.message || r.status + " " + r.statusText);
  return body;
}

function status(text, isError) {
  const el = document.getElementById("status");
  el.textContent = text;
  el.className = isError ? "error" : "";
}

const pretty = (v) => JSON.stringify(v, null, 2);
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

// ---- views ------------------------------------------------------------------------------

async function typesView() {
  const types = await api("/streams");
  fillTypeSelect(types);
  view().replaceChildren(
    h("h1", {}, "Aggregate types"),
    types.length === 0 ? h("p", {}, "No event topics in this namespace yet.") :
    h("table", { id: "types" },
      h("tr", {}, h("th", {}, "type"), h("th", {}, "topic"), h("th", { class: "num" }, "partitions"),
        h("th", { class: "num", title: "events plus transaction markers" }, "log offsets"), h("th", {}, "")),
      types.map((t) => h("tr", { "data-type": t.aggregateType },
        h("td", {}, h("b", {}, t.aggregateType)), h("td", { class: "muted" }, t.topic),
        h("td", { class: "num" }, t.partitions), h("td", { class: "num count" }, t.offsets),
        h("td", {}, h("a", { href: "#/tail/" + encodeURIComponent(t.aggregateType) }, "live tail")))))
  );
}

function fillTypeSelect(types) {
  const sel = document.getElementById("find-type");
  const current = sel.value;
  sel.replaceChildren(...types.map((t) => h("option", { value: t.aggregateType }, t.aggregateType)));
  if (current) sel.value = current;
}

// The state a generic browser can show: the payloads merged field by field, version by
// version. "What changed" at version v compares that state before and after v.
function changes(events, index) {
  const before = {};
  for (let i = 0; i < index; i++) Object.assign(before, events[i].payload);
  const after = Object.assign({}, before, events[index].payload);
  const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
  return keys.map((k) => {
    const kind = !(k in before) ? "added" : same(before[k], after[k]) ? "same" : "changed";
    return { key: k, kind, before: before[k], after: after[k] };
  });
}

async function streamView(type, id, selected) {
  const events = [];
  let next = `/streams/${encodeURIComponent(type)}/${encodeURIComponent(id)}?limit=1000`;
  let version = 0;
  while (next) {
    const page = await api(next);
    version = page.version;
    events.push(...page.events);
    next = page.next;
  }
  const detail = h("div", { id: "event-detail" });
  const list = h("ol", { class: "timeline", id: "timeline" },
    events.map((e, i) => h("li", { "data-version": e.version, onclick: () => show(i) },
      h("span", { class: "v" }, "v" + e.version), " ", h("span", { class: "etype" }, e.eventType),
      h("div", { class: "ts" }, e.timestamp))));
  function show(i) {
    const e = events[i];
    for (const li of list.children) li.classList.toggle("selected", li.dataset.version == e.version);
    history.replaceState(null, "", `#/stream/${encodeURIComponent(type)}/${encodeURIComponent(id)}/${e.version}`);
    const rows = changes(events, i);
    detail.replaceChildren(
      h("h2", {}, `v${e.version} ${e.eventType}`),
      h("p", { class: "muted" }, `event ${e.eventId} at ${e.position.topic}[${e.position.partition}]@${e.position.offset}, ${e.timestamp}`),
      h("h2", {}, "What changed from v" + (e.version - 1)),
      h("table", { id: "changes" },
        h("tr", {}, h("th", {}, "field"), h("th", {}, "before"), h("th", {}, "after")),
        rows.map((r) => h("tr", { class: r.kind, "data-field": r.key },
          h("td", {}, r.key), h("td", {}, r.before === undefined ? "" : JSON.stringify(r.before)),
          h("td", {}, JSON.stringify(r.after))))),
      h("h2", {}, "Payload"), h("pre", { id: "payload" }, pretty(e.payload)),
      ...(Object.keys(e.metadata || {}).length ? [h("h2", {}, "Metadata"), h("pre", {}, pretty(e.metadata))] : []));
  }
  view().replaceChildren(
    h("h1", {}, `${type} `, h("code", {}, id), " ", h("span", { class: "badge", id: "stream-version" }, "version " + version)),
    h("div", { class: "cols" }, list, detail));
  const want = events.findIndex((e) => String(e.version) === String(selected));
  show(want >= 0 ? want : events.length - 1);
}

async function tailView(type) {
  const types = await api("/streams");
  fillTypeSelect(types);
  const chosen = type || (types[0] && types[0].aggregateType);
  const picker = h("select", { id: "tail-type", onchange: (ev) => { location.hash = "#/tail/" + encodeURIComponent(ev.target.value); } },
    types.map((t) => h("option", { value: t.aggregateType }, t.aggregateType)));
  if (chosen) picker.value = chosen;
  const list = h("ul", { class: "tail", id: "tail" });
  const state = h("span", { class: "muted", id: "tail-state" }, "connecting…");
  view().replaceChildren(h("h1", {}, "Live tail of ", picker, " ", state),
    h("p", { class: "muted" }, "New events appear at the top as they are committed."), list);
  if (!chosen) return;
  source = new EventSource(`/subscriptions/${encodeURIComponent(chosen)}?from=end`);
  source.onopen = () => { state.textContent = "live"; };
  source.onerror = () => { state.textContent = "reconnecting…"; };
  source.addEventListener("error", (ev) => { if (ev.data) status(JSON.parse(ev.data).detail, true); });
  source.onmessage = (ev) => {
    const e = JSON.parse(ev.data);
    const href = `#/stream/${encodeURIComponent(e.aggregateType)}/${encodeURIComponent(e.aggregateId)}/${e.version}`;
    list.prepend(h("li", { class: "fresh", "data-event-id": e.eventId },
      h("a", { href }, h("span", { class: "etype" }, e.eventType), " ", e.aggregateId, " v" + e.version),
      h("div", { class: "ts" }, `${e.timestamp} · p${e.position.partition}@${e.position.offset}`),
      h("pre", {}, JSON.stringify(e.payload))));
    while (list.children.length > 200) list.lastChild.remove();
  };
}

async function projectionsView() {
  const names = await api("/projections");
  view().replaceChildren(h("h1", {}, "Projections"),
    names.length === 0 ? h("p", {}, "No projection has run against this namespace yet.") :
    h("table", { id: "projections" },
      h("tr", {}, h("th", {}, "projection"), h("th", {}, "group state"), h("th", {}, "dead letters")),
      names.map((p) => h("tr", {},
        h("td", {}, h("a", { href: "#/projection/" + encodeURIComponent(p.name) }, p.name)),
        h("td", {}, p.state), h("td", {}, p.deadLetterTopic ? "yes" : "")))));
}

async function projectionView(name) {
  const [st, dlq] = await Promise.all([
    api("/projections/" + encodeURIComponent(name)).catch((e) => ({ error: e.message })),
    api("/projections/" + encodeURIComponent(name) + "/dead-letters?limit=100")]);
  view().replaceChildren(h("h1", {}, "Projection ", h("code", {}, name)),
    ...(st.error ? [h("p", { class: "error" }, st.error)] : [
      h("p", {}, `group ${st.group}: ${st.state}, ${st.members} member(s), total lag `, h("b", { id: "total-lag" }, st.total_lag)),
      h("table", { id: "lag" },
        h("tr", {}, h("th", {}, "topic"), h("th", { class: "num" }, "partition"), h("th", { class: "num" }, "position"),
          h("th", { class: "num" }, "end"), h("th", { class: "num" }, "lag"), h("th", {}, "owner")),
        st.partitions.map((p) => h("tr", {}, h("td", {}, p.topic), h("td", { class: "num" }, p.partition),
          h("td", { class: "num" }, p.committed ?? "–"), h("td", { class: "num" }, p.end),
          h("td", { class: "num" }, p.lag), h("td", { class: "muted" }, p.owner || ""))))]),
    h("h2", {}, `Dead letters (${dlq.records.length}${dlq.next !== null ? "+" : ""})`),
    dlq.records.length === 0 ? h("p", { class: "muted" }, "none") :
    h("table", { id: "dead-letters" },
      h("tr", {}, h("th", {}, "from"), h("th", {}, "error"), h("th", { class: "num" }, "attempts"), h("th", {}, "record")),
      dlq.records.map((r) => h("tr", {}, h("td", {}, `${r.topic}[${r.partition}]@${r.offset}`),
        h("td", { class: "error" }, r.error), h("td", { class: "num" }, r.attempts),
        h("td", {}, h("pre", {}, r.value))))));
}

async function schemasView(subject) {
  const subjects = await api("/subjects");
  const rows = await Promise.all(subjects.map(async (s) => {
    const [versions, config] = await Promise.all([
      api(`/subjects/${encodeURIComponent(s)}/versions`),
      api(`/config/${encodeURIComponent(s)}?defaultToGlobal=true`)]);
    return { s, versions, level: config.compatibilityLevel, policy: config.compatibilityPolicy };
  }));
  const detail = h("div", { id: "schema-detail" });
  view().replaceChildren(h("h1", {}, "Schemas"),
    rows.length === 0 ? h("p", {}, "No schema registered.") : h("div", { class: "cols" },
      h("table", { id: "schemas" },
        h("tr", {}, h("th", {}, "subject"), h("th", {}, "versions"), h("th", {}, "compatibility")),
        rows.map((r) => h("tr", { "data-subject": r.s },
          h("td", {}, h("a", { href: "#/schemas/" + encodeURIComponent(r.s) }, r.s)),
          h("td", {}, r.versions.join(", ")), h("td", {}, `${r.level || ""} ${r.policy || ""}`)))),
      detail));
  if (subject) {
    const latest = await api(`/subjects/${encodeURIComponent(subject)}/versions/latest`);
    let schema = latest.schema;
    try { schema = pretty(JSON.parse(schema)); } catch (e) { /* not JSON: as it is */ }
    detail.replaceChildren(h("h2", {}, `${subject} v${latest.version} (id ${latest.id})`), h("pre", {}, schema));
  }
}

// ---- routing ----------------------------------------------------------------------------

async function route() {
  if (source) { source.close(); source = null; }
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  const [page, a, b, c] = parts;
  const nav = { tail: "tail", projections: "projections", projection: "projections", schemas: "schemas" }[page] || "types";
  for (const link of document.querySelectorAll("nav a")) link.classList.toggle("active", link.dataset.nav === nav);
  status("");
  try {
    if (page === "stream") await streamView(a, b, c);
    else if (page === "tail") await tailView(a);
    else if (page === "projections") await projectionsView();
    else if (page === "projection") await projectionView(a);
    else if (page === "schemas") await schemasView(a);
    else await typesView();
  } catch (err) {
    status(err.message, true);
    view().replaceChildren(h("p", { class: "error", id: "error" }, err.message));
  }
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("find").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const type = document.getElementById("find-type").value;
    const id = document.getElementById("find-id").value.trim();
    if (type && id) location.hash = `#/stream/${encodeURIComponent(type)}/${encodeURIComponent(id)}`;
  });
  document.getElementById("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const t = document.getElementById("token").value.trim();
    document.cookie = `kes_token=${encodeURIComponent(t)}; path=/; SameSite=Strict`;
    document.getElementById("login").hidden = true;
    route();
  });
  api("/streams").then(fillTypeSelect).catch(() => {});
  window.addEventListener("hashchange", route);
  route();
});
