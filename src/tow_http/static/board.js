// Drag and drop on the ticket board: progressive enhancement of each card's "Move to" form. A drop posts that
// same form (with its CSRF token and the card's version) to the same URL the button does; without JavaScript
// the form works on its own. A refused move puts the card back and says why.
(function () {
  "use strict";
  var board = document.querySelector(".board[data-board]");
  if (!board) { return; }
  var statusLine = document.getElementById("board-status");
  var errorLine = document.getElementById("board-error");
  var dragged = null;

  function columnOf(element) { return element.closest(".board-col"); }

  function recount() {
    board.querySelectorAll(".board-col").forEach(function (col) {
      var count = col.querySelector("h3 .count");
      if (count) { count.textContent = String(col.querySelectorAll(".card").length); }
    });
  }

  function textOf(html) {
    var text = new DOMParser().parseFromString(html, "text/html").body.textContent || "";
    return text.trim().replace(/\s+/g, " ");
  }

  function say(message, isError) {
    if (isError) {
      errorLine.textContent = message;
      errorLine.hidden = false;
    } else {
      errorLine.hidden = true;
      statusLine.textContent = message;
    }
  }

  function move(card, target) {
    var form = card.querySelector("form.card-move");
    var from = columnOf(card);
    if (!form || from === target) { return; }
    var data = new URLSearchParams(new FormData(form));
    data.set("status", target.dataset.status);
    target.querySelector("ul").appendChild(card);
    recount();
    card.classList.add("saving");
    fetch(form.action, {
      method: "POST", body: data, credentials: "same-origin",
      headers: {"HX-Request": "true", "Content-Type": "application/x-www-form-urlencoded"}
    }).then(function (response) {
      card.classList.remove("saving");
      if (response.ok) {
        var version = form.querySelector("input[name=version]");
        version.value = String(Number(version.value) + 1);
        form.querySelector("select[name=status]").value = target.dataset.status;
        say(card.dataset.displayId + " moved to " + target.querySelector("h3").firstChild.textContent.trim(), false);
        return null;
      }
      return response.text().then(function (body) {
        from.querySelector("ul").appendChild(card);
        recount();
        say(card.dataset.displayId + " was not moved: " + (textOf(body) || "the server refused"), true);
      });
    }).catch(function () {
      card.classList.remove("saving");
      from.querySelector("ul").appendChild(card);
      recount();
      say(card.dataset.displayId + " was not moved: the server could not be reached", true);
    });
  }

  board.querySelectorAll(".card").forEach(function (card) {
    card.draggable = true;
    card.addEventListener("dragstart", function (event) {
      dragged = card;
      card.classList.add("dragging");
      event.dataTransfer.effectAllowed = "move";
      event.dataTransfer.setData("text/plain", card.dataset.displayId);
    });
    card.addEventListener("dragend", function () {
      card.classList.remove("dragging");
      dragged = null;
      board.querySelectorAll(".drop-target").forEach(function (col) { col.classList.remove("drop-target"); });
    });
  });
  board.querySelectorAll(".board-col[data-status]").forEach(function (col) {
    col.addEventListener("dragover", function (event) {
      if (dragged && columnOf(dragged) !== col) {
        event.preventDefault();
        event.dataTransfer.dropEffect = "move";
        col.classList.add("drop-target");
      }
    });
    col.addEventListener("dragleave", function (event) {
      if (!col.contains(event.relatedTarget)) { col.classList.remove("drop-target"); }
    });
    col.addEventListener("drop", function (event) {
      event.preventDefault();
      col.classList.remove("drop-target");
      if (dragged) { move(dragged, col); }
    });
  });
})();
