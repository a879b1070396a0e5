// Console behaviour: live updates over server-sent events, SLA countdowns, inserts, keyboard shortcuts.
(function () {
  "use strict";
  const live = document.querySelector("[data-live]");

  // --- SLA countdowns: "12:34 left" / "-3:10" ticking every second.
  function fmt(ms) {
    const neg = ms < 0;
    let s = Math.floor(Math.abs(ms) / 1000);
    const h = Math.floor(s / 3600); s -= h * 3600;
    const m = Math.floor(s / 60); s -= m * 60;
    const body = (h ? h + ":" + String(m).padStart(2, "0") : m) + ":" + String(s).padStart(2, "0");
    return (neg ? "-" : "") + body;
  }
  function tick() {
    const now = Date.now();
    for (const el of document.querySelectorAll(".countdown[data-due]")) {
      const left = Date.parse(el.dataset.due) - now;
      el.textContent = fmt(left);
      el.classList.toggle("late", left < 0);
    }
  }
  tick();
  setInterval(tick, 1000);

  // --- Insert a suggestion or canned reply into the reply box.
  document.addEventListener("click", (ev) => {
    const btn = ev.target.closest("button.insert");
    if (!btn) return;
    const box = document.getElementById("reply-body");
    if (!box) return;
    box.value = box.value ? box.value + "\n" + btn.dataset.insert : btn.dataset.insert;
    box.focus();
  });

  // --- Keyboard shortcuts.
  document.addEventListener("keydown", (ev) => {
    const box = document.getElementById("reply-body");
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey) && box && document.activeElement === box) {
      ev.preventDefault();
      document.getElementById("composer").requestSubmit();
    } else if (ev.altKey && (ev.key === "n" || ev.key === "N")) {
      const toggle = document.getElementById("internal-toggle");
      if (toggle) { ev.preventDefault(); toggle.checked = !toggle.checked; if (box) box.focus(); }
    } else if (ev.altKey && (ev.key === "r" || ev.key === "R")) {
      const form = document.querySelector("form[id^='resolve-']");
      if (form) { ev.preventDefault(); form.requestSubmit(); }
    } else if (ev.key === "/" && !["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement.tagName)) {
      const search = document.getElementById("search");
      if (search) { ev.preventDefault(); search.focus(); }
    }
  });

  if (!live || !window.EventSource) return;

  // One fetch at a time per kind; a call while one is in flight fetches again when it is done (the
  // one in flight may have been answered before what the new event announces was stored).
  function serialised(fetchOnce) {
    let running = null;
    let again = false;
    return function () {
      if (running) { again = true; return running; }
      running = (async () => {
        try {
          do { again = false; await fetchOnce(); } while (again);
        } finally { running = null; again = false; }
      })();
      return running;
    };
  }

  const refreshInbox = serialised(async function () {
    const target = document.getElementById(live.dataset.target);
    const res = await fetch(live.dataset.refresh, { credentials: "same-origin" });
    if (!res.ok) return;
    target.innerHTML = await res.text();  // server-rendered, autoescaped HTML
    const count = document.getElementById("case-count");
    if (count) count.textContent = target.querySelectorAll("tbody tr").length;
    tick();
  });

  const appendMessages = serialised(async function () {
    const list = document.getElementById("messages");
    const res = await fetch(live.dataset.append + "?after=" + live.dataset.last, { credentials: "same-origin" });
    if (!res.ok) return;
    const tpl = document.createElement("template");
    tpl.innerHTML = await res.text();
    for (const li of tpl.content.querySelectorAll("li.msg")) {
      if (document.getElementById(li.id)) continue;
      list.append(li);
      live.dataset.last = Math.max(Number(live.dataset.last), Number(li.dataset.id));
      li.scrollIntoView({ block: "end" });
    }
  });

  const refreshSide = serialised(async function () {
    const res = await fetch(window.location.pathname, { credentials: "same-origin" });
    if (!res.ok) return;
    const doc = new DOMParser().parseFromString(await res.text(), "text/html");
    const fresh = doc.querySelector(".group-layout > aside");
    const current = document.querySelector(".group-layout > aside");
    if (fresh && current) { current.replaceWith(fresh); tick(); }
  });

  const source = new EventSource(live.dataset.live);
  if (live.dataset.append) {
    source.addEventListener("message.new", appendMessages);
    source.addEventListener("case.status", refreshSide);
    source.addEventListener("sla", refreshSide);
    source.onopen = appendMessages;
    const list = document.getElementById("messages");
    if (list && list.lastElementChild) list.lastElementChild.scrollIntoView({ block: "end" });
  } else {
    for (const type of ["case.new", "case.status", "message.new", "group.new", "sla"]) {
      source.addEventListener(type, refreshInbox);
    }
  }
})();
