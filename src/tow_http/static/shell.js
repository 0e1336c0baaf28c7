// The shell around every signed-in page (templates/app.html), as progressive enhancement — without it the
// switcher has its Go button, the search box is a plain form, the sidebar stays open and the Docs page has the
// whole tree:
// - the organisation/project switcher applies on change;
// - "/" and Ctrl/Cmd-K focus the global search box (not while typing in a field);
// - the sidebar's doc tree loads a doc's sub-pages when opened (GET /o/{id}/doc-tree/{display id});
// - on narrow screens the sidebar starts as a closed "Menu".
(function () {
  "use strict";
  var NARROW = window.matchMedia("(max-width: 800px)");

  document.querySelectorAll("[data-hidden-with-script]").forEach(function (el) { el.hidden = true; });
  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target.matches && target.matches("select[data-apply-on-change]") && target.form) target.form.requestSubmit();
  });

  function typing(el) {
    return el && (el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName));
  }
  document.addEventListener("keydown", function (event) {
    var box = document.getElementById("global-search");
    if (!box || event.defaultPrevented || event.altKey) return;
    var slash = event.key === "/" && !event.ctrlKey && !event.metaKey;
    var commandK = (event.key === "k" || event.key === "K") && (event.ctrlKey || event.metaKey);
    if (!slash && !commandK) return;
    if (typing(document.activeElement) && document.activeElement !== box) return;
    event.preventDefault();
    if (NARROW.matches) {
      var sidebar = document.getElementById("sidebar");
      if (sidebar && sidebar.contains(box)) sidebar.open = true;
    }
    box.focus();
    box.select();
  });

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("button.twisty");
    if (!button) return;
    var list = document.getElementById(button.getAttribute("aria-controls"));
    if (!list) return;
    var opening = button.getAttribute("aria-expanded") !== "true";
    button.setAttribute("aria-expanded", opening ? "true" : "false");
    list.hidden = !opening;
    if (!opening || list.dataset.loaded) return;
    list.dataset.loaded = "loading";
    list.setAttribute("aria-busy", "true");
    fetch(button.dataset.branchUrl, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) {
        // redirected: the session ended and the answer is the sign-in page, not list items
        if (!response.ok || response.redirected) throw new Error("status " + response.status);
        return response.text();
      })
      .then(function (html) {
        list.innerHTML = html;  // server-rendered, escaped list items
        list.dataset.loaded = "yes";
      })
      .catch(function () {
        delete list.dataset.loaded;
        list.innerHTML = "<li class=\"muted\">Could not load the sub-pages: close and open again to retry.</li>";
      })
      .then(function () { list.removeAttribute("aria-busy"); });
  });

  function fit() {
    var sidebar = document.getElementById("sidebar");
    if (sidebar && sidebar.hasAttribute("data-collapse-narrow")) sidebar.open = !NARROW.matches;
  }
  fit();
  if (NARROW.addEventListener) NARROW.addEventListener("change", fit);
})();
