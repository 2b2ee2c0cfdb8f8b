// Refresh the page by itself when new spans reach the store (a workflow is running).
// Asks /api/version every few seconds; reloads only when the number changed. No polling while
// the tab is hidden.
(function () {
  "use strict";
  var body = document.body;
  var url = body.getAttribute("data-version-url");
  var seen = body.getAttribute("data-version");
  if (!url || seen === null) { return; }
  var PERIOD_MS = 3000;
  var badge = document.querySelector(".live");
  function check() {
    if (document.hidden) { return; }
    fetch(url, { cache: "no-store", credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (answer) {
        if (answer && String(answer.version) !== seen) {
          if (badge) { badge.hidden = false; }
          window.location.reload();
        }
      })
      .catch(function () { /* the server stopped: keep the page as it is */ });
  }
  window.setInterval(check, PERIOD_MS);
})();
