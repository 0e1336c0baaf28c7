// The Chat page follows an answer on its way (GET .../agent-runs/{id}/events, server-sent events): the text
// is appended as text (textContent, never HTML), tool activity is listed as it happens, and when the answer
// is saved the turns fragment is fetched, so the server-rendered answer with its checked citations replaces
// the streamed text. Without this script the turns still poll themselves every 2 s (HTMX).
(function () {
  "use strict";
  var box = document.getElementById("chat-stream");
  if (!box || !window.EventSource) return;
  var eventsUrl = box.getAttribute("data-events-url");
  var turnsUrl = box.getAttribute("data-turns-url");
  var text = box.querySelector(".streamed-text");
  var activity = box.querySelector(".stream-activity");
  var streaming = true;
  var round = 0;

  function askForm(enabled) {
    var fieldset = document.getElementById("ask-fieldset");
    var note = document.getElementById("ask-wait");
    if (fieldset) fieldset.disabled = !enabled;
    if (note) note.hidden = enabled;
  }

  // While the stream shows the answer, the HTMX polling of the turns would only repeat "Answering…".
  document.body.addEventListener("htmx:beforeRequest", function (event) {
    if (streaming && event.detail.elt && event.detail.elt.id === "chat-turns") event.preventDefault();
  });
  document.body.addEventListener("htmx:afterSwap", function () {
    var turns = document.getElementById("chat-turns");
    if (turns && !turns.hasAttribute("aria-busy")) { box.hidden = true; askForm(true); }
  });

  function finish() {
    streaming = false;
    source.close();
    if (window.htmx) {
      window.htmx.ajax("GET", turnsUrl, { target: "#chat-turns", swap: "outerHTML" });
    }
  }

  function data(event) {
    try { return JSON.parse(event.data); } catch (e) { return {}; }
  }

  var source = new EventSource(eventsUrl);
  source.addEventListener("delta", function (event) {
    var d = data(event);
    if (d.round !== round) { text.textContent = ""; round = d.round; }
    text.textContent += d.text || "";
    box.hidden = false;
  });
  source.addEventListener("restart", function () { text.textContent = ""; });
  source.addEventListener("activity", function (event) {
    var d = data(event);
    var item = document.createElement("li");
    var records = (d.records || []).join(", ");
    item.textContent = d.tool + (records ? ": " + records : "") + (d.error ? " (failed)" : "");
    activity.appendChild(item);
    box.hidden = false;
  });
  source.addEventListener("answer", finish);
  source.addEventListener("done", finish);
  source.onerror = function () {
    // A refused stream (404, 503) or a dropped connection: leave it to the polling of the turns.
    if (source.readyState === EventSource.CLOSED) streaming = false;
  };
})();
