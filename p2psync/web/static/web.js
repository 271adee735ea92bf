// p2psync web interface: the little behaviour htmx does not give (no inline scripts: CSP).
(function () {
  "use strict";
  var retryDelay = 1000;

  function banner(text) {
    var el = document.getElementById("banner");
    if (!el) return;
    el.textContent = text || "";
    el.hidden = !text;
  }

  function isLive(evt) {
    return evt.detail && evt.detail.elt && evt.detail.elt.id === "live";
  }

  // The live poll failed (daemon stopped, network gone): say so, then try again with backoff.
  function liveFailed(evt, text) {
    if (!isLive(evt)) return;
    banner(text);
    var elt = evt.detail.elt;
    setTimeout(function () { htmx.trigger(elt, "retry"); }, retryDelay);
    retryDelay = Math.min(retryDelay * 2, 15000);
  }

  document.addEventListener("htmx:sendError", function (evt) {
    liveFailed(evt, "The p2psync daemon is not answering. Retrying…");
    if (!isLive(evt)) banner("The p2psync daemon is not answering: the last action was not sent.");
  });
  document.addEventListener("htmx:responseError", function (evt) {
    var status = evt.detail.xhr ? evt.detail.xhr.status : 0;
    if (status >= 500) liveFailed(evt, "The daemon answered with an error (" + status + "). Retrying…");
  });
  document.addEventListener("htmx:afterRequest", function (evt) {
    if (evt.detail.successful) {
      if (isLive(evt)) { retryDelay = 1000; banner(""); }
      var form = evt.detail.elt;
      if (form && form.tagName === "FORM" && form.hasAttribute("data-reset-on-success")) {
        form.reset();
        var check = form.querySelector(".check");
        if (check) check.textContent = "";
      }
    }
  });
  // A copy button (a share link's URL): its data-copy text goes to the clipboard.
  document.addEventListener("click", function (evt) {
    var button = evt.target.closest ? evt.target.closest("button[data-copy]") : null;
    if (!button) return;
    var text = button.getAttribute("data-copy");
    function said(what) { button.textContent = what; }
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(text).then(
        function () { said("Copied"); },
        function () { said("Copy failed: select the URL"); });
    } else {
      said("Copy failed: select the URL");
    }
  });
})();
