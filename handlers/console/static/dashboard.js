// Manager dashboard: live tiles (server-sent hints -> refetch the tiles fragment) and Chart.js charts
// whose points open the cases behind them. No inline handlers: everything is wired up here.
(function () {
  "use strict";
  const root = document.getElementById("dashboard");
  if (!root) return;

  // A chart's "?" opens the definitions panel it points at.
  const help = document.getElementById("dash-help");
  for (const link of document.querySelectorAll("a.help-link")) {
    link.addEventListener("click", function () { if (help) help.open = true; });
  }

  // --- live tiles ---------------------------------------------------------------------------------
  const tiles = document.getElementById("tiles");
  let pending = null;
  let busy = false;
  let again = false;
  async function refreshTiles() {
    // An event during a fetch fetches again afterwards: the fetch in flight may predate it.
    if (busy) { again = true; return; }
    busy = true;
    try {
      do {
        again = false;
        const res = await fetch(root.dataset.tiles, { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } });
        if (res.ok) tiles.innerHTML = await res.text();  // server-rendered, autoescaped HTML
      } while (again);
    } catch (err) {
      // offline for a moment: the next event or tick tries again
    } finally {
      busy = false;
      again = false;
    }
  }
  function soon() {
    if (pending) return;
    pending = setTimeout(function () { pending = null; refreshTiles(); }, 1000);
  }
  if (window.EventSource && root.dataset.events) {
    const source = new EventSource(root.dataset.events);
    const types = ["case.new", "sla.warned", "sla.breached", "sla.escalated", "sla.reassigned", "sla.met", "sla.scheduled"];
    for (const type of types) source.addEventListener(type, soon);
    source.onmessage = soon;
  }
  // Time alone moves clocks into "at risk", and status changes are not broadcast on these topics.
  setInterval(refreshTiles, 30000);

  // --- charts -------------------------------------------------------------------------------------
  const dataEl = document.getElementById("dash-data");
  if (!dataEl) return;
  const specs = JSON.parse(dataEl.textContent);
  if (typeof window.Chart !== "function") {
    const note = document.getElementById("dash-no-charts");
    if (note) note.hidden = false;
    return;
  }
  const palette = ["#1f6feb", "#d92d20", "#12b76a", "#f79009", "#7a5af8", "#0ba5ec"];

  function build(canvas, spec) {
    const horizontal = !!spec.horizontal;
    const datasets = spec.datasets.map(function (ds, i) {
      const color = palette[i % palette.length];
      return {
        label: ds.label,
        data: ds.data,
        borderColor: color,
        backgroundColor: spec.type === "bar" ? color + "cc" : color,
        borderDash: spec.type === "line" && i >= 2 && spec.unit === "min" ? [6, 4] : [],
        pointRadius: 3,
        pointHitRadius: 10,
        spanGaps: true,
        tension: 0,
      };
    });
    const valueAxis = { beginAtZero: true };
    if (spec.max) valueAxis.max = spec.max;
    const unit = spec.unit === "%" ? "%" : spec.unit ? " " + spec.unit : "";
    return new window.Chart(canvas, {
      type: spec.type,
      data: { labels: spec.labels, datasets: datasets },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        indexAxis: horizontal ? "y" : "x",
        interaction: { mode: "nearest", intersect: true },
        scales: horizontal ? { x: valueAxis } : { y: valueAxis },
        plugins: {
          legend: { display: datasets.length > 1 },
          tooltip: {
            callbacks: {
              label: function (ctx) {
                const v = horizontal ? ctx.parsed.x : ctx.parsed.y;
                return ctx.dataset.label + ": " + (v === null || v === undefined ? "–" : v + unit);
              },
            },
          },
        },
        onHover: function (event, elements) {
          event.native.target.style.cursor = elements.length ? "pointer" : "default";
        },
        onClick: function (event, elements) {
          if (!elements.length) return;
          const el = elements[0];
          const url = spec.datasets[el.datasetIndex].drill[el.index];
          if (url) window.location.assign(url);
        },
      },
    });
  }

  for (const canvas of document.querySelectorAll("canvas[data-chart]")) {
    const spec = specs[canvas.dataset.chart];
    if (spec) build(canvas, spec);
  }
})();

// Each chart's numbers as a table of drill-down links, built when its "data" panel is opened
// (text nodes only: names in the data never become markup). Works without Chart.js too.
(function () {
  "use strict";
  const dataEl = document.getElementById("dash-data");
  if (!dataEl) return;
  const specs = JSON.parse(dataEl.textContent);
  const none = "–";
  function cell(tag, text, href) {
    const el = document.createElement(tag);
    if (href) {
      const a = document.createElement("a");
      a.href = href;
      a.textContent = text;
      el.append(a);
    } else {
      el.textContent = text;
    }
    return el;
  }
  function table(spec) {
    const t = document.createElement("table");
    t.className = "cases compact";
    const head = t.createTHead().insertRow();
    head.append(cell("th", ""));
    for (const ds of spec.datasets) head.append(cell("th", ds.label));
    const body = t.createTBody();
    spec.labels.forEach(function (label, i) {
      const row = body.insertRow();
      row.append(cell("th", label));
      for (const ds of spec.datasets) {
        const v = ds.data[i];
        const text = v === null || v === undefined ? none : String(v) + (spec.unit === "%" ? "%" : "");
        row.append(cell("td", text, ds.drill[i]));
      }
    });
    return t;
  }
  for (const details of document.querySelectorAll("details[data-table-for]")) {
    details.addEventListener("toggle", function () {
      if (!details.open || details.querySelector("table")) return;
      const spec = specs[details.dataset.tableFor];
      if (spec) details.append(table(spec));
    });
  }
})();
