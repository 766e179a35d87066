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
