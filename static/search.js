// The search box's few lines: Escape or "Close search" puts the live room back in place
// of the results, and a message opened in context is scrolled into view. htmx does the
// searching (hx-get on the form in the room header).
(() => {
  "use strict";

  function closeSearch() {
    const panel = document.getElementById("search-results");
    const input = document.getElementById("search-input");
    const open = panel && panel.childElementCount > 0;
    if (!open && !(input && input.value)) return false;
    if (panel) panel.replaceChildren();
    if (input && input.value) {
      // htmx sends only when the text changed: let it see the box emptied, so typing the
      // same words again searches again (its empty search answers nothing).
      input.value = "";
      input.dispatchEvent(new Event("input", { bubbles: true }));
    }
    const messageInput = document.getElementById("message-input");
    if (messageInput) messageInput.focus();
    return true;
  }

  function inRoom(element) {
    return Boolean(element && element.closest(".room"));
  }

  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape" || !inRoom(document.getElementById("search-results"))) return;
    if (closeSearch()) event.preventDefault();
  });

  // Without JavaScript "Close search" is a link to the live room; here the room is live
  // underneath already, so just take the results away.
  document.addEventListener("click", (event) => {
    const close = event.target instanceof Element && event.target.closest(".search-close");
    if (close && inRoom(close) && closeSearch()) event.preventDefault();
  });

  document.addEventListener("DOMContentLoaded", () => {
    const current = document.querySelector("#messages [aria-current]");
    if (current) current.scrollIntoView({ block: "center" });
  });
})();
