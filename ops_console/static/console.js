/* Deme console: the only hand-written script. No framework, no network calls of its own.
 * - live GSM-7 / UCS-2 segment counter for SMS text areas (same rules as gateway/gsm7.py)
 * - canned replies: fill the reply box ({reference} replaced)
 * - errors: a 422/409 answer (the server's message next to the field) is swapped in like a
 *   success; any other failure, or no network, is said in the #flash banner
 * - drafts: text typed in a textarea[data-draft] is kept in sessionStorage until its form is
 *   accepted, so an expired session (login, then back to the page) loses nothing
 * - the queue: countdowns to the due time, bulk selection, the count of new tickets in the
 *   page title and an optional sound / desktop notification (remembered in localStorage)
 * - keyboard shortcuts (listed in the "?" dialog) and canned replies typed as "/word"
 */
(function () {
  "use strict";
  var BASIC = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
  var EXTENSION = "^{}\\[~]|€\f";

  function parts(costs, single, part) {
    var total = 0, i;
    for (i = 0; i < costs.length; i++) { total += costs[i]; }
    if (total <= single) { return 1; }
    var count = 1, used = 0;
    for (i = 0; i < costs.length; i++) {
      /* a two-unit character (escape pair, surrogate pair) never straddles two parts */
      if (used + costs[i] > part) { count += 1; used = 0; }
      used += costs[i];
    }
    return count;
  }

  function measure(text) {
    var chars = Array.from(text), gsm = true, costs = [], i, c;
    for (i = 0; i < chars.length; i++) {
      c = chars[i];
      if (BASIC.indexOf(c) >= 0) { costs.push(1); }
      else if (EXTENSION.indexOf(c) >= 0) { costs.push(2); }
      else { gsm = false; break; }
    }
    if (gsm) {
      return { encoding: "gsm7", length: chars.length, segments: parts(costs, 160, 153) };
    }
    costs = chars.map(function (ch) { return ch.codePointAt(0) > 0xFFFF ? 2 : 1; });
    return { encoding: "ucs2", length: chars.length, segments: parts(costs, 70, 67) };
  }
  window.demeMeasure = measure;

  function updateCounter(area) {
    var counter = document.getElementById(area.getAttribute("data-segment-counter"));
    if (!counter) { return; }
    var info = measure(area.value);
    var d = counter.dataset;
    counter.textContent = info.length + " " + (d.labelChars || "") + " · " + info.segments +
      " " + (d.labelParts || "") + " · " + (info.encoding === "gsm7" ? d.labelGsm : d.labelUcs);
    counter.setAttribute("data-segments", String(info.segments));
    counter.setAttribute("data-encoding", info.encoding);
    counter.classList.toggle("warn", info.encoding === "ucs2" || info.segments > 2);
  }

  function bind(root) {
    root.querySelectorAll("textarea[data-draft]").forEach(bindDraft);
    root.querySelectorAll("textarea[data-segment-counter]").forEach(function (area) {
      if (area.dataset.bound) { return; }
      area.dataset.bound = "1";
      area.addEventListener("input", function () { updateCounter(area); });
      updateCounter(area);
    });
    root.querySelectorAll("select#canned").forEach(function (select) {
      if (select.dataset.bound) { return; }
      select.dataset.bound = "1";
      select.addEventListener("change", function () {
        var box = document.getElementById("reply-body");
        if (!box || !select.value) { return; }
        box.value = select.value.split("{reference}").join(select.dataset.reference || "");
        box.dispatchEvent(new Event("input"));
        box.focus();
      });
    });
  }

  function flash(text) {
    var box = document.getElementById("flash");
    if (!box) { return; }
    box.textContent = text;
    box.hidden = false;
  }

  function clearFlash() {
    var box = document.getElementById("flash");
    if (box) { box.hidden = true; box.textContent = ""; }
  }

  /* The error page's own sentence (already in the reader's language). */
  function errorText(xhr) {
    var fallback = document.body.dataset.errorGeneric || "Error";
    try {
      var doc = new DOMParser().parseFromString(xhr.responseText || "", "text/html");
      var p = doc.querySelector("main p");
      return (p && p.textContent.trim()) || fallback;
    } catch (e) { return fallback; }
  }

  /* A form was accepted (200, no redirect to the login page): its drafts are done. Done
     before the swap, while the form is still in the page (afterwards htmx reports on body). */
  function clearDrafts(form, xhr) {
    if (xhr.status !== 200 || xhr.getResponseHeader("HX-Redirect")) { return; }
    form.querySelectorAll("textarea[data-draft]").forEach(function (area) {
      try { sessionStorage.removeItem(draftKey(area)); } catch (e) { /* ignore */ }
    });
  }

  /* The element that made the request (events are dispatched on the swap target). */
  function requester(event) {
    var config = event.detail.requestConfig;
    return (config && config.elt) || event.detail.elt || event.target;
  }

  function fromForm(event) {
    var elt = requester(event);
    return elt && elt.tagName === "FORM" ? elt : null;
  }

  document.addEventListener("htmx:beforeSwap", function (event) {
    var xhr = event.detail.xhr, form = fromForm(event);
    if (form) { clearDrafts(form, xhr); }
    if (xhr.status === 422 || xhr.status === 409) {
      /* The page says what is wrong, in place: swap it like a success. */
      event.detail.shouldSwap = true;
      event.detail.isError = false;
      if (form) { clearFlash(); }
    } else if (xhr.status >= 400) {
      event.detail.shouldSwap = false;
      flash(errorText(xhr));
    } else if (form) {
      clearFlash();  /* a background poll's success says nothing about the last failure */
    }
  });
  document.addEventListener("htmx:sendError", function () {
    flash(document.body.dataset.errorNetwork || "Network error");
  });
  document.addEventListener("htmx:timeout", function () {
    flash(document.body.dataset.errorNetwork || "Network error");
  });

  function draftKey(area) { return "deme-draft:" + location.pathname + "#" + area.id; }

  function bindDraft(area) {
    if (!area.id || area.dataset.draftBound) { return; }
    area.dataset.draftBound = "1";
    var saved = null;
    try { saved = sessionStorage.getItem(draftKey(area)); } catch (e) { saved = null; }
    if (saved && !area.value) {
      area.value = saved;
      area.dispatchEvent(new Event("input"));
      var note = document.body.dataset.draftRestored;
      if (note) { flash(note); }
    }
    area.addEventListener("input", function () {
      try {
        if (area.value) { sessionStorage.setItem(draftKey(area), area.value); }
        else { sessionStorage.removeItem(draftKey(area)); }
      } catch (e) { /* storage full or disabled: nothing to keep */ }
    });
  }

  /* --- the queue: countdowns, selection, live count, notifications ------------------- */

  function formatMinutes(minutes, table) {
    var d = table.dataset;
    if (minutes < 60) { return (d.fmtMin || "%m min").replace("%m", String(minutes)); }
    if (minutes < 1440) {
      var m = minutes % 60;
      return (d.fmtHour || "%h h %m min").replace("%h", String(Math.floor(minutes / 60)))
        .replace("%m", (m < 10 ? "0" : "") + m);
    }
    return (d.fmtDay || "%d d %h h").replace("%d", String(Math.floor(minutes / 1440)))
      .replace("%h", String(Math.floor((minutes % 1440) / 60)));
  }

  /* Every countdown shown, recomputed from its due time (the server's words and format). */
  function tickCountdowns() {
    var table = document.querySelector("table.queue[data-fmt-min]");
    if (!table) { return; }
    document.querySelectorAll(".countdown[data-due]").forEach(function (box) {
      var seconds = (Date.parse(box.dataset.due) - Date.now()) / 1000;
      var minutes = Math.floor(Math.abs(seconds) / 60);
      var left = box.querySelector(".due-left"), word = box.querySelector(".due-word");
      if (left) { left.textContent = formatMinutes(minutes, table); }
      var overdue = seconds < 0;
      if (word) { word.textContent = overdue ? table.dataset.wordOverdue : table.dataset.wordDueIn; }
      box.classList.toggle("overdue", overdue);
      if (overdue) { box.classList.remove("sla-on_time", "sla-due_soon"); box.classList.add("sla-breached"); }
    });
  }

  function updateBulkCount() {
    var count = document.querySelectorAll("input[name=ticket][form=bulk]:checked").length;
    var label = document.getElementById("bulk-count");
    if (label) {
      label.textContent = count ? (label.dataset.selected || "%n").replace("%n", String(count)) : "";
    }
  }

  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target.id === "select-all") {
      document.querySelectorAll("input[name=ticket][form=bulk]").forEach(function (box) {
        box.checked = target.checked;
      });
    }
    if (target.id === "select-all" || (target.name === "ticket" && target.form && target.form.id === "bulk")) {
      updateBulkCount();
    }
    if (target.id === "notify-toggle") {
      try { localStorage.setItem("deme-notify", target.checked ? "1" : ""); } catch (e) { /* ignore */ }
      if (target.checked && window.Notification && Notification.permission === "default") {
        Notification.requestPermission();
      }
    }
  });

  var baseTitle = document.title;
  var lastNew = 0;

  function beep() {
    try {
      var Context = window.AudioContext || window.webkitAudioContext;
      var audio = new Context(), tone = audio.createOscillator(), gain = audio.createGain();
      tone.frequency.value = 880; gain.gain.value = 0.1;
      tone.connect(gain); gain.connect(audio.destination);
      tone.start(); tone.stop(audio.currentTime + 0.2);
    } catch (e) { /* no sound available */ }
  }

  /* The live indicator was swapped: the count in the title, and a notification if asked. */
  function onNewTickets(indicator) {
    var count = parseInt(indicator.dataset.count || "0", 10);
    document.title = count > 0 ? "(" + count + ") " + baseTitle : baseTitle;
    var wanted = false;
    try { wanted = localStorage.getItem("deme-notify") === "1"; } catch (e) { wanted = false; }
    if (count > lastNew && wanted) {
      var text = (indicator.querySelector(".new-tickets") || indicator).textContent.trim();
      window.demeNotified = (window.demeNotified || 0) + 1;
      if (window.Notification && Notification.permission === "granted") {
        try { new Notification(baseTitle, { body: text, tag: "deme-new" }); } catch (e) { /* ignore */ }
      }
      beep();
    }
    lastNew = count;
  }

  /* --- keyboard shortcuts -------------------------------------------------------------- */

  function typing(target) {
    var tag = target && target.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || (target && target.isContentEditable);
  }

  function rows() { return Array.prototype.slice.call(document.querySelectorAll("tr.ticket-row")); }

  function moveCursor(step) {
    var list = rows();
    if (!list.length) { return; }
    var index = list.findIndex(function (row) { return row.classList.contains("current"); });
    index = index < 0 ? 0 : Math.min(list.length - 1, Math.max(0, index + step));
    list.forEach(function (row) { row.classList.remove("current"); row.removeAttribute("aria-current"); });
    list[index].classList.add("current");
    list[index].setAttribute("aria-current", "true");
    var link = list[index].querySelector("a");
    if (link) { link.focus(); }
  }

  function currentRow() { return document.querySelector("tr.ticket-row.current"); }

  function focusField(id) {
    var field = document.getElementById(id);
    if (!field) { return false; }
    field.scrollIntoView({ block: "center" });
    field.focus();
    return true;
  }

  function openShortcuts() {
    var dialog = document.getElementById("shortcuts");
    if (dialog && !dialog.open && dialog.showModal) { dialog.showModal(); }
  }

  document.addEventListener("click", function (event) {
    if (event.target && event.target.id === "shortcuts-open") { openShortcuts(); }
  });

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) { return; }
    var dialog = document.getElementById("shortcuts");
    if (dialog && dialog.open) { return; }  /* the dialog handles Escape itself */
    var key = event.key, handled = true;
    if (key === "?") { openShortcuts(); }
    else if (key === "j") { moveCursor(1); }
    else if (key === "k") { moveCursor(-1); }
    else if (key === "/" && document.getElementById("queue-search")) { focusField("queue-search"); }
    else if (key === "Enter" && currentRow() && event.target.tagName !== "A") {
      location.href = currentRow().dataset.href;
    } else if (key === "x" && currentRow()) {
      var box = currentRow().querySelector("input[name=ticket]");
      if (box) { box.checked = !box.checked; updateBulkCount(); }
    } else if (key === "a" && currentRow() && document.getElementById("bulk")) {
      /* Assign to me goes through the same confirmation as a bulk action on one ticket. */
      var form = document.getElementById("bulk");
      document.querySelectorAll("input[name=ticket][form=bulk]").forEach(function (b) { b.checked = false; });
      var mine = currentRow().querySelector("input[name=ticket]");
      if (mine) { mine.checked = true; }
      document.getElementById("bulk-action").value = "assign_me";
      form.submit();
    } else if (key === "r") { handled = focusField("reply-body"); }
    else if (key === "n") { handled = focusField("note"); }
    else if (key === "s") { handled = focusField("status"); }
    else if (key === "m") { handled = focusField("macro-apply") || focusField("macro"); }
    else if (key === "g" && !document.getElementById("queue-search")) { location.href = "/queue"; }
    else { handled = false; }
    if (handled) { event.preventDefault(); }
  });

  /* --- canned replies with "/" in the reply box ---------------------------------------- */

  function cannedMenu() { return document.getElementById("canned-menu"); }

  function slashWord(area) {
    var before = area.value.slice(0, area.selectionStart);
    var match = /(^|\s)\/([^\s\/]*)$/.exec(before);
    return match ? { word: match[2], start: before.length - match[2].length - 1 } : null;
  }

  function showCanned(area) {
    var menu = cannedMenu();
    if (!menu) { return; }
    var found = slashWord(area);
    if (!found) { menu.hidden = true; return; }
    var word = found.word.toLowerCase(), first = null;
    menu.querySelectorAll("[role=option]").forEach(function (option) {
      var show = !word || option.textContent.toLowerCase().indexOf(word) >= 0;
      option.hidden = !show;
      option.setAttribute("aria-selected", "false");
      if (show && !first) { first = option; }
    });
    if (first) { first.setAttribute("aria-selected", "true"); }
    menu.hidden = !first;
    area.setAttribute("aria-expanded", first ? "true" : "false");
  }

  function insertCanned(area, option) {
    var found = slashWord(area), menu = cannedMenu();
    if (!found || !option) { return; }
    var text = option.dataset.text.split("{reference}").join(menu.dataset.reference || "");
    area.value = area.value.slice(0, found.start) + text + area.value.slice(area.selectionStart);
    var caret = found.start + text.length;
    area.setSelectionRange(caret, caret);
    menu.hidden = true;
    area.setAttribute("aria-expanded", "false");
    area.dispatchEvent(new Event("input", { bubbles: true }));
    area.focus();
  }

  document.addEventListener("input", function (event) {
    if (event.target && event.target.id === "reply-body") { showCanned(event.target); }
  });

  document.addEventListener("keydown", function (event) {
    var area = event.target, menu = cannedMenu();
    if (!area || area.id !== "reply-body" || !menu || menu.hidden) { return; }
    var options = Array.prototype.filter.call(menu.querySelectorAll("[role=option]"),
      function (o) { return !o.hidden; });
    var index = options.findIndex(function (o) { return o.getAttribute("aria-selected") === "true"; });
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      index = Math.max(0, Math.min(options.length - 1, index + (event.key === "ArrowDown" ? 1 : -1)));
      options.forEach(function (o, i) { o.setAttribute("aria-selected", i === index ? "true" : "false"); });
    } else if (event.key === "Enter" || event.key === "Tab") {
      event.preventDefault();
      insertCanned(area, options[Math.max(0, index)]);
    } else if (event.key === "Escape") {
      menu.hidden = true;
    }
  });

  document.addEventListener("mousedown", function (event) {
    var option = event.target.closest && event.target.closest("#canned-menu [role=option]");
    if (option) {
      event.preventDefault();
      insertCanned(document.getElementById("reply-body"), option);
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    bind(document);
    tickCountdowns();
    setInterval(tickCountdowns, 30000);
    var toggle = document.getElementById("notify-toggle");
    try { if (toggle) { toggle.checked = localStorage.getItem("deme-notify") === "1"; } } catch (e) { /* ignore */ }
  });
  document.addEventListener("htmx:afterSettle", function (event) {
    bind(event.target);
    tickCountdowns();
    var indicator = document.getElementById("new-indicator");
    if (indicator && (event.target === indicator || event.target.contains(indicator))) {
      onNewTickets(indicator);
    }
  });
})();
