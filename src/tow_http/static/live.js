// Live updates (GET /api/organisations/{org}/live, server-sent events; README "Live updates"). On a record's
// page: "Changed by Ada — Reload" when someone else saves it, "Ada commented — Reload" for a new comment. On
// every page: the Inbox and Notifications counts in the navigation are refetched when the server nudges (a memory
// diff or snapshot awaiting your review came or went, a notification for you arrived). Everything is written as text (textContent), never as HTML. Without this
// script the pages are plain pages: the count is fresh on every load.
(function () {
  "use strict";
  var notice = document.getElementById("live-notice");
  if (!notice || !window.EventSource || !window.fetch) return;
  var records = (notice.getAttribute("data-records") || "").trim();
  var url = notice.getAttribute("data-live-url");
  if (records) url += "?record=" + encodeURIComponent(records);
  var countUrl = notice.getAttribute("data-count-url");
  var notificationsUrl = notice.getAttribute("data-notifications-url");

  function data(event) {
    try { return JSON.parse(event.data); } catch (e) { return {}; }
  }

  function tell(message) {
    notice.textContent = message + " — ";
    var reload = document.createElement("a");
    reload.href = window.location.pathname + window.location.search;
    reload.textContent = "Reload";
    notice.appendChild(reload);
    notice.hidden = false;
  }

  function showCount(total, linkId, label) {
    var link = document.getElementById(linkId);
    if (!link) return;
    var badge = link.querySelector(".count");
    if (!total) { if (badge) badge.remove(); return; }
    if (!badge) {
      badge = document.createElement("span");
      badge.className = "count";
      link.appendChild(document.createTextNode(" "));
      link.appendChild(badge);
    }
    badge.textContent = String(total);
    badge.setAttribute("aria-label", total + " " + label);
  }

  function refetch(from, show) {
    fetch(from, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (answer) { if (answer) show(answer); })
      .catch(function () { /* the next page load shows the count */ });
  }

  function refetchCount() {
    refetch(countUrl, function (counts) { showCount(counts.total, "nav-inbox", "waiting"); });
    if (notificationsUrl) {
      refetch(notificationsUrl, function (listing) { showCount(listing.unread, "nav-notifications", "unread"); });
    }
  }

  var source = new EventSource(url);
  source.addEventListener("record_changed", function (event) {
    var d = data(event);
    tell("Changed by " + (d.by || "someone") + " (version " + d.version + ")");
  });
  source.addEventListener("comment_added", function (event) {
    tell((data(event).by || "Someone") + " commented");
  });
  source.addEventListener("nudge", refetchCount);
  source.addEventListener("resync", function () { refetchCount(); tell("This page may be out of date"); });
  source.onerror = function () {
    // A refused stream (401, 404, 429) stays closed; a dropped connection is retried by the browser.
    if (source.readyState === EventSource.CLOSED) source.close();
  };
  window.addEventListener("pagehide", function () { source.close(); });
})();
