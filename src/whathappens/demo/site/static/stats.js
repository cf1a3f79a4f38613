// whathappens demo site: the async script. Fetched in parallel with the rest, it runs
// whenever it arrives and blocks neither the parser nor the first paint.
function whathappensStats() {
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
      "The async script ran. This browser saw DNS " +
      ms(nav.domainLookupEnd - nav.domainLookupStart) +
      ", connect " + ms(nav.connectEnd - nav.connectStart) +
      ", first byte " + ms(nav.responseStart - nav.requestStart) +
      ", and " + performance.getEntriesByType("resource").length +
      " files so far, on " + (nav.nextHopProtocol || "an unknown protocol") + ".";
  } else {
    status.textContent = "The async script ran.";
  }
}
// It may arrive before the parser has reached the paragraph it fills in.
if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", whathappensStats);
} else {
  whathappensStats();
}
