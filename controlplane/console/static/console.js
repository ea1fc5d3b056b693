// osim console: local times, and live updates from /ui/stream.
// Without JavaScript every page still renders whole on the server.
(function () {
  "use strict";

  // Timestamps arrive as UTC text with an RFC 3339 datetime; show them in
  // the browser's zone and keep UTC on hover (the title).
  function localTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (t) {
      if (t.dataset.local) return;
      var d = new Date(t.getAttribute("datetime"));
      if (!isNaN(d)) {
        t.textContent = d.toLocaleString();
        t.dataset.local = "1";
      }
    });
  }

  function fragmentURL() {
    var u = new URL(window.location.href);
    u.searchParams.set("fragment", "1");
    return u.pathname + u.search;
  }

  // refresh swaps each live part for the server's fresh render. One
  // refresh runs at a time; a change that arrives meanwhile runs one more
  // after it, so the last change is never lost. A table where the user
  // has ticked rows waits (the ticks would be lost).
  var inflight = false, again = false, started = 0;
  // The user is acting on the page (a button pressed, a key typed, a
  // form field focused): a swap now could take the button from under the
  // click. Refreshes wait until a moment after.
  var busyUntil = 0, deferred = null;
  function busy() {
    var a = document.activeElement;
    return Date.now() < busyUntil || (a && a.form && a.closest && a.closest("[data-live]"));
  }
  ["pointerdown", "keydown"].forEach(function (ev) {
    document.addEventListener(ev, function () { busyUntil = Date.now() + 1500; }, true);
  });
  function refresh() {
    if (!window.htmx) return;
    if (busy()) {
      if (!deferred) deferred = setTimeout(function () { deferred = null; refresh(); }, 1600);
      return;
    }
    if (inflight && Date.now() - started < 15000) {
      again = true;
      return;
    }
    var parts = Array.prototype.filter.call(document.querySelectorAll("[data-live]"), function (el) {
      return !(el.hasAttribute("data-live-unless-checked") && el.querySelector("input[type=checkbox]:checked"));
    });
    if (!parts.length) return;
    inflight = true;
    again = false;
    started = Date.now();
    var url = fragmentURL();
    Promise.allSettled(parts.map(function (el) {
      return htmx.ajax("GET", url, { target: "#" + el.id, swap: "outerHTML" });
    })).then(function () {
      inflight = false;
      if (again) refresh();
    });
  }

  function status(text) {
    var s = document.getElementById("live-status");
    if (s) s.textContent = text;
  }

  document.addEventListener("DOMContentLoaded", function () {
    localTimes(document);
    document.body.addEventListener("htmx:afterSwap", function (e) {
      localTimes(document);
    });
    // A refresh already on its way when the user pressed a button must
    // not land under the click either: its swap is dropped and the
    // refresh runs again once the user is done.
    document.body.addEventListener("htmx:beforeSwap", function (e) {
      var t = e.detail.target;
      if (busy() && t && t.hasAttribute && t.hasAttribute("data-live")) {
        e.detail.shouldSwap = false;
        if (!deferred) deferred = setTimeout(function () { deferred = null; refresh(); }, 1600);
      }
    });
    var url = document.body.dataset.liveStream;
    if (!url || !document.querySelector("[data-live]") || !window.EventSource) {
      status("");
      return;
    }
    var es = new EventSource(url);
    // On (re)connect, refresh once: changes made between the page's
    // render and the stream's start would otherwise be missed.
    es.addEventListener("open", function () {
      status("live updates: on");
      refresh();
    });
    es.addEventListener("error", function () { status("live updates: reconnecting"); });
    es.addEventListener("gone", function () {
      es.close();
      status("live updates: off (signed out?)");
    });
    es.addEventListener("change", function (e) {
      document.body.dataset.lastChange = e.lastEventId;
      refresh();
    });
    // Parts that change without events (boot server health) refresh on a
    // slow timer too.
    var every = document.querySelector("[data-live-every]");
    if (every) {
      setInterval(refresh, Math.max(10, parseInt(every.dataset.liveEvery, 10)) * 1000);
    }
  });
})();
