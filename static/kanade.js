// kanade.js — the console's only script besides htmx and its SSE extension.
// No inline scripts anywhere (CSP script-src 'self'); everything hangs off
// data-* attributes:
//
//   "/"                  focuses the page's search box ([data-search])
//   Ctrl/Cmd+Enter       submits the form that has the focus
//   [data-follow]        an output panel that follows its tail unless the
//                        user scrolled up
//   [data-live]          the live indicator of the nearest [sse-connect]
//   [data-refetch]       a region that re-fetches the URL in the data-url of
//                        its current content (so filters and paging survive)
//   [data-log-link]      a row's "Log" link; its row becomes the selected one
//   time[data-rel]       relative times, refreshed every 30 s
//   [data-copy]          a button that copies the text of the element its
//                        value selects; data-state says "copied", or
//                        "select" when the browser refused and the text is
//                        selected for Ctrl+C instead
(function () {
  "use strict";

  // ---------- keyboard ----------

  function typing(el) {
    if (!el) return false;
    var tag = el.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || el.isContentEditable;
  }

  document.addEventListener("keydown", function (e) {
    if (e.key === "/" && !e.ctrlKey && !e.metaKey && !e.altKey && !typing(document.activeElement)) {
      var box = document.querySelector("[data-search]");
      if (box) {
        e.preventDefault();
        box.focus();
        if (box.select) box.select();
      }
      return;
    }
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      var form = e.target && e.target.closest ? e.target.closest("form") : null;
      if (form) {
        e.preventDefault();
        if (form.requestSubmit) form.requestSubmit();
        else form.submit();
      }
    }
  });

  // ---------- output panels follow their tail ----------

  var followed = new WeakSet();

  function atBottom(el) {
    return el.scrollHeight - el.scrollTop - el.clientHeight < 8;
  }

  function follow(el) {
    if (followed.has(el)) return;
    followed.add(el);
    var pinned = true;
    el.scrollTop = el.scrollHeight;
    el.addEventListener("scroll", function () { pinned = atBottom(el); }, { passive: true });
    new MutationObserver(function () {
      if (pinned) el.scrollTop = el.scrollHeight;
    }).observe(el, { childList: true, characterData: true, subtree: true });
  }

  function setup(root) {
    if (!root || !root.querySelectorAll) return;
    if (root.matches && root.matches("[data-follow]")) follow(root);
    root.querySelectorAll("[data-follow]").forEach(follow);
  }

  // ---------- live indicator ----------

  function live(e, up) {
    var src = e.target;
    if (!src || !src.querySelectorAll) return;
    // Only the indicator of this stream, not of a nested one.
    src.querySelectorAll("[data-live]").forEach(function (ind) {
      if (ind.closest("[sse-connect]") !== src) return;
      ind.setAttribute("data-state", up ? "up" : "down");
      ind.textContent = up ? "live" : "reconnecting";
      ind.title = up ? "Receiving live updates" : "Live updates interrupted; retrying";
    });
  }

  document.addEventListener("htmx:sseOpen", function (e) { live(e, true); });
  document.addEventListener("htmx:sseError", function (e) { live(e, false); });
  document.addEventListener("htmx:sseClose", function (e) { live(e, false); });

  // ---------- regions that re-fetch their current URL ----------

  document.addEventListener("htmx:configRequest", function (e) {
    var elt = e.detail && e.detail.elt;
    if (!elt || !elt.hasAttribute || !elt.hasAttribute("data-refetch")) return;
    var cur = elt.querySelector("[data-url]");
    var url = cur && cur.getAttribute("data-url");
    if (url) e.detail.path = url;
  });

  // ---------- selected row follows the clicked Log link ----------

  document.addEventListener("click", function (e) {
    var link = e.target && e.target.closest ? e.target.closest("[data-log-link]") : null;
    if (!link || e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
    var row = link.closest("tr");
    var body = row && row.parentNode;
    if (!body) return;
    body.querySelectorAll("tr.selected").forEach(function (r) {
      r.classList.remove("selected");
      r.removeAttribute("aria-current");
    });
    row.classList.add("selected");
    row.setAttribute("aria-current", "true");
  });

  // ---------- copy buttons ----------

  function selectText(el) {
    var range = document.createRange();
    range.selectNodeContents(el);
    var sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
  }

  function copied(btn, state, label) {
    btn.setAttribute("data-state", state);
    btn.textContent = label;
    window.setTimeout(function () {
      btn.removeAttribute("data-state");
      btn.textContent = "Copy";
    }, 4000);
  }

  document.addEventListener("click", function (e) {
    var btn = e.target && e.target.closest ? e.target.closest("[data-copy]") : null;
    if (!btn) return;
    var src = document.querySelector(btn.getAttribute("data-copy"));
    if (!src) return;
    e.preventDefault();
    var text = src.textContent;
    function fallback() {
      selectText(src);
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (err) { ok = false; }
      if (ok) copied(btn, "copied", "Copied");
      else copied(btn, "select", "Press Ctrl+C");
    }
    if (!navigator.clipboard || !window.isSecureContext) {
      fallback();
      return;
    }
    // A clipboard request the browser leaves unanswered (a permission
    // prompt nobody sees) falls back after a moment.
    var settled = false;
    function once(fn) {
      return function () {
        if (settled) return;
        settled = true;
        window.clearTimeout(timer);
        fn();
      };
    }
    var timer = window.setTimeout(once(fallback), 1500);
    navigator.clipboard.writeText(text).then(once(function () { copied(btn, "copied", "Copied"); }), once(fallback));
  });

  // ---------- relative times ----------

  function rel(ms) {
    var s = Math.round(Math.abs(ms) / 1000);
    var t;
    if (s < 60) t = s + "s";
    else if (s < 3600) t = Math.floor(s / 60) + "m";
    else if (s < 86400) t = Math.floor(s / 3600) + "h";
    else t = Math.floor(s / 86400) + "d";
    return ms <= 0 ? t + " ago" : "in " + t;
  }

  function refreshTimes() {
    var now = Date.now();
    document.querySelectorAll("time[datetime][data-rel]").forEach(function (el) {
      var at = Date.parse(el.getAttribute("datetime"));
      if (!isNaN(at)) el.textContent = rel(at - now);
    });
  }

  // ---------- start ----------

  document.addEventListener("htmx:load", function (e) { setup(e.target); });
  function start() {
    setup(document.body);
    window.setInterval(refreshTimes, 30000);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();

/* --- P: top bar, local times, menu, agent selection --- */
//   body[data-topbar-live]  the top bar's live stream: each "topbar" event
//                           carries elements that replace those of the same
//                           id (the approvals chip, the emergency stop and
//                           its banner); held only while the tab is visible
//   time[data-local]        a time shown as the viewer's own clock ("14:02",
//                           "7 Dec 14:02" on another day)
//   [data-menu-toggle]      the phone-width menu button of the top bar
//   [data-select-all]       a checkbox that selects every [data-select] box
//                           of its form; [data-selected-count] says how many
//                           are selected and [data-needs-selection] buttons
//                           are disabled while none is
(function () {
  "use strict";

  // ---------- viewer's local time ----------

  function sameDay(a, b) {
    return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
  }

  function localTimes(root) {
    if (!root || !root.querySelectorAll) return;
    var now = new Date();
    root.querySelectorAll("time[data-local]").forEach(function (el) {
      var t = new Date(el.getAttribute("datetime"));
      if (isNaN(t.getTime())) return;
      var clock = t.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
      el.textContent = sameDay(t, now) ? clock : t.toLocaleDateString([], { day: "numeric", month: "short" }) + " " + clock;
      el.title = t.toLocaleString([], { dateStyle: "full", timeStyle: "long" });
    });
  }

  // ---------- top bar live stream ----------

  function applyTopBar(html) {
    var tpl = document.createElement("template");
    tpl.innerHTML = html;
    Array.prototype.slice.call(tpl.content.children).forEach(function (el) {
      var old = el.id && document.getElementById(el.id);
      if (!old) return;
      old.replaceWith(el);
      localTimes(el);
      if (window.htmx) window.htmx.process(el);
    });
  }

  var stream = null;
  var retry = 0;

  function openTopBar() {
    var url = document.body && document.body.getAttribute("data-topbar-live");
    if (!url || stream || document.visibilityState === "hidden" || !window.EventSource) return;
    stream = new EventSource(url);
    stream.addEventListener("topbar", function (e) { applyTopBar(e.data); });
    stream.addEventListener("error", function () {
      // The browser reconnects by itself unless the server refused (429,
      // signed out): then try again in a while.
      if (stream && stream.readyState === EventSource.CLOSED) {
        stream = null;
        window.clearTimeout(retry);
        retry = window.setTimeout(openTopBar, 30000);
      }
    });
  }

  function closeTopBar() {
    if (stream) stream.close();
    stream = null;
  }

  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") closeTopBar();
    else openTopBar();
  });
  window.addEventListener("pagehide", closeTopBar);

  // ---------- phone-width menu ----------

  function setMenu(bar, open) {
    bar.setAttribute("data-menu", open ? "open" : "closed");
    var btn = bar.querySelector("[data-menu-toggle]");
    if (btn) btn.setAttribute("aria-expanded", open ? "true" : "false");
  }

  document.addEventListener("click", function (e) {
    var btn = e.target && e.target.closest ? e.target.closest("[data-menu-toggle]") : null;
    var bar = document.querySelector(".topbar");
    if (!bar) return;
    if (btn) {
      setMenu(bar, bar.getAttribute("data-menu") !== "open");
    } else if (bar.getAttribute("data-menu") === "open" && !(e.target.closest && e.target.closest("#topbar-menu"))) {
      setMenu(bar, false);
    }
  });

  document.addEventListener("keydown", function (e) {
    var bar = document.querySelector(".topbar[data-menu=open]");
    if (e.key === "Escape" && bar) {
      setMenu(bar, false);
      var btn = bar.querySelector("[data-menu-toggle]");
      if (btn) btn.focus();
    }
  });

  // ---------- selecting agents ----------

  function boxes(form) {
    return Array.prototype.slice.call(document.querySelectorAll("input[type=checkbox][data-select][form='" + form + "']"));
  }

  function updateSelection(form) {
    var all = boxes(form);
    var n = all.filter(function (b) { return b.checked; }).length;
    document.querySelectorAll("[data-selected-count='" + form + "']").forEach(function (el) {
      el.textContent = n === 0 ? "none selected" : n + " selected";
      el.setAttribute("data-n", String(n));
    });
    var f = document.getElementById(form);
    if (f) {
      f.querySelectorAll("[data-needs-selection]").forEach(function (b) { b.disabled = n === 0; });
    }
    document.querySelectorAll("input[type=checkbox][data-select-all='" + form + "']").forEach(function (sa) {
      sa.checked = all.length > 0 && n === all.length;
      sa.indeterminate = n > 0 && n < all.length;
    });
  }

  document.addEventListener("change", function (e) {
    var el = e.target;
    if (!el || !el.matches) return;
    if (el.matches("input[data-select-all]")) {
      var form = el.getAttribute("data-select-all");
      boxes(form).forEach(function (b) { b.checked = el.checked; });
      updateSelection(form);
    } else if (el.matches("input[data-select]") && el.getAttribute("form")) {
      updateSelection(el.getAttribute("form"));
    }
  });

  function setupSelection(root) {
    if (!root || !root.querySelectorAll) return;
    var forms = {};
    root.querySelectorAll("[data-selected-count], input[data-select-all]").forEach(function (el) {
      forms[el.getAttribute("data-selected-count") || el.getAttribute("data-select-all")] = true;
    });
    if (root.matches && root.matches("input[data-select]")) forms[root.getAttribute("form")] = true;
    root.querySelectorAll("input[data-select]").forEach(function (b) { forms[b.getAttribute("form")] = true; });
    Object.keys(forms).forEach(function (f) { if (f) updateSelection(f); });
  }

  // ---------- start ----------

  document.addEventListener("htmx:load", function (e) {
    localTimes(e.target);
    setupSelection(e.target);
  });
  function start() {
    localTimes(document.body);
    setupSelection(document.body);
    openTopBar();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();

/* --- E: executions (ticking durations, output kept where it was read) --- */
//   [data-tick-from]  a duration that still runs: it counts on every second
//                     from its server-drawn value (data-tick-now minus
//                     data-tick-from), so a skewed browser clock reads right
//   #log-panel        redrawn for the same PC (its target ended), the output
//                     stays where the reader was: at its tail, or where they
//                     had scrolled up to
//   [sse-connect]     live streams close when the page is hidden: a page
//                     kept in the browser's back/forward cache would keep
//                     them open, each holding one of the six connections a
//                     browser opens to a server, and a few pages later every
//                     request waits for one. A page shown again from that
//                     cache reloads, live and up to date.
(function () {
  "use strict";

  // ---------- ticking durations ----------

  function pad(n) { return n < 10 ? "0" + n : String(n); }

  // The same words as the server's (app/web tickText).
  function tickText(ms) {
    var s = Math.max(0, Math.floor(ms / 1000));
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m " + pad(s % 60) + "s";
    return Math.floor(s / 3600) + "h " + pad(Math.floor(s / 60) % 60) + "m";
  }

  var ticks = new WeakMap(); // element → {base: ms shown when drawn, at: when it was drawn}

  function register(root) {
    if (!root || !root.querySelectorAll) return;
    var now = Date.now();
    var els = Array.prototype.slice.call(root.querySelectorAll("[data-tick-from]"));
    if (root.matches && root.matches("[data-tick-from]")) els.push(root);
    els.forEach(function (el) {
      if (ticks.has(el)) return;
      var from = Date.parse(el.getAttribute("data-tick-from"));
      var drawn = Date.parse(el.getAttribute("data-tick-now"));
      if (isNaN(from)) return;
      ticks.set(el, { base: (isNaN(drawn) ? now : drawn) - from, at: now });
    });
  }

  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-tick-from]").forEach(function (el) {
      if (!ticks.has(el)) register(el); // drawn without an htmx:load
      var t = ticks.get(el);
      if (t) el.textContent = tickText(t.base + now - t.at);
    });
  }

  // ---------- output panel position across a redraw ----------

  var kept = null; // {pc, top} of an output scrolled up, until the redraw settles

  function panelOf(target) {
    if (!target || target.id !== "log-panel") return null;
    return { panel: target.querySelector(".log-panel"), out: target.querySelector("pre[data-follow]") };
  }

  document.addEventListener("htmx:beforeSwap", function (e) {
    var p = panelOf(e.detail && e.detail.target);
    if (!p) return;
    kept = null;
    if (p.panel && p.out && p.out.scrollHeight - p.out.scrollTop - p.out.clientHeight >= 8) {
      kept = { pc: p.panel.getAttribute("data-pc"), top: p.out.scrollTop };
    }
  });

  document.addEventListener("htmx:afterSettle", function (e) {
    var p = panelOf(e.detail && e.detail.target);
    if (!p || !kept) return;
    if (p.panel && p.out && p.panel.getAttribute("data-pc") === kept.pc) p.out.scrollTop = kept.top;
    kept = null;
  });

  // ---------- live streams and the back/forward cache ----------

  window.addEventListener("pagehide", function () {
    if (!window.htmx) return;
    // htmx's SSE extension closes a stream when its element is cleaned up.
    document.querySelectorAll("[sse-connect]").forEach(function (el) {
      window.htmx.trigger(el, "htmx:beforeCleanupElement");
    });
  });
  window.addEventListener("pageshow", function (e) {
    if (e.persisted && document.querySelector("[sse-connect]")) window.location.reload();
  });

  // ---------- start ----------

  document.addEventListener("htmx:load", function (e) { register(e.target); });
  function start() {
    register(document.body);
    window.setInterval(tick, 1000);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();

/* --- F: confirmations, error toasts, the Run form's shell --- */
//   form[data-confirm]          asks its question before it is sent; a
//                               dismissed question sends nothing
//   form[data-confirm-preview]  asks the question of a fresh preview of its
//                               target (that URL with the fields named in
//                               data-confirm-params; the preview's
//                               data-confirm, "" for none): the count is the
//                               server's when the form is sent, not the one
//                               the page showed a moment before; a form
//                               aimed at one PC by id is sent at once
//   [data-toast]                the error fragment of an htmx request that
//                               failed, shown at the foot of the page until
//                               dismissed
//   select[data-shell-select]   follows the shell the preview suggests for
//                               the target (#run-preview's data-shell, with
//                               data-shell-hint) until the user picks one
//                               (data-chosen); the script's placeholder
//                               follows the shell
(function () {
  "use strict";

  // ---------- confirmations ----------

  var confirmed = new WeakSet();

  function send(form, submitter) {
    confirmed.add(form);
    if (form.requestSubmit) form.requestSubmit(submitter && submitter.form === form ? submitter : undefined);
    else form.submit();
  }

  function freshPreview(form) {
    var data = new FormData(form);
    var params = new URLSearchParams();
    (form.getAttribute("data-confirm-params") || "").split(",").forEach(function (name) {
      name = name.trim();
      if (name) data.getAll(name).forEach(function (v) { params.append(name, v); });
    });
    var url = form.getAttribute("data-confirm-preview") + "?" + params.toString();
    return fetch(url, { headers: { "HX-Request": "true" }, credentials: "same-origin" }).then(function (r) {
      if (!r.ok) throw new Error("preview " + r.status);
      return r.text();
    }).then(function (html) {
      var tpl = document.createElement("template");
      tpl.innerHTML = html;
      var fresh = tpl.content.querySelector("#run-preview");
      var old = form.querySelector("#run-preview");
      if (!fresh) throw new Error("no preview");
      if (old) {
        old.replaceWith(fresh);
        if (window.htmx) window.htmx.process(fresh);
        applyShell(fresh);
      }
      return fresh.getAttribute("data-confirm") || "";
    });
  }

  // onePC: the form targets one PC by id, where there is no count to ask
  // about (the server refuses an id no agent has had), so it is sent
  // without waiting for a preview. The ids split as app/web splitIDs does.
  function onePC(form) {
    var mode = form.querySelector("input[name=target_mode]:checked");
    var pcs = form.querySelector("[name=pcs]");
    if (!mode || mode.value !== "pcs" || !pcs) return false;
    return pcs.value.split(/[,; \n\t]+/).filter(Boolean).length === 1;
  }

  document.addEventListener("submit", function (e) {
    var form = e.target;
    if (!form || !form.matches || !form.matches("form[data-confirm], form[data-confirm-preview]")) return;
    if (confirmed.has(form)) {
      confirmed.delete(form);
      return;
    }
    var question = form.getAttribute("data-confirm");
    if (question) {
      if (!window.confirm(question)) {
        e.preventDefault();
        e.stopImmediatePropagation();
      }
      return;
    }
    if (onePC(form)) return;
    e.preventDefault();
    e.stopImmediatePropagation();
    if (form.hasAttribute("data-confirm-busy")) return;
    form.setAttribute("data-confirm-busy", "");
    var submitter = e.submitter;
    freshPreview(form).catch(function () {
      // No fresh count: ask the question the page shows, if any.
      var shown = form.querySelector("#run-preview");
      return shown ? shown.getAttribute("data-confirm") || "" : "";
    }).then(function (q) {
      form.removeAttribute("data-confirm-busy");
      if (!q || window.confirm(q)) send(form, submitter);
    });
  }, true);

  // ---------- error toasts ----------

  function toasts() {
    var box = document.getElementById("toasts");
    if (!box) {
      box = document.createElement("div");
      box.id = "toasts";
      box.className = "toasts";
      box.setAttribute("aria-live", "assertive");
      document.body.appendChild(box);
    }
    return box;
  }

  function toast(el) {
    var close = document.createElement("button");
    close.type = "button";
    close.className = "btn btn-sm";
    close.setAttribute("data-toast-close", "");
    close.textContent = "Dismiss";
    el.appendChild(close);
    var box = toasts();
    box.appendChild(el);
    while (box.children.length > 3) box.removeChild(box.firstChild);
  }

  function plainToast(text) {
    var el = document.createElement("div");
    el.className = "toast";
    el.setAttribute("role", "alert");
    el.setAttribute("data-toast", "");
    el.textContent = text;
    return el;
  }

  document.addEventListener("htmx:responseError", function (e) {
    var xhr = e.detail && e.detail.xhr;
    if (!xhr) return;
    var tpl = document.createElement("template");
    tpl.innerHTML = xhr.responseText || "";
    var el = tpl.content.querySelector("[data-toast]");
    toast(el || plainToast("The server answered " + xhr.status + (xhr.statusText ? " " + xhr.statusText : "") + "; nothing was changed on this page."));
  });

  document.addEventListener("htmx:sendError", function () {
    toast(plainToast("The server cannot be reached: check the network, then try again."));
  });

  document.addEventListener("click", function (e) {
    var btn = e.target && e.target.closest ? e.target.closest("[data-toast-close]") : null;
    if (btn) btn.closest("[data-toast]").remove();
  });

  // ---------- the Run form's shell ----------

  function placeholder(sel) {
    var form = sel.closest("form");
    var script = form && form.querySelector("textarea[name=script]");
    var opt = sel.options[sel.selectedIndex];
    if (script && opt && opt.hasAttribute("data-placeholder")) {
      script.placeholder = opt.getAttribute("data-placeholder") || "Choose a shell first";
    }
  }

  function applyShell(preview) {
    var form = preview.closest ? preview.closest("form") : null;
    var sel = form && form.querySelector("select[data-shell-select]");
    if (!sel || !preview.hasAttribute("data-shell") || sel.hasAttribute("data-chosen")) return;
    if (preview.querySelector(".preview-error")) return; // no target to read yet
    var want = preview.getAttribute("data-shell") || "";
    if (want === "" && !sel.querySelector("option[value='']")) {
      var none = document.createElement("option");
      none.value = "";
      none.textContent = "Choose a shell…";
      none.setAttribute("data-placeholder", "");
      sel.insertBefore(none, sel.firstChild);
    }
    sel.value = want;
    var hint = form.querySelector("[data-shell-hint]");
    if (hint) {
      hint.textContent = preview.getAttribute("data-shell-hint") || "";
      hint.hidden = hint.textContent === "";
    }
    placeholder(sel);
  }

  document.addEventListener("change", function (e) {
    var sel = e.target;
    if (!sel || !sel.matches || !sel.matches("select[data-shell-select]")) return;
    sel.setAttribute("data-chosen", "");
    placeholder(sel);
    var hint = sel.closest("form") && sel.closest("form").querySelector("[data-shell-hint]");
    if (hint && sel.value !== "") hint.hidden = true;
  });

  document.addEventListener("htmx:load", function (e) {
    if (e.target && e.target.id === "run-preview") applyShell(e.target);
  });
})();
