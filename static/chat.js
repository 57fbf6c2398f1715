// The page's only script of our own: local times, the live connection's catch-up point
// and its status line. htmx does everything else.
(() => {
  "use strict";

  const timeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

  // Server times arrive in UTC; show each in the reader's zone, keeping UTC as a tooltip.
  function localizeTimes() {
    for (const time of document.querySelectorAll("time[datetime]:not([data-local])")) {
      const moment = new Date(time.dateTime);
      if (Number.isNaN(moment.getTime())) continue;
      time.title = time.textContent;
      time.textContent = timeFormat.format(moment);
      time.dataset.local = "";
    }
  }

  function newestMessageId() {
    let newest = 0;
    for (const message of document.querySelectorAll("#messages [id^='message-']")) {
      newest = Math.max(newest, Number(message.id.slice("message-".length)) || 0);
    }
    return newest;
  }

  function showStatus(state, text) {
    const room = document.querySelector(".room");
    if (room) room.dataset.connection = state;
    const status = document.getElementById("connection-status");
    if (status) status.textContent = text;
  }

  document.addEventListener("DOMContentLoaded", () => {
    localizeTimes();
    new MutationObserver(localizeTimes).observe(document.body, { childList: true, subtree: true });
  });

  // Reconnect from the newest message on the page, so the server sends only what was missed.
  document.addEventListener("htmx:ws:close", (event) => {
    const connection = event.detail.connection;
    if (connection && connection.url) {
      const url = new URL(connection.url);
      url.searchParams.set("after", String(newestMessageId()));
      connection.url = url.toString();
    }
    if (event.detail.reason !== "closed") return;
    if (connection.config.reconnectCodes.includes(event.detail.code)) {
      showStatus("down", "Connection lost. Reconnecting… Messages you send now go out once it is back.");
    } else {
      showStatus("closed", "Disconnected. Reload the page to rejoin the room.");
    }
  });

  document.addEventListener("htmx:ws:after:connection", (event) => {
    showStatus("up", "");
  });

  document.addEventListener("htmx:ws:error", (event) => {
    if (typeof event.detail.error === "string") {
      showStatus("down", `Not sent: ${event.detail.error}.`);
    }
  });
})();
