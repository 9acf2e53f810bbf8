// Caroud dashboard: polls the JSON endpoint every second and re-renders in place.
// Plain DOM, no framework, no network beyond this server. Text goes in through
// textContent only, so nothing read from Redis is ever parsed as HTML.
(function () {
  "use strict";

  const body = document.body;
  const url = body.dataset.url;
  const every = Number(body.dataset.refreshMs) || 1000;
  const COLORS = ["#58a6ff", "#3fb950", "#d29922", "#a371f7", "#f778ba", "#39c5cf", "#ff7b72"];
  let refreshes = 0;
  let lastOk = 0;
  let lastAlarms = [];  // the last known alarms: shown as unknown while there is no data
  const colorOf = new Map();

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null) continue;
      if (key === "class") node.className = value;
      else if (key === "style") node.setAttribute("style", value);
      else if (key.startsWith("data-")) node.setAttribute(key, value);
      else node[key] = value;
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function wait(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    if (seconds < 10) return seconds.toFixed(1) + " s";
    if (seconds < 60) return Math.round(seconds) + " s";
    const m = Math.floor(seconds / 60);
    if (m < 60) return m + "m " + String(Math.round(seconds % 60)).padStart(2, "0") + "s";
    return Math.floor(m / 60) + "h " + String(m % 60).padStart(2, "0") + "m";
  }

  function num(value, digits) {
    if (value === null || value === undefined) return "–";
    return Number(value).toLocaleString("en-US", {maximumFractionDigits: digits || 0});
  }

  function bytes(value) {
    if (value === null || value === undefined) return "–";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let v = value, i = 0;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return v.toFixed(v < 10 && i ? 1 : 0) + " " + units[i];
  }

  function meter(value, max, text) {
    const ratio = max > 0 ? Math.min(value / max, 1) : 0;
    return el("div", {class: "meter"},
      el("div", {class: "track"},
        el("div", {class: "fill" + (ratio >= 1 ? " full" : ""), style: "width:" + (ratio * 100).toFixed(1) + "%"})),
      el("span", {}, text));
  }

  function rows(tbody, items, columns, build, emptyText) {
    tbody.replaceChildren(...(items.length
      ? items.map(build)
      : [el("tr", {class: "empty"}, el("td", {colSpan: columns}, emptyText))]));
  }

  // -- sections --------------------------------------------------------------------------

  // data null: no figures (Redis down): every figure reads "–", the header keeps its shape
  function renderSummary(data) {
    const r = data ? data.redis : {};
    const items = [
      ["Waiting", data && num(data.queues.reduce((n, q) => n + q.waiting, 0)), "sum-waiting"],
      ["Slots used", data && num(data.pool.used) + " / " + num(data.pool.capacity), "sum-slots"],
      ["Servers", data && num(data.pool.servers), "sum-servers"],
      ["Workers", data && num(data.workers), "sum-workers"],
      ["Redis memory", data && bytes(r.memory_used_bytes) +
        (r.memory_percent === null ? "" : " · " + num(r.memory_percent, 1) + " %"), "sum-memory"],
      ["Ops/s", data && num(r.ops_per_s), "sum-ops"],
      ["Latency", data && r.latency_ms !== null ? num(r.latency_ms, 3) + " ms" : "–", "sum-latency"],
      ["Clients", data && num(r.connections), "sum-clients"],
    ];
    document.getElementById("summary").replaceChildren(...items.map(([label, value, id]) =>
      el("div", {}, el("dt", {}, label), el("dd", {id: id}, value || "–"))));
  }

  function renderAlarms(alarms) {
    const firing = alarms.filter((a) => a.firing);
    const list = document.getElementById("alarms");
    const items = firing.map((a) =>
      el("li", {class: "firing" + (a.critical ? " critical" : ""), "data-alarm": a.name},
        el("b", {}, a.label), " — " + a.message));
    if (!firing.length) {
      items.push(el("li", {class: "clear", "data-alarm": "none"}, "No alarm firing"));
    }
    for (const a of alarms.filter((x) => !x.firing)) {
      items.push(el("li", {"data-alarm": a.name, title: a.message}, el("b", {}, a.label), " " + okText(a)));
    }
    list.replaceChildren(...items);
    document.title = (firing.length ? "(" + firing.length + ") " : "") + "Caroud dashboard";
  }

  function okText(a) {
    if (a.value === null) return "unknown";
    if (a.name === "worker") return a.value + " alive";
    if (a.name === "no_capacity") return "ok";
    if (a.name.endsWith("percent")) return num(a.value, 1) + " %";
    if (a.name === "latency_ms") return num(a.value, 3) + " ms";
    return num(a.value);
  }

  function renderQueues(queues) {
    queues.forEach((q, i) => { if (!colorOf.has(q.name)) colorOf.set(q.name, COLORS[i % COLORS.length]); });
    rows(document.querySelector("#queues tbody"), queues, 8, (q) =>
      el("tr", {"data-queue": q.name},
        el("td", {title: q.name + " (" + q.players_per_match + " players a match)"},
          el("span", {class: "swatch", style: "background:" + colorOf.get(q.name)}), q.name),
        el("td", {class: "num waiting"}, num(q.waiting)),
        el("td", {class: "num oldest"}, wait(q.oldest_wait_s)),
        el("td", {class: "num p50"}, wait(q.p50_wait_s)),
        el("td", {class: "num p95"}, wait(q.p95_wait_s)),
        el("td", {class: "num gap", title: "over the newest " + q.recent_matches + " matches"},
          q.rating_gap === null ? "–" : num(q.rating_gap, 1)),
        el("td", {class: "num imbalance", title: "mean |P(win) - 0.5|, Elo on team means"},
          q.imbalance === null ? "–" : num(q.imbalance * 100, 1) + " %"),
        el("td", {class: "num for-server" + (q.stuck_matches ? " bad" : "")}, num(q.waiting_for_server))),
      "no queue configured");
  }

  function renderHistogram(labels, queues) {
    const totals = labels.map((_, i) => queues.reduce((n, q) => n + q.histogram[i], 0));
    const max = Math.max(1, ...totals);
    const cols = labels.map((label, i) => {
      const parts = queues.filter((q) => q.histogram[i] > 0);
      const title = label + ": " + (parts.map((q) => q.name + " " + q.histogram[i]).join(", ") || "none");
      const segs = parts.map((q) => el("div", {
        class: "hseg",
        style: "height:" + (100 * q.histogram[i] / max).toFixed(2) + "%;background:" + colorOf.get(q.name),
      }));
      return el("div", {class: "hcol", title: title, "data-bucket": label, "data-count": totals[i]},
        el("div", {class: "hstack"}, ...segs,
          el("div", {class: "hcount" + (totals[i] ? "" : " zero")}, num(totals[i]))),
        el("div", {class: "hlabel"}, label));
    });
    document.getElementById("histogram").replaceChildren(...cols);
    document.getElementById("legend").replaceChildren(...queues.map((q) =>
      el("li", {}, el("span", {class: "swatch", style: "background:" + colorOf.get(q.name)}), q.name)));
  }

  // good: within the window a fresh ticket accepts; fair: within half the widest one
  function spreadClass(m) {
    if (m.spread <= m.window[0]) return "good";
    return m.spread <= m.window[1] / 2 ? "fair" : "wide";
  }

  function renderMatches(matches) {
    document.getElementById("matches-count").textContent = matches.length ? "newest " + matches.length : "";
    rows(document.querySelector("#matches tbody"), matches, 8, (m) =>
      el("tr", {"data-match": m.id},
        el("td", {class: "mono", title: m.id}, m.id),
        el("td", {class: "queue"}, el("span", {class: "swatch", style: "background:" + (colorOf.get(m.queue) || "#888")}), m.queue),
        el("td", {class: "num players"}, num(m.players)),
        el("td", {class: "num spread " + spreadClass(m), title: "rating spread " + m.spread +
          " (the window opens at " + m.window[0] + " and widens to " + m.window[1] + ")"}, num(m.spread, 0)),
        el("td", {class: "region", title: m.region}, m.region),
        el("td", {class: "mono server", title: m.server_id || "no server yet"}, m.server || "—"),
        el("td", {class: "status"}, el("span", {class: "pill " + m.status}, m.status)),
        el("td", {class: "num"}, wait(m.age_s))),
      "no match formed recently");
  }

  function renderServers(pool) {
    const more = pool.servers > pool.shown ? ", showing " + pool.shown + " of " + pool.servers : "";
    document.getElementById("pool-summary").textContent =
      pool.name + ": " + pool.used + " / " + pool.capacity + " slots" + more +
      " · no capacity " + pool.no_capacity;
    rows(document.querySelector("#servers tbody"), pool.list, 6, (s) =>
      el("tr", {"data-server": s.id},
        el("td", {class: "mono", title: s.id}, s.id),
        el("td", {title: s.region}, s.region),
        el("td", {class: "mono address"}, s.address),
        el("td", {class: "slots"}, meter(s.used, s.capacity, s.used + "/" + s.capacity)),
        el("td", {}, el("span", {class: "pill state " + s.state}, s.state)),
        el("td", {class: "num load"}, num(s.load, 2))),
      "no game server registered");
  }

  // What a failed refresh means, first among the alarms: the data view answers 503 with
  // the API's error (code redis_*) when Redis is down; no answer at all is no data. The
  // other alarms become unknown: nothing is known about the worker or the pool meanwhile.
  function renderFailure(failure) {
    const redis = failure.code.startsWith("redis");
    const first = {
      name: redis ? "redis" : "data",
      label: redis ? "Redis down" : "No data",
      firing: true,
      critical: true,
      message: failure.message,
    };
    const unknown = lastAlarms.map((a) =>
      ({name: a.name, label: a.label, firing: false, value: null, message: "unknown: no data"}));
    renderSummary(null);
    renderAlarms([first, ...unknown]);
    return first.label;
  }

  function render(data) {
    lastAlarms = data.alarms;
    renderQueues(data.queues);
    renderSummary(data);
    renderAlarms(data.alarms);
    renderHistogram(data.wait_buckets, data.queues);
    renderMatches(data.matches);
    renderServers(data.pool);
  }

  // -- the loop ---------------------------------------------------------------------------

  function setStatus(ok, text) {
    const status = document.getElementById("status");
    status.className = "status " + (ok ? "live" : "error");
    status.title = text;
    document.getElementById("status-text").textContent = text;
    body.classList.toggle("stale", !ok);
  }

  // {data} on success, else {failure: {code, message}} (the API's error shape when it has one)
  async function fetchData() {
    let response;
    try {
      response = await fetch(url, {cache: "no-store", headers: {Accept: "application/json"}});
    } catch (error) {
      return {failure: {code: "unreachable", message: "the dashboard's server did not answer (" +
        String(error.message || error) + ")"}};
    }
    const answer = await response.json().catch(() => null);
    if (response.ok && answer) return {data: answer};
    if (answer && answer.error) {
      return {failure: {code: answer.error.code || "", message: answer.error.message}};
    }
    return {failure: {code: "http", message: "HTTP " + response.status + " from " + url}};
  }

  async function refresh() {
    try {
      const {data, failure} = await fetchData();
      if (failure) {
        const what = renderFailure(failure);
        const since = lastOk ? " · last update " + Math.round((Date.now() - lastOk) / 1000) + " s ago" : "";
        setStatus(false, what + since);
        return;
      }
      render(data);
      refreshes += 1;
      lastOk = Date.now();
      body.dataset.refreshes = String(refreshes);
      setStatus(true, "live · " + new Date(data.server_time * 1000).toISOString().slice(11, 19) + " UTC");
    } catch (error) {  // a bug of this page: say so rather than stop refreshing
      setStatus(false, "page error: " + String(error.message || error));
    } finally {
      body.dataset.attempts = String(Number(body.dataset.attempts || 0) + 1);
      setTimeout(refresh, every);
    }
  }

  refresh();
})();
