// whathappens demo site: the parser-blocking script. It sits in <head> without async or
// defer, so the HTML parser stops until it has been fetched and run (and it runs only once
// the stylesheet above it has arrived). It asks for /api/banner at once; the banner is
// inserted at the top of the content when the answer comes, which moves what was painted.
(function () {
  "use strict";
  document.documentElement.className = "js";
  function insert(text) {
    var main = document.getElementById("content");
    if (!main) {
      return;
    }
    var banner = document.createElement("p");
    banner.className = "banner";
    banner.id = "late-banner";
    banner.textContent = text;
    main.insertBefore(banner, main.firstChild);
  }
  fetch("/api/banner", { cache: "no-store" })
    .then(function (response) { return response.json(); })
    .then(function (data) {
      if (document.readyState === "loading") {
        document.addEventListener("DOMContentLoaded", function () { insert(data.text); });
      } else {
        insert(data.text);
      }
    })
    .catch(function () { /* no banner: nothing moves */ });
})();
