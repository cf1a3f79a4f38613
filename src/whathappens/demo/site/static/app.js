// whathappens demo site: a small script, deferred so it does not block the first paint.
(function () {
  "use strict";
  var status = document.getElementById("script-status");
  if (!status) {
    return;
  }
  var nav = window.performance && performance.getEntriesByType
    ? performance.getEntriesByType("navigation")[0]
    : null;
  if (nav) {
    var ms = function (v) { return v.toFixed(1) + " ms"; };
    status.textContent =
      "The script ran. This browser saw DNS " + ms(nav.domainLookupEnd - nav.domainLookupStart) +
      ", connect " + ms(nav.connectEnd - nav.connectStart) +
      ", first byte " + ms(nav.responseStart - nav.requestStart) + ".";
  } else {
    status.textContent = "The script ran.";
  }
})();
