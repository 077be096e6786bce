/* The in-page confirmation of an irreversible action (console/web/confirm.py, templates/web/_confirm.html).
   "取消" removes the box from its slot and gives the focus back to the button that asked: nothing was
   sent, the page is as it was. Without a slot (the confirmation page of its own) the link goes back.
   A confirmed request whose answer went elsewhere (the "already done" notice) closes its box too. */
(function () {
  "use strict";

  function close(slot) {
    slot.innerHTML = "";
    var opener = slot.previousElementSibling;
    var button = opener && opener.querySelector ? opener.querySelector("button") : null;
    if (button) { button.focus(); }
  }

  document.addEventListener("click", function (evt) {
    var cancel = evt.target.closest ? evt.target.closest("[data-confirm-cancel]") : null;
    if (!cancel) { return; }
    var slot = cancel.closest("[data-confirm-slot]");
    if (!slot) { return; }
    evt.preventDefault();
    close(slot);
  });

  document.addEventListener("htmx:afterRequest", function (evt) {
    var elt = evt.detail && evt.detail.elt;
    if (!elt || !elt.closest || !evt.detail.successful) { return; }
    var box = elt.closest("[data-confirm]");
    var slot = box && box.closest("[data-confirm-slot]");
    if (slot && document.body.contains(slot) && elt.tagName === "FORM") { close(slot); }
  });
})();
