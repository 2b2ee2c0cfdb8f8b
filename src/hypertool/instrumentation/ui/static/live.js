// Refresh the page by itself when new spans reach the store (a workflow is running).
// Asks /api/version every few seconds and reloads only when the number changed; waits while
// someone is typing in a field; keeps the folded texts that were open. No polling while the tab
// is hidden.
(function () {
  "use strict";
  var body = document.body;
  var url = body.getAttribute("data-version-url");
  var seen = body.getAttribute("data-version");
  if (!url || seen === null) { return; }
  var PERIOD_MS = 3000;
  var KEY = "hypertool-open:" + window.location.pathname + window.location.search;
  var badge = document.querySelector(".live");

  function details() { return document.querySelectorAll("details"); }

  // Unfold again what was open before the reload.
  try {
    var open = JSON.parse(window.sessionStorage.getItem(KEY) || "[]");
    window.sessionStorage.removeItem(KEY);
    var all = details();
    open.forEach(function (index) { if (all[index]) { all[index].open = true; } });
  } catch (e) { /* storage unavailable: nothing to restore */ }

  function reload() {
    try {
      var open = [];
      details().forEach(function (element, index) { if (element.open) { open.push(index); } });
      window.sessionStorage.setItem(KEY, JSON.stringify(open));
    } catch (e) { /* storage unavailable: reload anyway */ }
    window.location.reload();
  }

  function typing() {
    var active = document.activeElement;
    return active && /^(INPUT|SELECT|TEXTAREA)$/.test(active.tagName);
  }

  function check() {
    if (document.hidden || typing()) { return; }
    fetch(url, { cache: "no-store", credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (answer) {
        if (answer && String(answer.version) !== seen && !typing()) {
          if (badge) { badge.hidden = false; }
          reload();
        }
      })
      .catch(function () { /* the server stopped: keep the page as it is */ });
  }
  window.setInterval(check, PERIOD_MS);
})();
