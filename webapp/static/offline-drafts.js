// New requests kept on the phone (IndexedDB) as they are typed, photos included, and sent to
// the school when there is a connection. Each draft has an id made on the phone; the server
// keeps that id with the draft, so a sync retried after a lost answer updates the same draft,
// and a photo sent twice is attached once (its sha256 names it).
import { shrink } from "./photo-shrink.js";

// Below which path this app answers ("" alone; "/s/<code>" in a district deployment). The
// phone keeps each school's drafts apart: a draft typed for one school never syncs to another.
const ROOT = (document.querySelector("meta[name=app-root]") || {}).content || "";
const DB = "expense-drafts" + (ROOT ? "@" + ROOT : "");
const STORE = "drafts";
const FIELDS = ["title", "line", "quantity", "unit_price", "amount", "source", "budget_year", "description"];
const KEEP_SENT_MS = 7 * 24 * 3600 * 1000;  // "reached the school" stays listed for a week
const CURRENT = "phone-draft-current" + ROOT;

// --- storage: one object store, a record per draft ---------------------------------------
function open() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE, { keyPath: "id" });
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function run(mode, work) {
  const db = await open();
  return new Promise((resolve, reject) => {
    const tx = db.transaction(STORE, mode);
    const result = work(tx.objectStore(STORE));
    tx.oncomplete = () => { db.close(); resolve(result && "result" in result ? result.result : undefined); };
    tx.onerror = () => { db.close(); reject(tx.error); };
  });
}

const put = (record) => run("readwrite", (store) => store.put(record));
const remove = (id) => run("readwrite", (store) => store.delete(id));
const all = () => run("readonly", (store) => store.getAll());

async function mine(user) {
  const records = (await all()) || [];
  const now = Date.now();
  for (const r of records) {
    if (r.owner === user && r.state === "sent" && now - r.sentAt > KEEP_SENT_MS) await remove(r.id);
  }
  return records.filter((r) => r.owner === user && !(r.state === "sent" && now - r.sentAt > KEEP_SENT_MS))
    .sort((a, b) => b.updated - a.updated);
}

function newId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40; b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

async function sha256(buffer) {
  if (!crypto.subtle) return "";  // not a secure context: the server deduplicates anyway
  const digest = await crypto.subtle.digest("SHA-256", buffer);
  return Array.from(new Uint8Array(digest), (x) => x.toString(16).padStart(2, "0")).join("");
}

function kb(bytes) {
  return bytes >= 1048576 ? (bytes / 1048576).toFixed(1) + " MB" : Math.max(1, Math.round(bytes / 1024)) + " KB";
}

// --- sending -------------------------------------------------------------------------------
const NETWORK = "network";
const RELOGIN = "relogin";

async function post(url, body, csrf) {
  body.append("csrf_token", csrf);
  let response;
  try {
    response = await fetch(url, { method: "POST", body, credentials: "same-origin",
      headers: { "X-CSRFToken": csrf, Accept: "application/json" } });
  } catch (error) { return { problem: NETWORK }; }
  const json = (response.headers.get("Content-Type") || "").includes("application/json");
  if (!json) return { problem: response.status >= 500 ? NETWORK : RELOGIN };
  const data = await response.json();
  return response.ok ? { data } : { problem: "refused", message: data.message, errors: data.errors };
}

// Send one draft: its text (creating or updating the server's draft), then each file not yet
// there, one request per file so a dropped connection costs one file, not all of them.
async function send(record, csrf, announce) {
  const body = new FormData();
  body.append("client_id", record.id);
  for (const name of FIELDS) body.append(name, record.fields[name] ?? "");
  if (announce) body.append("announce", "1");
  const saved = await post(ROOT + "/requests/sync", body, csrf);
  if (!saved.data) return saved;
  Object.assign(record, { number: saved.data.number, url: saved.data.url, error: "" });
  let there = saved.data.attachments;
  await put(record);
  for (const file of record.files) {
    if (file.sent) continue;
    if (file.sha256 && there.includes(file.sha256)) { file.sent = true; delete file.data; continue; }
    const part = new FormData();
    part.append("file", new Blob([file.data], { type: file.type }), file.name);
    const uploaded = await post(`${ROOT}/requests/${record.number}/attachments`, part, csrf);
    if (!uploaded.data) return uploaded;
    there = uploaded.data.attachments;
    file.sent = true;
    delete file.data;  // on the school's server now: free the phone's storage
    await put(record);
  }
  Object.assign(record, { state: "sent", sentAt: Date.now() });
  await put(record);
  return { data: saved.data };
}

let sending = null;

export function syncWaiting(user, csrf, onChange) {
  if (sending) return sending;
  sending = (async () => {
    for (const record of await mine(user)) {
      if (record.state !== "waiting" || record.error) continue;
      const result = await send(record, csrf, false);
      if (result.problem === "refused") { record.error = result.message || "?"; await put(record); }
      if (result.problem === RELOGIN) { record.error = RELOGIN; await put(record); }
      if (onChange) onChange();
      if (result.problem === NETWORK) break;
    }
  })().finally(() => { sending = null; });
  return sending;
}

// --- the new-request form ----------------------------------------------------------------------
function Form(form, panel, user, csrf) {
  const text = panel.dataset;
  const status = form.querySelector("[data-draft-status]");
  const list = form.querySelector("[data-phone-files]");
  const hint = form.querySelector("[data-file-list]");
  const inputs = form.querySelectorAll("input[type=file][name=attachments]");
  let record = null;
  let timer = null;

  const say = (message, kind) => { status.textContent = message; status.className = "draft-status " + (kind || ""); };
  const fill = (template, values) => template.replace(/\{(\w+)\}/g, (_, k) => values[k] ?? "");

  function fields() {
    const values = {};
    for (const name of FIELDS) if (form.elements[name]) values[name] = form.elements[name].value;
    return values;
  }

  async function current() {
    if (record) return record;
    const id = sessionStorage.getItem(CURRENT);
    const records = await mine(user);
    record = records.find((r) => r.id === id && r.state === "typing") ||
      { id: newId(), owner: user, state: "typing", fields: fields(), files: [], updated: Date.now() };
    sessionStorage.setItem(CURRENT, record.id);
    return record;
  }

  async function keep() {
    const r = await current();
    r.fields = fields();
    r.updated = Date.now();
    await put(r);
    say(fill(text.kept, { time: new Date().toLocaleTimeString(document.documentElement.lang, { hour: "2-digit", minute: "2-digit" }) }));
  }

  function showFiles() {
    list.replaceChildren();
    for (const file of record ? record.files : []) {
      const li = document.createElement("li");
      li.textContent = fill(text.shrunk, { name: file.name, after: kb(file.size), before: kb(file.before) }) + " ";
      const drop = document.createElement("button");
      drop.type = "button";
      drop.className = "small";
      drop.textContent = text.remove;
      drop.addEventListener("click", async () => {
        record.files = record.files.filter((f) => f !== file);
        await put(record);
        showFiles();
      });
      li.append(drop);
      list.append(li);
    }
  }

  async function addFiles(input) {
    const r = await current();
    say(text.shrinking);
    for (const picked of Array.from(input.files)) {
      const made = await shrink(picked);
      const data = await made.blob.arrayBuffer();  // ArrayBuffer: what every IndexedDB stores well
      const digest = await sha256(data);
      if (digest && r.files.some((f) => f.sha256 === digest)) continue;
      r.files.push({ name: made.name, type: made.type || "application/octet-stream", size: data.byteLength,
        before: made.before, width: made.width, height: made.height, sha256: digest, data, sent: false });
    }
    input.value = "";  // the form itself never carries the originals
    if (hint) hint.hidden = r.files.length > 0;
    await keep();
    showFiles();
  }

  async function restore() {
    const id = sessionStorage.getItem(CURRENT);
    const records = await mine(user);
    const found = records.find((r) => r.id === id && r.state === "typing") ||
      records.find((r) => r.state === "typing");
    if (!found) return;
    record = found;
    sessionStorage.setItem(CURRENT, found.id);
    for (const name of FIELDS) {
      const element = form.elements[name];
      if (element && found.fields[name] !== undefined && found.fields[name] !== "") element.value = found.fields[name];
    }
    if (form.elements.line) form.elements.line.dispatchEvent(new Event("change"));
    if (hint) hint.hidden = found.files.length > 0;
    showFiles();
    say(fill(text.restored, { time: new Date(found.updated).toLocaleTimeString(document.documentElement.lang, { hour: "2-digit", minute: "2-digit" }) }));
  }

  async function render() {
    const records = (await mine(user)).filter((r) => r.id !== (record && record.id) && (r.state !== "typing" || r.fields.title));
    const [phoneList, schoolList] = panel.querySelectorAll("ul");
    phoneList.replaceChildren();
    schoolList.replaceChildren();
    for (const r of records) {
      const li = document.createElement("li");
      const title = r.fields.title || text.untitled;
      const sent = r.files.filter((f) => f.sent).length;
      if (r.state === "sent") {
        const a = document.createElement("a");
        a.href = r.url;
        a.textContent = r.number;
        li.append(a, " · " + title);
        schoolList.append(li);
        continue;
      }
      li.textContent = title + " · " + fill(text.files, { sent, all: r.files.length });
      if (r.state === "waiting" && r.error) {
        const why = document.createElement("small");
        why.className = "error";
        why.textContent = r.error === RELOGIN ? text.relogin : fill(text.refused, { reason: r.error });
        li.append(document.createElement("br"), why);
      }
      if (r.state === "typing" || r.error) {
        const reopen = document.createElement("button");
        reopen.type = "button";
        reopen.className = "small";
        reopen.textContent = text.open;
        reopen.addEventListener("click", async () => {
          if (record) { record.state = record.fields.title ? "waiting" : "typing"; await put(record); }
          Object.assign(r, { state: "typing", error: "" });
          await put(r);
          sessionStorage.setItem(CURRENT, r.id);
          location.reload();
        });
        li.append(" ", reopen);
      }
      phoneList.append(li);
    }
    // "Saved on this phone only" no longer holds once nothing waits to be sent.
    if (status.textContent === text.savedPhone && !records.some((r) => r.state === "waiting")) say("");
    panel.querySelector("[data-phone-section]").hidden = !phoneList.children.length;
    panel.querySelector("[data-school-section]").hidden = !schoolList.children.length;
    panel.hidden = !records.length;
  }

  form.addEventListener("input", (event) => {
    if (event.target.type === "file") return;
    clearTimeout(timer);
    timer = setTimeout(keep, 250);
  });
  form.addEventListener("change", (event) => {
    if (event.target.type === "file") addFiles(event.target);
    else keep();
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearTimeout(timer);
    await keep();
    const title = form.elements.title;
    if (!title.value.trim()) { title.focus(); say(text.needTitle, "error"); return; }
    const r = await current();
    Object.assign(r, { state: "waiting", error: "" });
    await put(r);
    const online = navigator.onLine && !document.documentElement.dataset.offlineSince;
    if (online) {
      say(text.sending);
      const result = await send(r, csrf, true);
      if (result.data) { sessionStorage.removeItem(CURRENT); location.assign(result.data.url); return; }
      if (result.problem === "refused" || result.problem === RELOGIN) {
        Object.assign(r, { state: "typing" });
        await put(r);
        say(result.problem === RELOGIN ? text.relogin : fill(text.refused, { reason: result.message || "" }), "error");
        return;
      }
    }
    // No connection: the draft waits on the phone; the form starts a new one.
    sessionStorage.removeItem(CURRENT);
    record = null;
    form.reset();
    if (form.elements.line) form.elements.line.dispatchEvent(new Event("change"));
    list.replaceChildren();
    if (hint) hint.hidden = false;
    say(text.savedPhone, "warning");
    await render();
  });

  return { restore, render, inputs };
}

export async function start({ user, csrf }) {
  if (navigator.storage && navigator.storage.persist) navigator.storage.persist().catch(() => {});
  const form = document.querySelector("form[data-phone-draft]");
  const panel = document.querySelector("[data-phone-drafts]");
  let view = null;
  if (form && panel) {
    view = Form(form, panel, user, csrf);
    await view.restore();
    await view.render();
  }
  const refresh = () => (view ? view.render() : undefined);
  const go = () => { if (navigator.onLine) syncWaiting(user, csrf, refresh).then(refresh); };
  window.addEventListener("online", async () => {
    // Back online: a draft stopped by "sign in again" or a network error is tried once more.
    for (const r of await mine(user)) if (r.state === "waiting" && r.error === RELOGIN) { r.error = ""; await put(r); }
    go();
  });
  go();
  setInterval(go, 30000);  // "online" but the signal is weak: keep trying while the page is open
}
