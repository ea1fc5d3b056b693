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
    u.searchParams.delete("flash");
    return u.pathname + u.search;
  }

  var refreshing = false;
  // refresh swaps each live part for the server's fresh render. A table
  // where the user has ticked rows waits (the ticks would be lost).
  function refresh() {
    if (refreshing || !window.htmx) return;
    document.querySelectorAll("[data-live]").forEach(function (el) {
      if (el.hasAttribute("data-live-unless-checked") && el.querySelector("input[type=checkbox]:checked")) return;
      refreshing = true;
      htmx.ajax("GET", fragmentURL(), { target: "#" + el.id, swap: "outerHTML" }).then(function () {
        refreshing = false;
      }, function () {
        refreshing = false;
      });
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
    var url = document.body.dataset.liveStream;
    if (!url || !document.querySelector("[data-live]") || !window.EventSource) {
      status("");
      return;
    }
    var es = new EventSource(url);
    es.addEventListener("open", function () { status("live updates: on"); });
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
