// The Markdown editor for record text (issue 18), as progressive enhancement of a plain textarea marked
// data-editor: without this script the textarea and its form work as they are.
// - A toolbar: bold, italic, heading, list, task, code, link (also Ctrl/Cmd+B, I, K).
// - Pasting an image uploads it through the JSON API as the signed-in person (POST .../uploads, then PUT
//   .../records/{id}/attachments/{upload}), so it is readable exactly by the record's readers, and writes
//   ![name](/api/uploads/{id}/content) at the caret; the page's upload limit is checked first. A record not
//   saved yet has nothing to attach to: the editor says so instead of uploading.
// - Reference completion: after "[[" and some title, or a display-ID prefix like "DOC-" or "APP-4", it asks
//   GET .../lookup (records the person can read, nothing else) and offers them; Enter or Tab inserts the
//   display ID, Escape closes. Text goes in with textContent only, never as HTML.
// - Mention completion (a saved record only): after "@" and the start of a name it asks GET .../mentionable,
//   the members who can read this record (a mention of anyone else would notify nobody), and inserts
//   @[Name](user:ID), which the page shows as a mention chip and which notifies that person.
// The suggestions are one listbox, named for what it offers each time ("Records to reference" or "People to
// mention"), so a screen reader announces the right one.
(function () {
  "use strict";

  var ACTIONS = [
    { name: "bold", label: "Bold", text: "B", key: "b" },
    { name: "italic", label: "Italic", text: "I", key: "i" },
    { name: "heading", label: "Heading", text: "H" },
    { name: "list", label: "Bulleted list", text: "• List" },
    { name: "task", label: "Task list", text: "☐ Task" },
    { name: "code", label: "Code", text: "</>" },
    { name: "link", label: "Link", text: "Link", key: "k" }
  ];

  function replaceRange(area, start, end, text, selectFrom, selectTo) {
    area.towSilent = true;  // our own edits do not ask for reference suggestions
    try { insert(area, start, end, text, selectFrom, selectTo); } finally { area.towSilent = false; }
  }

  function insert(area, start, end, text, selectFrom, selectTo) {
    area.focus();
    area.setSelectionRange(start, end);
    var done = false;
    try { done = document.execCommand("insertText", false, text); } catch (e) { done = false; }  // keeps undo
    if (!done || area.value.slice(start, start + text.length) !== text) {
      area.setRangeText(text, start, end, "end");
    }
    area.setSelectionRange(start + selectFrom, start + selectTo);
    area.dispatchEvent(new Event("input", { bubbles: true }));  // the live preview follows
  }

  function wrap(area, before, after, placeholder) {
    var s = area.selectionStart, e = area.selectionEnd;
    var inner = area.value.slice(s, e) || placeholder;
    replaceRange(area, s, e, before + inner + after, before.length, before.length + inner.length);
  }

  function prefixLines(area, prefix) {
    var value = area.value, s = area.selectionStart, e = area.selectionEnd;
    var from = value.lastIndexOf("\n", s - 1) + 1;
    var to = value.indexOf("\n", e > s && value[e - 1] === "\n" ? e - 1 : e);
    if (to === -1) to = value.length;
    var lines = value.slice(from, to).split("\n");
    var all = lines.every(function (l) { return l.indexOf(prefix) === 0; });
    var text = lines.map(function (l) { return all ? l.slice(prefix.length) : prefix + l; }).join("\n");
    replaceRange(area, from, to, text, text.length, text.length);
  }

  function apply(area, name) {
    var selected = area.value.slice(area.selectionStart, area.selectionEnd);
    if (name === "bold") wrap(area, "**", "**", "bold text");
    else if (name === "italic") wrap(area, "_", "_", "italic text");
    else if (name === "heading") prefixLines(area, "## ");
    else if (name === "list") prefixLines(area, "- ");
    else if (name === "task") prefixLines(area, "- [ ] ");
    else if (name === "code") {
      if (selected.indexOf("\n") !== -1) wrap(area, "```\n", "\n```", "");
      else wrap(area, "`", "`", "code");
    } else if (name === "link") {
      var s = area.selectionStart, e = area.selectionEnd, label = selected || "link text";
      var text = "[" + label + "](https://)";
      replaceRange(area, s, e, text, label.length + 3, label.length + 11);  // "https://" selected
    }
  }

  function status(editor, message) {
    editor.status.textContent = message;
    editor.status.hidden = !message;
  }

  // --- paste an image ----------------------------------------------------------------------------------

  function errorOf(response) {
    return response.json().then(function (body) {
      return (body && body.error && body.error.message) || ("the server answered " + response.status);
    }, function () { return "the server answered " + response.status; });
  }

  function uploadImage(editor, file) {
    var area = editor.area, d = area.dataset;
    if (!d.uploadUrl) { status(editor, "This server takes no uploads, so images cannot be pasted."); return; }
    if (!d.attachUrl) { status(editor, "Save first: images can be pasted once the record exists."); return; }
    var max = Number(d.maxBytes);
    if (max && file.size > max) {
      status(editor, "That image is larger than the upload limit (" + (d.maxLabel || max + " bytes") + "): nothing was uploaded.");
      return;
    }
    var name = (file.name && file.name !== "image.png" ? file.name : "pasted-image." + (file.type.split("/")[1] || "png"))
      .replace(/[\[\]\(\)\n\r]/g, "_");
    var marker = "![Uploading " + name + "…]()";
    var s = area.selectionStart;
    replaceRange(area, s, area.selectionEnd, marker, marker.length, marker.length);
    status(editor, "Uploading " + name + "…");
    fetch(d.uploadUrl + "?filename=" + encodeURIComponent(name), {
      method: "POST", body: file, credentials: "same-origin",
      headers: { "Content-Type": file.type || "application/octet-stream", "Accept": "application/json" }
    }).then(function (response) {
      if (!response.ok) return errorOf(response).then(function (m) { throw new Error(m); });
      return response.json();
    }).then(function (upload) {
      return fetch(d.attachUrl + "/" + upload.id, { method: "PUT", credentials: "same-origin",
        headers: { "Accept": "application/json" } }).then(function (response) {
        if (!response.ok) return errorOf(response).then(function (m) { throw new Error(m); });
        return upload;
      });
    }).then(function (upload) {
      swapMarker(area, marker, "![" + name + "](/api/uploads/" + upload.id + "/content)");
      status(editor, "Uploaded " + name + " and attached it to this record.");
    }).catch(function (error) {
      swapMarker(area, marker, "");
      status(editor, "The image was not uploaded: " + error.message);
    });
  }

  function swapMarker(area, marker, text) {
    var at = area.value.indexOf(marker);
    if (at === -1) return;
    var caret = area.selectionStart;
    replaceRange(area, at, at + marker.length, text, text.length, text.length);
    if (caret > at + marker.length) {
      var moved = caret - marker.length + text.length;
      area.setSelectionRange(moved, moved);
    }
  }

  function onPaste(editor, event) {
    var items = (event.clipboardData && event.clipboardData.files) || [];
    for (var i = 0; i < items.length; i++) {
      if (items[i].type && items[i].type.indexOf("image/") === 0) {
        event.preventDefault();
        uploadImage(editor, items[i]);
        return;
      }
    }
  }

  // --- reference completion ------------------------------------------------------------------------------

  // "[[" and a title, or an upper-case display-ID prefix and its dash (maybe some digits), not glued to a word.
  var TRIGGER = /(?:\[\[([^\[\]\n]{1,60})|(?:^|[^A-Za-z0-9_-])((?=[A-Z0-9]*[A-Z])[A-Z0-9]{2,10}-[0-9]{0,18}))$/;

  // "@" and the start of a name, not glued to a word (an e-mail address is no mention).
  var MENTION_TRIGGER = /(?:^|[^A-Za-z0-9_.@-])@([^\s@\[\]()]{0,30})$/;

  function query(editor) {
    var area = editor.area;
    if (area.selectionStart !== area.selectionEnd) return null;
    var before = area.value.slice(Math.max(0, area.selectionStart - 80), area.selectionStart);
    var mention = area.dataset.mentionUrl ? MENTION_TRIGGER.exec(before) : null;
    if (mention) return { text: mention[1], start: area.selectionStart - mention[1].length - 1, mention: true };
    var m = TRIGGER.exec(before);
    if (!m) return null;
    if (m[1] !== undefined) return { text: m[1].trim(), start: area.selectionStart - m[1].length - 2 };
    return { text: m[2], start: area.selectionStart - m[2].length };
  }

  function closeList(editor) {
    editor.list.hidden = true;
    editor.list.textContent = "";
    editor.items = [];
    editor.active = -1;
    editor.area.removeAttribute("aria-activedescendant");
  }

  function highlight(editor, index) {
    editor.active = index;
    editor.items.forEach(function (item, i) {
      item.el.setAttribute("aria-selected", i === index ? "true" : "false");
    });
    if (index >= 0) editor.area.setAttribute("aria-activedescendant", editor.items[index].el.id);
  }

  function choose(editor, index) {
    var item = editor.items[index], q = editor.query;
    if (!item || !q) return;
    var text = item.insert;
    closeList(editor);
    replaceRange(editor.area, q.start, editor.area.selectionStart, text, text.length, text.length);
  }

  function show(editor, found, label) {
    closeList(editor);
    if (!found.length) return;
    editor.list.setAttribute("aria-label", label);  // what a screen reader announces: people or records
    found.forEach(function (option, i) {  // { id: shown first, label: after it, insert: what goes in }
      var li = document.createElement("li");
      li.id = editor.area.id + "-ref-" + i;
      li.setAttribute("role", "option");
      var id = document.createElement("span");
      id.className = "id";
      id.textContent = option.id;
      li.appendChild(id);
      li.appendChild(document.createTextNode(" " + option.label));
      li.addEventListener("mousedown", function (event) { event.preventDefault(); choose(editor, i); });
      editor.list.appendChild(li);
      editor.items.push({ el: li, insert: option.insert });
    });
    editor.list.hidden = false;
    highlight(editor, 0);
  }

  function suggest(editor) {
    var q = query(editor);
    editor.query = q;
    if (!q || (!q.text && !q.mention) || !editor.area.dataset.lookupUrl) { closeList(editor); return; }
    var asked = ++editor.asked;
    var url = q.mention ? editor.area.dataset.mentionUrl + "?q=" : editor.area.dataset.lookupUrl + "?limit=8&q=";
    fetch(url + encodeURIComponent(q.text), {
      credentials: "same-origin", headers: { "Accept": "application/json" }
    }).then(function (response) { return response.ok ? response.json() : []; }).then(function (found) {
      var self = editor.area.dataset.self;  // a record citing itself is no reference
      var options = q.mention
        ? found.map(function (m) { return { id: "@", label: m.display_name, insert: m.markup }; })
        : found.filter(function (record) { return record.display_id !== self; }).map(function (record) {
          return { id: record.display_id, label: record.title, insert: record.display_id };
        });
      if (asked === editor.asked && editor.query) {
        show(editor, options, q.mention ? "People to mention" : "Records to reference");
      }
    }, function () { closeList(editor); });
  }

  function onKey(editor, event) {
    if ((event.ctrlKey || event.metaKey) && !event.altKey) {
      var action = ACTIONS.filter(function (a) { return a.key === event.key.toLowerCase(); })[0];
      if (action) { event.preventDefault(); apply(editor.area, action.name); return; }
    }
    if (editor.list.hidden || !editor.items.length) return;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      var n = editor.items.length;
      highlight(editor, (editor.active + (event.key === "ArrowDown" ? 1 : n - 1)) % n);
    } else if (event.key === "Enter" || event.key === "Tab") {
      event.preventDefault();
      choose(editor, editor.active);
    } else if (event.key === "Escape") {
      event.preventDefault();
      closeList(editor);
    }
  }

  // --- setting up ------------------------------------------------------------------------------------------

  function enhance(area) {
    if (area.dataset.editorReady) return;
    area.dataset.editorReady = "1";
    var toolbar = document.createElement("div");
    toolbar.className = "editor-toolbar";
    toolbar.setAttribute("role", "toolbar");
    toolbar.setAttribute("aria-label", "Formatting");
    toolbar.setAttribute("aria-controls", area.id);
    ACTIONS.forEach(function (action) {
      var button = document.createElement("button");
      button.type = "button";
      button.className = "small secondary";
      button.dataset.action = action.name;
      button.textContent = action.text;
      button.setAttribute("aria-label", action.label);
      button.title = action.label + (action.key ? " (Ctrl+" + action.key.toUpperCase() + ")" : "");
      button.addEventListener("click", function () { apply(area, action.name); });
      toolbar.appendChild(button);
    });
    var list = document.createElement("ul");
    list.className = "reference-suggestions";
    list.id = area.id + "-refs";
    list.setAttribute("role", "listbox");
    list.setAttribute("aria-label", "Suggestions");  // named for what it lists each time it opens (show)
    list.hidden = true;
    var note = document.createElement("p");
    note.className = "hint editor-status";
    note.setAttribute("role", "status");
    note.hidden = true;
    area.parentNode.insertBefore(toolbar, area);
    area.parentNode.insertBefore(list, area.nextSibling);
    area.parentNode.insertBefore(note, list.nextSibling);
    area.setAttribute("aria-autocomplete", "list");
    area.setAttribute("aria-controls", list.id);
    var editor = { area: area, list: list, status: note, items: [], active: -1, asked: 0, query: null };
    area.addEventListener("keydown", function (event) { onKey(editor, event); });
    area.addEventListener("input", function () { if (!area.towSilent) suggest(editor); });
    area.addEventListener("blur", function () { closeList(editor); });
    area.addEventListener("paste", function (event) { onPaste(editor, event); });
  }

  function enhanceAll() {
    var areas = document.querySelectorAll("textarea[data-editor]");
    for (var i = 0; i < areas.length; i++) enhance(areas[i]);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", enhanceAll);
  else enhanceAll();
})();
