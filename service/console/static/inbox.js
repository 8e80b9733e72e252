/* The inbox updates by itself: every few seconds, while the tab is visible, ask the server for
   the inbox's version; when it changed (or once a minute, to refresh "open for" times) fetch
   the list as the page renders it and swap it in. Failures are ignored: the page works without
   this script. A session that ended (a redirect to sign in) reloads the page, so an
   unattended screen stops showing patients. */
(function () {
  "use strict";
  var EVERY = 2500; /* ms: a new item shows within 5 s; each poll costs ~20 ms of database */
  var REFRESH = 60000; /* ms: redraw now and then so that waiting times stay right */
  var HEADERS = { "X-Console-Poll": "1" };
  var drawnAt = Date.now();
  var busy = false;

  function list() { return document.getElementById("inbox-items"); }

  function get(url) {
    return fetch(url, { credentials: "same-origin", redirect: "manual", headers: HEADERS })
      .then(function (response) {
        if (response.type === "opaqueredirect") {
          window.location.reload();
          throw new Error("signed out");
        }
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response;
      });
  }

  function announce() {
    var live = document.getElementById("inbox-live");
    var count = document.getElementById("inbox-count");
    if (live && count) { live.textContent = "Inbox updated. " + count.textContent; }
  }

  function redraw(changed) {
    return get("/console/inbox/items").then(function (r) { return r.text(); }).then(function (html) {
      var old = list();
      var parsed = new DOMParser().parseFromString(html, "text/html").getElementById("inbox-items");
      if (!old || !parsed) { return; }
      old.replaceWith(document.importNode(parsed, true));
      drawnAt = Date.now();
      if (changed) { announce(); }
    });
  }

  function poll() {
    var current = list();
    if (busy || document.hidden || !current) { return; }
    busy = true;
    get("/console/inbox/version")
      .then(function (r) { return r.json(); })
      .then(function (body) {
        var changed = body.version !== current.getAttribute("data-version");
        if (changed || Date.now() - drawnAt > REFRESH) { return redraw(changed); }
      })
      .catch(function () { /* the next poll tries again */ })
      .then(function () { busy = false; });
  }

  if (!window.fetch || !window.DOMParser || !list()) { return; }
  window.setInterval(poll, EVERY);
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) { poll(); }
  });
}());
