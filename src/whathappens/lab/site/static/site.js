// The lab site's one script, loaded with "defer" from /static/ through the edge cache:
// it runs after the HTML is parsed and fills the footer with the Server-Timing entries the
// app node sent for this page (what its Django, database and Redis spent).
(function () {
  "use strict";
  var out = document.getElementById("server-timing");
  var nav = performance.getEntriesByType ? performance.getEntriesByType("navigation")[0] : null;
  if (!out || !nav || !nav.serverTiming || !nav.serverTiming.length) {
    return;
  }
  out.textContent = "server timing: " + nav.serverTiming.map(function (t) {
    return t.name + " " + t.duration.toFixed(1) + " ms" + (t.description ? " (" + t.description + ")" : "");
  }).join(", ");
})();
