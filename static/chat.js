// The page's only script of our own. htmx does the talking; this adds what a reader
// expects around it: local times with a line per day, your own messages marked,
// messages on their way ("Sending…", Retry), the newest kept in view, Enter to send,
// the connection's status line and catch-up point, and the invite link's Copy button;
// around changing messages: edit in place, delete and react in the background, focus
// kept; "is typing"; and, while the tab is hidden, unread messages counted in its title.
(() => {
  "use strict";

  // A message sent while connected that the server has not sent back by then is shown
  // as not sent (with Retry: the same nonce, so it can never post twice).
  const CONFIRM_MS = 10_000;
  // "Is typing" goes out at most this often (the server drops anything more frequent).
  const TYPING_EVERY_MS = 2_000;
  const ACTION_ERROR_MS = 6_000;
  const timeFormat = new Intl.DateTimeFormat(undefined, { timeStyle: "short" });
  const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "long" });
  const dayFormat = new Intl.DateTimeFormat(undefined, {
    weekday: "long", day: "numeric", month: "long", year: "numeric",
  });

  const byId = (id) => document.getElementById(id);
  // Loaded at the end of the body: the note for pages without script is already there.
  byId("no-script-note")?.remove();
  let newestSeen = 0; // highest message id shown: anything above it is new
  let earlierFrom = null; // first message's id when "Load earlier messages" was pressed
  let lastQueued = null; // the pending item htmx is handing to the socket right now
  const retries = []; // pending items to send again, in the order Retry was pressed
  let typingSentAt = -Infinity; // when this page last said its user is typing
  let focusedIn = null; // {id, selector}: the control of a message that has the focus
  const roomTitle = document.title;
  const unread = { count: 0, mention: false, first: null }; // while the tab is hidden

  // Times and days ---------------------------------------------------------------

  function dayLabel(moment) {
    const day = new Date(moment).setHours(0, 0, 0, 0);
    const today = new Date().setHours(0, 0, 0, 0);
    const daysAgo = Math.round((today - day) / 86_400_000);
    if (daysAgo === 0) return "Today";
    if (daysAgo === 1) return "Yesterday";
    return dayFormat.format(moment);
  }

  // Server times arrive in UTC: show each as a short time in the reader's zone (the full
  // date in the tooltip), label the first message of each day, and mark the reader's own.
  function decorateMessages() {
    const me = document.body.dataset.me;
    let previousDay = null;
    for (const message of document.querySelectorAll("#messages .message")) {
      if (me && message.dataset.author === me) message.classList.add("mine");
      const time = message.querySelector("time[datetime]");
      const moment = new Date(time ? time.dateTime : NaN);
      if (Number.isNaN(moment.getTime())) continue;
      if (!time.hasAttribute("data-local")) {
        time.title = fullFormat.format(moment);
        time.textContent = timeFormat.format(moment);
        time.dataset.local = "";
      }
      const day = dayLabel(moment);
      if (day === previousDay) delete message.dataset.day;
      else message.dataset.day = day;
      previousDay = day;
    }
  }

  function newestMessageId() {
    let newest = 0;
    for (const message of document.querySelectorAll("#messages .message")) {
      newest = Math.max(newest, Number(message.id.slice("message-".length)) || 0);
    }
    return newest;
  }

  // Keeping the newest in view ----------------------------------------------------------

  function atNewest() {
    const scroller = document.querySelector(".scroller");
    const stream = document.querySelector(".stream");
    if (!scroller || !stream) return true;
    return stream.getBoundingClientRect().bottom - scroller.getBoundingClientRect().bottom < 8;
  }

  function scrollToNewest() {
    const scroller = document.querySelector(".scroller");
    if (scroller) scroller.scrollTop = scroller.scrollHeight; // clamped to the end either way
    const jump = byId("jump-down");
    if (jump) jump.hidden = true;
  }

  // New messages: your own come into view; others' offer "New messages ↓" when you are
  // reading further up. A message carrying a pending nonce has arrived: drop "Sending…".
  function noticeArrivals(records) {
    let mine = false;
    let others = false;
    for (const record of records) {
      for (const node of record.addedNodes) {
        if (!(node instanceof HTMLElement) || !node.matches("#messages > .message")) continue;
        if (node.dataset.nonce) pendingItem(node.dataset.nonce)?.remove();
        const id = Number(node.id.slice("message-".length)) || 0;
        if (id <= newestSeen) continue; // an earlier page, a catch-up overlap or an edit
        newestSeen = id;
        if (node.classList.contains("mine")) mine = true;
        else {
          others = true;
          countUnread(node);
        }
      }
    }
    if (mine) scrollToNewest();
    else if (others && !atNewest()) byId("jump-down")?.removeAttribute("hidden");
  }

  // Messages on their way ---------------------------------------------------------------

  function newNonce() {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
  }

  function renewNonce(form) {
    const field = form?.elements.namedItem("nonce");
    if (field) field.value = newNonce();
  }

  function pendingItem(nonce) {
    return document.querySelector(`#pending [data-nonce="${CSS.escape(nonce)}"]`);
  }

  function setState(item, state, words) {
    item.dataset.state = state;
    clearTimeout(item.confirmTimer);
    const line = item.querySelector(".state");
    line.textContent = words;
    if (state !== "failed") return;
    const retry = document.createElement("button");
    retry.type = "button";
    retry.className = "secondary retry";
    retry.textContent = "Retry";
    line.append(" ", retry);
  }

  function showSending(nonce, text) {
    const list = byId("pending");
    if (!list) return null;
    let item = pendingItem(nonce);
    if (!item) {
      item = document.createElement("li");
      item.className = "pending-message";
      item.dataset.nonce = nonce;
      const body = document.createElement("p");
      body.className = "text";
      const state = document.createElement("p");
      state.className = "state";
      item.append(body, state);
      list.append(item);
    }
    item.querySelector(".text").textContent = text;
    setState(item, "sending", "Sending…");
    return item;
  }

  function failPending(item, reason) {
    if (item?.isConnected && item.dataset.state !== "failed") {
      setState(item, "failed", `Not sent: ${reason}`);
    }
  }

  function awaitConfirmation(item) {
    clearTimeout(item.confirmTimer);
    item.confirmTimer = setTimeout(() => {
      // Down again: the reconnect arms a new wait.
      if (connectionState() === "up") failPending(item, "the server did not confirm it.");
    }, CONFIRM_MS);
  }

  function sendingItems() {
    return document.querySelectorAll("#pending [data-state='sending']");
  }

  function retry(item) {
    const form = byId("retry-form");
    if (!form || !item) return;
    retries.push(item);
    form.requestSubmit();
  }

  // A rule error comes back as the form, with the text kept and the nonce it was sent with.
  function noticeReturnedForm() {
    const form = byId("message-form");
    const error = byId("message-error");
    if (!form || !error || form.hasAttribute("data-seen")) return;
    form.dataset.seen = "";
    const nonce = form.elements.namedItem("nonce")?.value;
    if (nonce) failPending(pendingItem(nonce), error.textContent);
  }

  function clearSentForm(form) {
    form.elements.namedItem("message").value = "";
    form.elements.namedItem("message").removeAttribute("aria-invalid");
    form.elements.namedItem("message").removeAttribute("aria-describedby");
    byId("message-error")?.remove();
    renewNonce(form);
  }

  // The message leaves (now, or queued until the socket is back): clear the box, give the
  // form a new nonce and show the message as on its way.
  document.addEventListener("htmx:ws:before:message:outgoing", (event) => {
    if (event.target.id === "typing-form") return;
    const values = event.detail.message.values;
    const again = event.target.id === "retry-form" ? retries.shift() : null;
    if (again) {
      values.message = again.querySelector(".text").textContent;
      values.nonce = again.dataset.nonce;
    }
    const text = String(values.message ?? "").trim();
    if (!text) {
      event.detail.cancelled = true;
      return;
    }
    values.nonce ||= newNonce();
    lastQueued = showSending(values.nonce, text);
    setTimeout(() => { lastQueued = null; });
    if (event.target.id === "message-form") clearSentForm(event.target);
    scrollToNewest();
  });

  document.addEventListener("htmx:ws:after:message:outgoing", (event) => {
    const item = pendingItem(String(event.detail.message.values?.nonce ?? ""));
    if (item) awaitConfirmation(item);
  });

  // Enter sends (or saves an edit), Shift+Enter starts a new line; an empty box sends
  // nothing. Escape closes an edit in place, or an open reaction picker.
  document.addEventListener("keydown", (event) => {
    const box = event.target instanceof Element ? event.target : null;
    if (!box || event.isComposing) return;
    if (event.key === "Escape") {
      closeEditor(box.closest(".message .edit-form"));
      closePicker(box.closest(".react-picker[open]"), true);
      return;
    }
    const editing = box.matches(".message .edit-form textarea");
    if (event.key !== "Enter" || event.shiftKey || !(editing || box.id === "message-input")) return;
    event.preventDefault();
    if (editing || box.value.trim()) box.form?.requestSubmit();
  });

  // Say "I am typing" while there is something in the box. Only while connected: htmx
  // would queue it, and it would be stale by the time it left.
  document.addEventListener("input", (event) => {
    const box = event.target;
    if (box.id !== "message-input" || !box.value.trim() || connectionState() !== "up") return;
    const now = performance.now();
    if (now - typingSentAt < TYPING_EVERY_MS) return;
    typingSentAt = now;
    byId("typing-form")?.requestSubmit();
  });

  // A typing note hides itself (a CSS animation); then it can go.
  document.addEventListener("animationend", (event) => {
    if (event.target instanceof Element && event.target.matches(".typing-note")) event.target.remove();
  });

  // The connection -----------------------------------------------------------------------

  function connectionState() {
    return document.querySelector(".room")?.dataset.connection;
  }

  function showStatus(state, text) {
    const room = document.querySelector(".room");
    if (room) room.dataset.connection = state;
    const status = byId("connection-status");
    if (status) status.textContent = text;
  }

  // Reconnect from the newest message on the page, so the server sends only what was missed.
  document.addEventListener("htmx:ws:close", (event) => {
    const connection = event.detail.connection;
    if (connection?.url) {
      const url = new URL(connection.url);
      url.searchParams.set("after", String(newestMessageId()));
      connection.url = url.toString();
    }
    if (event.detail.reason !== "closed") return;
    if (connection?.config?.reconnectCodes?.includes(event.detail.code)) {
      showStatus("down", "Connection lost. Reconnecting… Messages you send now go out once it is back.");
      return;
    }
    showStatus("closed", "Disconnected. Reload the page to rejoin the room.");
    for (const item of sendingItems()) failPending(item, "disconnected.");
  });

  document.addEventListener("htmx:ws:after:connection", () => {
    showStatus("up", "");
    for (const item of sendingItems()) awaitConfirmation(item);
  });

  document.addEventListener("htmx:ws:error", (event) => {
    if (typeof event.detail.error !== "string") return; // a failed connection attempt
    showStatus(connectionState() ?? "closed", `Not sent: ${event.detail.error}.`);
    failPending(lastQueued, `${event.detail.error}.`);
  });

  // Changing messages ---------------------------------------------------------------------

  function showActionError(text) {
    const line = byId("action-error");
    if (!line) return;
    line.textContent = text;
    line.hidden = false;
    clearTimeout(line.hideTimer);
    line.hideTimer = setTimeout(() => { line.hidden = true; }, ACTION_ERROR_MS);
  }

  // Reactions and Delete submit the page's #message-actions form (it carries the token)
  // to the button's formaction. Posted in the background: the change comes back over the
  // socket, for everyone. (Without script the same buttons post it: 303 back.)
  async function postAction(form, button) {
    if (button.dataset.confirm && !window.confirm(button.dataset.confirm)) return;
    closePicker(button.closest(".react-picker"), false);
    let response;
    try {
      response = await fetch(button.formAction, {
        method: "POST", body: new FormData(form, button), headers: { "HX-Request": "true" },
      });
    } catch {
      showActionError("Not done: the server cannot be reached.");
      return;
    }
    if (!response.ok) showActionError((await response.text()).slice(0, 200) || `Not done (${response.status}).`);
  }

  document.addEventListener("submit", (event) => {
    const form = event.target;
    const button = event.submitter;
    if (form.id === "message-actions" && button?.hasAttribute("formaction")) {
      event.preventDefault();
      postAction(form, button);
    } else if (form.matches?.(".message .edit-form")) {
      form.dataset.saving = ""; // its message comes back changed: the form goes with it
    }
  });

  function closePicker(picker, refocus) {
    if (!picker) return;
    picker.open = false;
    if (refocus) picker.querySelector("summary")?.focus();
  }

  // Editing in place: htmx puts the form after the text (which CSS hides meanwhile).
  function closeEditor(form) {
    const message = form?.isConnected ? form.closest(".message") : null;
    if (!message) return;
    form.remove();
    message.querySelector(".edit")?.focus();
  }

  // htmx focuses a new edit form's box (autofocus): put the caret after the text.
  document.addEventListener("htmx:after:swap", () => {
    const box = document.querySelector(".message .edit-form textarea[autofocus]:not([data-placed])");
    if (!box) return;
    box.dataset.placed = "";
    box.focus();
    box.setSelectionRange(box.value.length, box.value.length);
  });

  // Saved (204): close the form, unless the changed message has already replaced it.
  document.addEventListener("htmx:after:request", (event) => {
    const form = event.target;
    if (form?.matches?.(".message .edit-form") && event.detail?.ctx?.response?.status === 204) {
      closeEditor(form);
    }
  });

  // A message that changes is replaced whole. Keep what the reader was doing in it: an
  // edit they had not saved moves into the new one, and the focus goes back where it was
  // (the same reaction, the Edit link after a save, else the message itself).
  function focusKey(element) {
    if (element.closest(".edit-form")) return "textarea, .edit"; // the form, if it moved with it
    if (element.matches("button[value]")) return `.reaction[value="${CSS.escape(element.value)}"]`;
    for (const selector of [".edit", ".delete", ".react", "summary"]) {
      if (element.matches(selector)) return selector;
    }
    return null;
  }

  document.addEventListener("focusin", (event) => {
    const message = event.target instanceof Element ? event.target.closest("#messages .message") : null;
    focusedIn = message ? { id: message.id, selector: focusKey(event.target) } : null;
  });

  function keepEditing(old, replacement) {
    const form = old.querySelector(".edit-form");
    const text = replacement.querySelector(".text:not(.deleted-note)");
    if (!form || form.dataset.saving !== undefined || !text) return;
    text.after(form);
  }

  function restoreFocus(message) {
    if (focusedIn?.id !== message.id) return;
    if (document.activeElement && document.activeElement !== document.body) return;
    const control = (focusedIn.selector && message.querySelector(focusedIn.selector))
      ?? message.querySelector(".react");
    if (control) {
      control.focus();
      return;
    }
    message.tabIndex = -1;
    message.focus();
  }

  function noticeReplacements(records) {
    const replaced = new Map();
    for (const record of records) {
      for (const node of record.removedNodes) {
        if (node instanceof HTMLElement && node.matches(".message")) replaced.set(node.id, node);
      }
    }
    for (const [id, old] of replaced) {
      const replacement = byId(id);
      if (!replacement || replacement === old) continue;
      keepEditing(old, replacement);
      restoreFocus(replacement);
    }
  }

  // Unread, while the tab is hidden ------------------------------------------------------

  // The title counts what arrived: "(3) Chat Room: ABCD", or "(3 @) Chat Room: ABCD" when
  // one of them mentions the reader. Back on the tab, a "New messages" line marks the first.
  function countUnread(message) {
    if (!document.hidden) return;
    const me = document.body.dataset.me;
    unread.count += 1;
    unread.first ??= message.id;
    if (me && (message.dataset.mentions ?? "").split(" ").includes(me)) unread.mention = true;
    document.title = `(${unread.count}${unread.mention ? " @" : ""}) ${roomTitle}`;
  }

  function markUnread(message) {
    document.querySelector("#messages .unread-line")?.remove();
    if (!message) return;
    const line = document.createElement("p");
    line.className = "unread-line";
    line.textContent = "New messages";
    message.before(line);
    const scroller = document.querySelector(".scroller");
    if (scroller && line.getBoundingClientRect().top < scroller.getBoundingClientRect().top) {
      line.scrollIntoView({ block: "start" }); // the first unread one, and read on from there
      byId("jump-down")?.removeAttribute("hidden");
    }
  }

  document.addEventListener("visibilitychange", () => {
    if (document.hidden) return;
    document.title = roomTitle;
    if (unread.first) markUnread(byId(unread.first));
    Object.assign(unread, { count: 0, mention: false, first: null });
  });

  // The rest of the page ---------------------------------------------------------------

  async function copyField(button) {
    const field = byId(button.dataset.copies);
    if (!field) return;
    try {
      await navigator.clipboard.writeText(field.value);
    } catch {
      field.select(); // the clipboard API needs a secure context; this does not
      document.execCommand("copy");
    }
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = "Copy"; }, 2000);
  }

  document.addEventListener("click", (event) => {
    const target = event.target instanceof Element ? event.target : null;
    if (!target) return;
    if (target.closest("#earlier a")) earlierFrom = document.querySelector("#messages .message")?.id;
    const copy = target.closest("[data-copies]");
    if (copy) copyField(copy);
    const cancel = target.closest(".message .edit-form .cancel");
    if (cancel) {
      event.preventDefault();
      closeEditor(cancel.closest("form"));
    }
    for (const picker of document.querySelectorAll(".react-picker[open]")) {
      if (!picker.contains(target)) closePicker(picker, false);
    }
    const again = target.closest("#pending .retry");
    if (again) retry(again.closest("li"));
    if (target.closest("#jump-down")) {
      scrollToNewest();
      document.querySelector(".scroller")?.focus();
    }
  });

  // After "Load earlier messages", focus the first message it brought (not the body).
  document.addEventListener("htmx:after:swap", () => {
    if (earlierFrom === null) return;
    const first = document.querySelector("#messages .message");
    if (!first || first.id === earlierFrom) return;
    earlierFrom = null;
    first.tabIndex = -1;
    first.focus();
  });

  document.addEventListener("DOMContentLoaded", () => {
    newestSeen = newestMessageId();
    const form = byId("message-form");
    if (form && !form.elements.namedItem("nonce")?.value) renewNonce(form);
    for (const button of document.querySelectorAll("[data-copies]")) button.hidden = false;
    document.querySelector(".scroller")?.addEventListener("scroll", () => {
      if (atNewest()) byId("jump-down")?.setAttribute("hidden", "");
    });
    decorateMessages();
    new MutationObserver((records) => {
      decorateMessages();
      noticeReplacements(records);
      noticeArrivals(records);
      noticeReturnedForm();
    }).observe(document.body, { childList: true, subtree: true });
  });
})();
