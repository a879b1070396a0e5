// Web chat: one session per browser (HttpOnly cookie), live updates over server-sent events.
(function () {
  "use strict";
  const root = document.getElementById("chat");
  const tx = JSON.parse(root.dataset.tx);
  const locale = root.dataset.locale;
  const list = document.getElementById("messages");
  const composer = document.getElementById("composer");
  const start = document.getElementById("start");
  const errorBox = document.getElementById("error");
  let lastId = 0;
  let events = null;

  function showError(text) {
    errorBox.textContent = text;
    errorBox.hidden = !text;
  }

  async function api(method, path, body) {
    const res = await fetch("/api/v1/webchat/" + path, {
      method: method,
      credentials: "same-origin",
      headers: body ? { "Content-Type": "application/json" } : {},
      body: body ? JSON.stringify(body) : undefined,
    });
    if (!res.ok) {
      let detail = tx.error;
      try { detail = (await res.json()).detail || detail; } catch (e) { /* not JSON */ }
      const err = new Error(typeof detail === "string" ? detail : tx.error);
      err.status = res.status;
      throw err;
    }
    return res.json();
  }

  function who(m) {
    if (m.author_kind === "customer") return tx.you;
    if (m.author_kind === "staff") return m.signature || m.author_name;
    if (m.author_kind === "bot") return tx.bot;
    return tx.system;
  }

  function render(m) {
    if (document.getElementById("m" + m.id)) return;
    const li = document.createElement("li");
    li.className = "msg " + m.author_kind;
    li.id = "m" + m.id;
    const head = document.createElement("div");
    head.className = "who";
    head.textContent = who(m);  // textContent: customer and staff text is never parsed as HTML
    const body = document.createElement("div");
    body.className = "body";
    body.textContent = m.body;
    li.append(head, body);
    if (m.buttons && m.buttons.length) {
      const row = document.createElement("div");
      row.className = "buttons";
      for (const b of m.buttons) {
        const btn = document.createElement("button");
        btn.type = "button";
        btn.className = "secondary";
        btn.textContent = b.label;
        btn.dataset.button = b.id;
        btn.addEventListener("click", async () => {
          row.querySelectorAll("button").forEach((x) => { x.disabled = true; });
          try { await api("POST", "buttons", { message_id: m.id, button: b.id }); showError(""); }
          catch (e) { showError(e.message); }
          refresh();
        });
        row.append(btn);
      }
      li.append(row);
    }
    list.append(li);
    li.scrollIntoView({ block: "end" });
    lastId = Math.max(lastId, m.id);
  }

  // One fetch at a time. A refresh asked for while one is in flight (the POST's answer, a live
  // event) fetches again once it is done: the one in flight may have been answered before the new
  // message was stored, and returning it would drop that message until the next event.
  let refreshing = null;
  let again = false;
  async function refresh() {
    if (refreshing) { again = true; return refreshing; }
    refreshing = (async () => {
      try {
        do {
          again = false;
          const page = await api("GET", "messages?after=" + lastId);
          page.items.forEach(render);
        } while (again);
      } catch (e) {
        if (e.status === 404) { return begin(); }
        showError(e.message);
      } finally { refreshing = null; again = false; }
    })();
    return refreshing;
  }

  function listen() {
    if (events) events.close();
    events = new EventSource("/api/v1/webchat/events");
    events.addEventListener("message.new", refresh);
    events.onopen = refresh;  // catch up on whatever arrived while disconnected
  }

  async function begin() {
    start.hidden = false;
    composer.hidden = true;
  }

  start.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      await api("POST", "sessions", { display_name: document.getElementById("name").value, locale: locale });
      start.hidden = true;
      composer.hidden = false;
      showError("");
      listen();
      refresh();
    } catch (e) { showError(e.message); }
  });

  composer.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const box = document.getElementById("text");
    const text = box.value.trim();
    if (!text) return;
    const id = (crypto.randomUUID && crypto.randomUUID()) || String(Date.now()) + Math.random();
    try {
      await api("POST", "messages", { text: text, client_message_id: id });
      box.value = "";
      showError("");
      refresh();
    } catch (e) { showError(e.message); }
  });

  document.getElementById("text").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey) { ev.preventDefault(); composer.requestSubmit(); }
  });

  (async () => {
    if (root.dataset.session !== "yes") return begin();
    try {
      await api("GET", "messages?after=0").then((page) => page.items.forEach(render));
      composer.hidden = false;
      listen();
    } catch (e) {
      begin();
    }
  })();
})();
