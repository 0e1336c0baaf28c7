// A table, code block, diff or board that scrolls sideways (on a narrow screen) becomes focusable, so it can
// be scrolled with the keyboard too (axe-core: scrollable-region-focusable); it stops being a tab stop when
// it fits again.
(function () {
  "use strict";
  var SCROLLERS = "table.list, .prose table, .prose pre, .diff, .board";
  function mark() {
    document.querySelectorAll(SCROLLERS).forEach(function (el) {
      var scrolls = el.scrollWidth > el.clientWidth + 1;
      if (scrolls && !el.hasAttribute("tabindex")) {
        el.tabIndex = 0;
        el.dataset.scrollFocus = "yes";
      } else if (!scrolls && el.dataset.scrollFocus) {
        el.removeAttribute("tabindex");
        delete el.dataset.scrollFocus;
      }
    });
  }
  var pending = null;
  function later() {
    if (pending) clearTimeout(pending);
    pending = setTimeout(mark, 150);
  }
  mark();
  window.addEventListener("resize", later);
  document.addEventListener("htmx:afterSwap", later);
})();
