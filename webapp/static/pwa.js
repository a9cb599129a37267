// The installable app on every page: registers the service worker, marks a page opened from
// the phone's copy as offline (with the time it was kept) and read only, says plainly that
// signing and sending need a connection, and sends drafts kept on the phone when it can.
const root = document.documentElement;
const note = document.querySelector("[data-offline-note]");
const keptAt = root.dataset.offlineSince || "";

function when(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "?";
  return date.toLocaleString(root.lang === "en" ? "en-GB" : "vi-VN",
    { hour: "2-digit", minute: "2-digit", day: "2-digit", month: "2-digit", year: "numeric" });
}

function offline() { return Boolean(keptAt) || !navigator.onLine; }

function show(kind) {
  if (!note) return;
  const text = note.dataset[kind] || "";
  note.textContent = text.replace("{time}", when(keptAt));
  note.hidden = !text;
}

// A copy is shown because the network just failed, whatever navigator.onLine says (it only
// knows about the phone's own link); only an "online" event afterwards offers a reload.
function mark(event) {
  root.classList.toggle("is-offline", offline());
  if (keptAt) show(event && event.type === "online" ? "reload" : "copy");
  else if (!navigator.onLine) show("now");
  else if (note) note.hidden = true;
}

// A form that would be sent to the school is held back while offline (the new-request form
// keeps its draft on the phone instead: it is marked data-offline-ok). Signing is a decision
// the server must check, so it never happens offline.
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!offline() || !(form instanceof HTMLFormElement) || form.matches("[data-offline-ok]")) return;
  if ((form.getAttribute("method") || "get").toLowerCase() !== "post") return;
  event.preventDefault();
  const signs = form.matches("[data-signing]") || /\/act$/.test(form.action) ||
    form.querySelector("input[type=password]");
  show(signs ? "signing" : (keptAt ? "copy" : "now"));
  if (note) note.scrollIntoView({ block: "center" });
}, true);

window.addEventListener("online", mark);
window.addEventListener("offline", mark);
mark();

const user = note ? note.dataset.user : "";
const csrf = document.querySelector("input[name=csrf_token]");

if ("serviceWorker" in navigator) {
  const first = !navigator.serviceWorker.controller;
  const root = (document.querySelector("meta[name=app-root]") || {}).content || "";
  navigator.serviceWorker.register(root + "/sw.js", { scope: root + "/" }).catch(() => {});
  if (user && !keptAt) {
    navigator.serviceWorker.ready.then((registration) => {
      const worker = registration.active;
      if (!worker) return;
      const urls = [];
      // The page seen before the worker took over was not kept: keep it now (first visit only).
      if (first) urls.push(location.href);
      const form = document.querySelector("a[href$='/requests/new']");
      if (form) urls.push(form.href);
      if (urls.length) worker.postMessage({ type: "keep", urls, onlyMissing: !first });
    });
  }
}

if (user && csrf && "indexedDB" in window) {
  import("./offline-drafts.js").then((drafts) => drafts.start({ user, csrf: csrf.value, offline }));
}
