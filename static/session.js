/* An expired CSRF token or session never loses input (console/web/expiry.py).
   htmx: the server answers with a notice (HX-Retarget #session-notice, X-Billpost-Resubmit: 1);
   we swap it although its status is 400/401, remember the request, and "Send again" repeats it
   from the same element (its fields still hold the input) with a fresh token.
   Plain forms: the re-post page's button fetches a fresh token first (the user may have signed in
   again in another tab, which made the page's token stale). */
(function () {
  "use strict";
  var pending = null;

  document.addEventListener("htmx:beforeSwap", function (evt) {
    var xhr = evt.detail.xhr;
    if (xhr && xhr.getResponseHeader("X-Billpost-Resubmit")) {
      var config = evt.detail.requestConfig;
      pending = { verb: config.verb, path: config.path, elt: config.elt, target: config.target };
      evt.detail.shouldSwap = true;
      evt.detail.isError = false;
    }
  });

  function useToken(token) {
    document.body.setAttribute("hx-headers", JSON.stringify({ "X-CSRFToken": token }));
    document.querySelectorAll('input[name="csrf_token"]').forEach(function (input) { input.value = token; });
  }

  document.addEventListener("click", function (evt) {
    var button = evt.target.closest ? evt.target.closest("[data-resubmit]") : null;
    if (!button) { return; }
    evt.preventDefault();
    var notice = button.closest("[data-session-notice]");
    var tokenUrl = document.body.getAttribute("data-token-url") || "/session/token";
    fetch(tokenUrl, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (response) { return response.json(); })
      .then(function (answer) {
        var hint = notice && notice.querySelector("[data-still-signed-out]");
        if (!answer.signed_in && button.hasAttribute("data-needs-sign-in")) {
          if (hint) { hint.hidden = false; }
          return;
        }
        useToken(answer.token);
        if (button.getAttribute("data-resubmit") === "form") {
          button.form.submit();
          return;
        }
        if (pending && document.body.contains(pending.elt)) {
          var request = pending;
          pending = null;
          var holder = document.querySelector("#session-notice");
          if (holder) { holder.innerHTML = ""; }
          htmx.ajax(request.verb, request.path, { source: request.elt, target: request.target });
        }
      });
  });
})();
