// Service worker: pages already seen open offline (read only, marked with the time they were
// kept); the app's own files come from the phone. Served at /sw.js by webapp/pwa.py, which
// fills in the version and the list below.
"use strict";
const VERSION = "__VERSION__";
const PRECACHE = ["__PRECACHE__"];
// Below which path this app answers ("" alone; "/s/<code>" in a district deployment): each
// school's worker keeps its own caches and clears only those.
const ROOT = "__ROOT__";
const SUFFIX = ROOT ? "@" + ROOT : "";
const STATIC = "static-" + VERSION + SUFFIX;
const PAGES = "pages-v1" + SUFFIX;
const MINE = (name) => (SUFFIX ? name.endsWith(SUFFIX) : !name.includes("@"));
const OFFLINE = PRECACHE.find((url) => url.endsWith("/offline.html"));
// Where "/" (the installed app's start) sends each kind of person: offline, the newest kept.
const HOMES = ["__HOMES__"];

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches.open(STATIC)
      .then((cache) => cache.addAll(PRECACHE.map((url) => new Request(url, { cache: "no-cache" }))))
      .then(() => self.skipWaiting())
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((names) => Promise.all(
        names.filter((name) => MINE(name) && name !== STATIC && name !== PAGES).map((name) => caches.delete(name))))
      .then(() => self.clients.claim())
  );
});

// A page is kept with the time it was fetched; served offline, it is marked so that pwa.js
// shows it as an offline copy and makes it read only.
// NOTE: Chrome replaces a cached entry by removing it first, so a page being re-kept is briefly
// missing; a copy asked for meanwhile waits for the write instead of reporting "not kept".
const writing = new Map();

function keep(request, response) {
  const job = (async () => {
    const headers = new Headers(response.headers);
    headers.set("X-Kept-At", new Date().toISOString());
    const body = await response.clone().arrayBuffer();
    const cache = await caches.open(PAGES);
    await cache.put(request.url, new Response(body, { status: 200, headers }));
  })();
  writing.set(request.url, job);
  return job.finally(() => { if (writing.get(request.url) === job) writing.delete(request.url); });
}

async function offlineCopy(request) {
  await (writing.get(request.url) || Promise.resolve()).catch(() => {});
  const cache = await caches.open(PAGES);
  let kept = await cache.match(request.url, { ignoreVary: true });
  if (!kept && new URL(request.url).pathname === ROOT + "/") kept = await newestHome(cache);
  if (!kept) {
    return (await caches.match(OFFLINE)) || new Response("Offline", { status: 503 });
  }
  const keptAt = kept.headers.get("X-Kept-At") || "";
  const html = (await kept.text()).replace(/<html\b/i,
    '<html data-offline-since="' + keptAt.replace(/[^0-9TZ:.\-]/g, "") + '"');
  // The stored headers (the CSP among them) stay in force on the copy.
  return new Response(html, { status: 200, headers: kept.headers });
}

async function newestHome(cache) {
  let best = null;
  for (const path of HOMES) {
    const hit = await cache.match(new URL(path, self.location.origin).href);
    if (hit && (!best || (hit.headers.get("X-Kept-At") || "") > (best.headers.get("X-Kept-At") || ""))) best = hit;
  }
  return best;
}

async function page(request) {
  try {
    const response = await fetch(request);
    const type = response.headers.get("Content-Type") || "";
    if (response.ok && type.startsWith("text/html")) await keep(request, response);
    return response;
  } catch (error) {
    return offlineCopy(request);
  }
}

async function staticFile(request) {
  const cache = await caches.open(STATIC);
  const hit = await cache.match(request, { ignoreSearch: false });
  if (hit) return hit;
  const response = await fetch(request);
  if (response.ok) await cache.put(request, response.clone());
  return response;
}

async function post(request, path) {
  // Signing in or out: the pages kept belong to the person signed in until now.
  if (path === ROOT + "/login" || path === ROOT + "/logout") await caches.delete(PAGES);
  try {
    return await fetch(request);
  } catch (error) {
    return (await caches.match(OFFLINE)) || new Response("Offline", { status: 503 });
  }
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (request.method !== "GET") {
    // A form sent with no connection: say so plainly instead of the browser's error page.
    // The drafts' own syncing uses fetch() and is left alone.
    if (request.mode === "navigate") event.respondWith(post(request, url.pathname));
    return;
  }
  if (url.pathname.startsWith(ROOT + "/static/")) event.respondWith(staticFile(request));
  else if (request.mode === "navigate") event.respondWith(page(request));
});

// pwa.js asks for pages worth having offline (the page first shown, the new-request form).
self.addEventListener("message", (event) => {
  const data = event.data || {};
  if (data.type !== "keep" || !Array.isArray(data.urls)) return;
  event.waitUntil((async () => {
    const cache = await caches.open(PAGES);
    for (const href of data.urls.slice(0, 5)) {
      const url = new URL(href, self.location.origin);
      if (url.origin !== self.location.origin) continue;
      if (data.onlyMissing && await cache.match(url.href)) continue;
      try {
        const response = await fetch(url.href, { credentials: "same-origin" });
        const type = response.headers.get("Content-Type") || "";
        if (response.ok && !response.redirected && type.startsWith("text/html")) {
          await keep(new Request(url.href), response);
        }
      } catch (error) { /* offline: nothing to keep */ }
    }
  })());
});
