// Upload progress for a file form (form[data-upload-progress], after upload-limit.js has checked the size):
// the form is sent with XMLHttpRequest so its upload progress can be shown in the form's <progress>; when
// it is done the browser goes where the server sends it (the record again, or the same page saying why the
// file was refused). Without this script the plain form posts as usual. Errors stay on the page.
(function () {
  "use strict";
  function say(form, text) {
    var error = form.querySelector("[data-upload-error]");
    if (!error) return;
    error.textContent = text;
    error.hidden = false;
  }
  function messageOf(xhr) {
    var box = document.createElement("div");
    box.innerHTML = xhr.responseText || "";  // the server's escaped message fragment
    var text = (box.textContent || "").trim();
    return text || "The upload failed (" + xhr.status + "): nothing was uploaded. Try again.";
  }
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (event.defaultPrevented || !form.matches || !form.matches("form[data-upload-progress]") || !window.FormData) return;
    var progress = form.querySelector("progress");
    var status = form.querySelector("[data-upload-status]");
    var button = form.querySelector("button[type=submit]");
    event.preventDefault();
    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    // As an HTMX request the server answers 200 with HX-Redirect (no page to download) or a short message.
    xhr.setRequestHeader("HX-Request", "true");
    xhr.setRequestHeader("HX-Trigger", form.id);
    xhr.upload.addEventListener("progress", function (e) {
      if (!e.lengthComputable) return;
      var percent = Math.floor((e.loaded / e.total) * 100);
      progress.value = percent;
      status.textContent = percent < 100 ? "Uploading: " + percent + "%" : "Uploaded; saving…";
    });
    xhr.addEventListener("load", function () {
      var next = xhr.getResponseHeader("HX-Redirect");
      if (xhr.status < 400 && next) {
        window.location.assign(next);
        return;
      }
      finish();
      say(form, xhr.status < 400 ? "The upload did not finish: reload the page to see whether the file is there." : messageOf(xhr));
    });
    xhr.addEventListener("error", function () {
      finish();
      say(form, "The connection failed during the upload: nothing was uploaded. Try again.");
    });
    function finish() {
      progress.hidden = true;
      status.textContent = "";
      if (button) button.disabled = false;
    }
    var error = form.querySelector("[data-upload-error]");
    if (error) error.hidden = true;
    progress.value = 0;
    progress.hidden = false;
    status.textContent = "Uploading: 0%";
    if (button) button.disabled = true;
    xhr.send(new FormData(form));
  });
})();
