// Checks a chosen file against the server's upload limit (data-max-bytes) before the form sends it, so an
// over-limit file is refused on the page at once instead of after the whole upload. The server checks again.
(function () {
  "use strict";
  function check(input) {
    var max = Number(input.dataset.maxBytes);
    var error = document.getElementById(input.id + "-error");
    var file = input.files && input.files[0];
    var tooLarge = Boolean(file && max && file.size > max);
    input.setCustomValidity(tooLarge ? "That file is larger than the upload limit." : "");
    if (error) {
      error.hidden = !tooLarge;
      if (tooLarge) {
        var limit = document.getElementById(input.id + "-limit");
        error.textContent = "That file is larger than the limit" + (limit ? " (" + limit.textContent.replace(/\.$/, "") + ")" : "") +
          ": choose a smaller one.";
      }
    }
    return !tooLarge;
  }
  document.addEventListener("change", function (event) {
    if (event.target.matches && event.target.matches("input[type=file][data-max-bytes]")) check(event.target);
  });
  document.addEventListener("submit", function (event) {
    var inputs = event.target.querySelectorAll ? event.target.querySelectorAll("input[type=file][data-max-bytes]") : [];
    for (var i = 0; i < inputs.length; i++) {
      if (!check(inputs[i])) event.preventDefault();
    }
  }, true);
})();
