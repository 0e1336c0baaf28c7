// Live updates (GET /api/organisations/{org}/live, server-sent events; README "Live updates"). On a record's
// page: "Changed by Ada — Reload" when someone else saves it. On a ticket's page, a comment someone else adds
// (or edits) appears in the list: the page fetches that one comment as the server renders it for the list
// (GET /o/{org}/r/{id}/comments/{comment}, read as you: a comment you may not read is a 404 and nothing is shown)
// and puts it in place once — appended when new, replaced when already listed — and the comments' status line
// says who commented. On every page: the Inbox and Notifications counts in the navigation are refetched when the
// server nudges (a memory diff or snapshot awaiting your review came or went, a notification for you arrived).
// Messages are written as text (textContent); the only HTML taken in is the server's own rendering of one
// comment, parsed inertly (DOMParser runs no script) and only its <article class="comment">. Whenever the stream
// is down (refused by the server or a proxy, or a browser without EventSource) the counts are polled once a
// minute while the page is visible instead, until the stream is back. Without this script the pages are plain
// pages: counts and comments are fresh on every load.
(function () {
  "use strict";
  var notice = document.getElementById("live-notice");
  if (!notice || !window.fetch) return;
  var POLL_MS = 60000;
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

  var polling = null;
  function poll(on) {  // the counts, while the stream cannot tell us (README "Live updates")
    if (on && !polling) {
      polling = window.setInterval(function () { if (!document.hidden) refetchCount(); }, POLL_MS);
    } else if (!on && polling) {
      window.clearInterval(polling);
      polling = null;
    }
  }
  if (!window.EventSource) { poll(true); return; }

  var source = new EventSource(url);
  source.addEventListener("record_changed", function (event) {
    var d = data(event);
    tell("Changed by " + (d.by || "someone") + " (version " + d.version + ")");
  });
  var comments = document.getElementById("comment-list");
  var commentsStatus = document.getElementById("comments-status");

  function placeComment(html, id) {
    var article = new DOMParser().parseFromString(html, "text/html").getElementById("comment-" + id);
    if (!article || !article.classList.contains("comment")) return false;
    article = document.importNode(article, true);
    var shown = document.getElementById("comment-" + id);
    if (shown) {
      shown.replaceWith(article);  // edited, or the same event heard twice: never listed twice
    } else {
      var empty = comments.querySelector(".empty");
      if (empty) empty.remove();
      comments.appendChild(article);
    }
    if (window.htmx) window.htmx.process(article);  // its forms (your own comment's) post as the page's do
    return true;
  }

  function showComment(d) {
    var id = Number(d.comment_id);
    if (!comments || !(id > 0) || records.split(/\s+/).indexOf(d.record) < 0) {
      tell((d.by || "Someone") + " commented");  // a page that lists no comments of that record
      return;
    }
    var project = new URLSearchParams(window.location.search).get("project");
    var from = comments.getAttribute("data-comment-url") + id + (project ? "?project=" + encodeURIComponent(project) : "");
    fetch(from, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (response.status === 404) return null;  // deleted since, or not yours to read: nothing to show
        if (!response.ok) throw new Error("the server answered " + response.status);
        return response.text();
      })
      .then(function (html) {
        if (html === null) return;
        if (!placeComment(html, id)) throw new Error("not a comment");
        if (commentsStatus) commentsStatus.textContent = "New comment from " + (d.by || "someone");
      })
      .catch(function () { tell((d.by || "Someone") + " commented"); });  // reloading shows it
  }

  source.addEventListener("comment_added", function (event) { showComment(data(event)); });
  source.addEventListener("nudge", refetchCount);
  source.addEventListener("resync", function () { refetchCount(); tell("This page may be out of date"); });
  source.onopen = function () { poll(false); };
  source.onerror = function () {
    // A refused stream (401, 404, 429, 503) stays closed; a dropped connection is retried by the browser.
    // Either way the counts are polled until it is open again.
    if (source.readyState === EventSource.CLOSED) source.close();
    poll(true);
  };
  window.addEventListener("pagehide", function () { source.close(); });
})();
