// 礼语 · 服务用语看板: the team leads' dashboard. Plain JavaScript, no framework, no build step.
//
// Message text is untrusted (agents and customers type it): every piece of server data reaches the
// page through textContent or text nodes, never innerHTML. Spans (start/end) are UTF-16 offsets,
// which are exactly JavaScript string indexes.
"use strict";

(function () {
  const CATEGORY = {
    deflection: "推诿塞责",
    impatience: "急躁不耐烦",
    condescension: "生硬指责",
    profanity: "粗俗辱骂",
    overpromise: "夸大承诺",
    privacy: "泄露隐私",
    greeting: "缺少迎声",
    farewell: "缺少送声",
    slow_reply: "回复不及时",
  };
  const SEVERITY = { block: "严重", warn: "警告", info: "提示" };
  const ACTION = {
    delivered: "已送达",
    blocked: "已拦截",
    overridden: "强制发送",
    recorded: "已记录",
  };
  const VERDICT = { confirmed: "已确认违规", false_positive: "误报" };
  const ROLE = { agent: "坐席", customer: "客户" };
  const HOUR = 3600 * 1000;
  const DAY = 24 * HOUR;
  const PAGE = 50;
  const FEED_MAX = 200;

  const $ = (id) => document.getElementById(id);

  // ---------------------------------------------------------------- DOM helpers (no innerHTML)

  // h("td", {class: "num", text: "3", data: {rule: "x"}, title: "…", onclick: fn}, [children])
  function h(tag, props, children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === undefined || v === null) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k === "data") for (const [dk, dv] of Object.entries(v)) node.dataset[dk] = dv;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v);
    }
    for (const c of children || []) {
      if (c === null || c === undefined) continue;
      node.append(typeof c === "string" ? document.createTextNode(c) : c);
    }
    return node;
  }

  // The text as three text nodes with the span wrapped in <mark>.
  function highlighted(text, start, end, cls) {
    const span = h("span", { class: cls || "hl", "data-testid": "message-text" });
    const t = typeof text === "string" ? text : "";
    if (t === "") {
      span.append(h("span", { class: "muted", text: "(会话级记录,无消息原文)" }));
      return span;
    }
    const ok = Number.isInteger(start) && Number.isInteger(end) && start >= 0 && start <= end && end <= t.length;
    if (!ok || start === end) {
      span.append(document.createTextNode(t));
      return span;
    }
    span.append(
      document.createTextNode(t.slice(0, start)),
      h("mark", {}, [document.createTextNode(t.slice(start, end))]),
      document.createTextNode(t.slice(end)),
    );
    return span;
  }

  const badge = (cls, label, testid) => h("span", { class: "badge " + cls, text: label, "data-testid": testid });
  const categoryBadge = (c) => badge("cat-" + c, CATEGORY[c] || c, "category");
  const severityBadge = (s) => badge("sev-badge-" + s, SEVERITY[s] || s, "severity");
  const actionBadge = (a) => badge("act-" + a, ACTION[a] || a, "action");

  // ---------------------------------------------------------------- formatting

  const pad = (n) => String(n).padStart(2, "0");
  function fmtTime(ms, withDate) {
    const d = new Date(ms);
    const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
    const today = new Date();
    if (!withDate && d.toDateString() === today.toDateString()) return time;
    return `${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time}`;
  }
  const fmtFull = (ms) => new Date(ms).toLocaleString("zh-CN", { hour12: false });
  const fmtInt = (n) => (n === null || n === undefined ? "—" : Number(n).toLocaleString("zh-CN"));
  const fmtRate = (v) => (v === null || v === undefined || !isFinite(v) ? "—" : Number(v).toFixed(2));
  function fmtShare(v) {
    if (v === null || v === undefined || !isFinite(v)) return "—";
    return `${Math.round(v * 1000) / 10}%`;
  }
  function fmtDuration(ms) {
    if (ms === null || ms === undefined) return "—";
    const s = ms / 1000;
    if (s < 60) return `${s.toFixed(1)} 秒`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m} 分 ${Math.round(s - m * 60)} 秒`;
    return `${Math.floor(m / 60)} 小时 ${m % 60} 分`;
  }
  // A rule's category: its id's prefix for lexicon rules, fixed for the conversation rules.
  const CONVERSATION_RULES = {
    "conversation.greeting": "greeting",
    "conversation.farewell": "farewell",
    "conversation.slow-reply": "slow_reply",
  };
  const ruleCategory = (rule) => CONVERSATION_RULES[rule] || String(rule || "").split(".")[0];

  // ---------------------------------------------------------------- API

  class ApiError extends Error {}

  async function api(path, options) {
    const opts = Object.assign({ credentials: "same-origin", headers: {} }, options || {});
    opts.headers = Object.assign({ Accept: "application/json" }, opts.headers);
    if (opts.body !== undefined) opts.headers["Content-Type"] = "application/json";
    const res = await fetch(path, opts);
    if (res.status === 401) {
      location.assign("/login");
      throw new ApiError("登录已失效,请重新登录");
    }
    let body = null;
    try {
      body = await res.json();
    } catch (e) {
      body = null;
    }
    if (!res.ok) {
      const why = body && typeof body.error === "string" ? body.error : `HTTP ${res.status}`;
      throw new ApiError(`请求失败:${why}`);
    }
    return body;
  }

  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  let toastTimer = 0;
  function toast(message, isError) {
    const t = $("toast");
    t.textContent = message;
    t.className = "toast" + (isError ? " error" : "");
    t.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => (t.hidden = true), isError ? 5000 : 2500);
  }
  const fail = (e) => toast(e && e.message ? e.message : String(e), true);

  // ---------------------------------------------------------------- time range

  function rangeBounds() {
    const now = Date.now();
    switch ($("range").value) {
      case "1h":
        return { since: now - HOUR };
      case "24h":
        return { since: now - DAY };
      case "7d":
        return { since: now - 7 * DAY };
      case "30d":
        return { since: now - 30 * DAY };
      case "custom": {
        const s = $("range-since").value ? new Date($("range-since").value).getTime() : undefined;
        const u = $("range-until").value ? new Date($("range-until").value).getTime() : undefined;
        return { since: isFinite(s) ? s : undefined, until: isFinite(u) ? u : undefined };
      }
      default:
        return {};
    }
  }

  function addRange(params, b) {
    if (b.since !== undefined) params.set("since", String(Math.floor(b.since)));
    if (b.until !== undefined) params.set("until", String(Math.floor(b.until)));
    return params;
  }

  // ---------------------------------------------------------------- verdicts and review

  // Updates every view of a finding (feed item, table row, dialog) after a review.
  function applyVerdict(f) {
    for (const node of document.querySelectorAll("[data-finding-id]")) {
      if (node.dataset.findingId !== String(f.id)) continue;
      showVerdict(node, f.verdict);
    }
  }

  function showVerdict(container, verdict) {
    const label = container.querySelector("[data-testid=verdict]");
    if (label) {
      label.textContent = VERDICT[verdict] || "待复核";
      label.dataset.verdict = verdict || "";
    }
    for (const b of container.querySelectorAll("button[data-verdict]")) {
      b.setAttribute("aria-pressed", String(b.dataset.verdict === verdict));
    }
    container.classList.toggle("is-fp", verdict === "false_positive");
    container.dataset.verdict = verdict || "";
  }

  // The confirm / false-positive controls. getId resolves the finding's id (live events carry none);
  // getNote returns the reviewer's note, if any.
  function reviewControls(f, getId, getNote) {
    const wrap = h("div", { class: "review" });
    const label = h("span", { class: "verdict", "data-testid": "verdict", text: "" });
    const buttons = [
      ["confirmed", "确认违规", "btn-confirm", "confirm-button"],
      ["false_positive", "误报", "btn-fp", "fp-button"],
    ].map(([verdict, text, cls, testid]) =>
      h("button", {
        type: "button",
        class: "btn btn-sm " + cls,
        text,
        "data-testid": testid,
        data: { verdict },
        "aria-pressed": "false",
        onclick: async (e) => {
          e.stopPropagation();
          buttons.forEach((b) => (b.disabled = true));
          try {
            const id = await getId();
            const body = { verdict };
            const note = getNote ? getNote() : "";
            if (note) body.note = note;
            const updated = await api(`/v1/findings/${encodeURIComponent(id)}/review`, {
              method: "POST",
              body: JSON.stringify(body),
            });
            applyVerdict(updated);
            toast(verdict === "false_positive" ? "已标记为误报" : "已确认违规");
            loadStats();
          } catch (err) {
            fail(err);
          } finally {
            buttons.forEach((b) => (b.disabled = false));
          }
        },
      }),
    );
    wrap.append(label, ...buttons);
    return wrap;
  }

  // ---------------------------------------------------------------- live feed

  let feedReceived = 0;

  // A live event has no id (the store writes it a moment later): find the stored row it became.
  async function resolveId(f) {
    if (f.id !== null && f.id !== undefined) return f.id;
    for (let attempt = 0; attempt < 20; attempt++) {
      const p = new URLSearchParams({ rule: f.rule, limit: "100" });
      p.set("since", String(f.at_ms - 2000));
      p.set("until", String(f.at_ms + 2001));
      if (f.conversation) p.set("conversation", f.conversation);
      if (f.agent) p.set("agent", f.agent);
      const page = await api("/v1/findings?" + p);
      const same = page.items
        .filter((it) => it.start === f.start && it.end === f.end && it.text === f.text && it.action === f.action)
        .sort((a, b) => Math.abs(a.at_ms - f.at_ms) - Math.abs(b.at_ms - f.at_ms));
      if (same.length) return same[0].id;
      await sleep(300);
    }
    throw new ApiError("该记录尚未写入存储,请稍后再试");
  }

  function feedItem(f) {
    const li = h("li", {
      class: `feed-item sev-${f.severity} fresh`,
      "data-testid": "feed-item",
      data: { rule: f.rule, category: f.category },
    });
    if (f.id !== null && f.id !== undefined) li.dataset.findingId = String(f.id);
    const getId = async () => {
      if (li.dataset.findingId) return Number(li.dataset.findingId);
      const id = await resolveId(f);
      li.dataset.findingId = String(id);
      return id;
    };
    const controls = reviewControls(f, getId);
    li.append(
      h("div", { class: "feed-meta" }, [
        h("time", { text: fmtTime(f.at_ms), title: fmtFull(f.at_ms), datetime: new Date(f.at_ms).toISOString() }),
        h("span", { class: "who", text: f.agent || "未知坐席", "data-testid": "agent" }),
        f.conversation ? h("span", { class: "mono", text: "会话 " + f.conversation, "data-testid": "conversation" }) : null,
        h("span", { class: "feed-badges" }, [categoryBadge(f.category), severityBadge(f.severity), actionBadge(f.action)]),
      ]),
      h("p", { class: "feed-text" }, [highlighted(f.text, f.start, f.end)]),
      h("div", { class: "feed-foot" }, [
        h("code", { class: "rule", text: f.rule, title: f.message || "" }),
        controls,
        h("button", {
          type: "button",
          class: "btn btn-sm btn-ghost",
          text: "查看会话",
          "data-testid": "open-conversation",
          onclick: async () => {
            try {
              await openFinding(await getId());
            } catch (err) {
              fail(err);
            }
          },
        }),
      ]),
    );
    showVerdict(li, f.verdict || null);
    return li;
  }

  function addFeedItem(f) {
    const feed = $("feed");
    feed.prepend(feedItem(f));
    while (feed.children.length > FEED_MAX) feed.lastElementChild.remove();
    feedReceived += 1;
    $("feed-empty").hidden = true;
    $("feed-count").textContent = `本页打开后收到 ${feedReceived} 条`;
  }

  function setLive(state) {
    const el = $("live-status");
    el.dataset.state = state;
    $("live-status-text").textContent =
      state === "open" ? "实时连接中" : state === "closed" ? "实时连接已断开" : "正在连接…";
  }

  function connectEvents() {
    setLive("connecting");
    const es = new EventSource("/v1/events");
    es.onopen = () => setLive("open");
    es.addEventListener("finding", (e) => {
      let f;
      try {
        f = JSON.parse(e.data);
      } catch (err) {
        return;
      }
      if (!f || typeof f !== "object") return;
      addFeedItem(f);
      scheduleRefresh();
    });
    // The server dropped events for this page (it read too slowly): reload what they would have shown.
    es.addEventListener("lagged", () => {
      toast("部分实时动态未能及时送达,已刷新统计与记录");
      scheduleRefresh();
    });
    es.onerror = () => {
      if (es.readyState === EventSource.CLOSED) {
        setLive("closed");
        // A 401 (session gone) sends the page to /login; otherwise retry a little later.
        api("/v1/findings?limit=1").catch(() => {});
        setTimeout(connectEvents, 5000);
      } else {
        setLive("connecting");
      }
    };
  }

  let refreshTimer = 0;
  function scheduleRefresh() {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(() => {
      loadStats();
      if (findingPages <= 1 && !$("conversation").open) loadFindings(false);
      else $("findings-new").hidden = false;
    }, 1000);
  }

  // ---------------------------------------------------------------- findings table

  let findingsCursor = null;
  let findingsSeq = 0;
  let findingPages = 0;
  let findingsShown = 0;

  function filterParams() {
    const p = new URLSearchParams();
    const form = $("filters");
    for (const name of ["agent", "category", "rule", "severity", "action", "reviewed", "q"]) {
      const v = form.elements[name].value.trim();
      if (v) p.set(name, v);
    }
    return addRange(p, rangeBounds());
  }

  function updateExportLink() {
    const qs = filterParams().toString();
    $("export-csv").setAttribute("href", "/v1/export.csv" + (qs ? "?" + qs : ""));
  }

  function findingRow(f) {
    const tr = h("tr", {
      "data-testid": "finding-row",
      data: { findingId: String(f.id), rule: f.rule },
      title: "点击查看会话",
      onclick: (e) => {
        if (e.target.closest("button, a, input")) return;
        openFinding(f.id).catch(fail);
      },
    });
    tr.append(
      h("td", { class: "time", text: fmtTime(f.at_ms, true), title: fmtFull(f.at_ms) }),
      h("td", { text: f.agent || "—" }),
      h("td", { class: "mono", text: f.conversation || "—" }),
      h("td", {}, [categoryBadge(f.category)]),
      h("td", {}, [severityBadge(f.severity)]),
      h("td", {}, [actionBadge(f.action)]),
      h("td", { class: "msg" }, [highlighted(f.text, f.start, f.end), h("code", { class: "rule", text: f.rule })]),
      h("td", {}, [reviewControls(f, async () => f.id)]),
    );
    showVerdict(tr, f.verdict);
    return tr;
  }

  async function loadFindings(append) {
    const p = filterParams();
    p.set("limit", String(PAGE));
    if (append && findingsCursor !== null) p.set("cursor", String(findingsCursor));
    const seq = ++findingsSeq;
    let page;
    try {
      page = await api("/v1/findings?" + p);
    } catch (e) {
      fail(e);
      return;
    }
    if (seq !== findingsSeq) return;
    const body = $("findings").tBodies[0];
    if (!append) {
      body.replaceChildren();
      findingPages = 0;
      findingsShown = 0;
      $("findings-new").hidden = true;
    }
    for (const f of page.items) body.append(findingRow(f));
    findingPages += 1;
    findingsShown += page.items.length;
    findingsCursor = page.next_cursor === undefined ? null : page.next_cursor;
    $("load-more").hidden = findingsCursor === null;
    $("findings-empty").hidden = findingsShown > 0;
    $("findings-count").textContent = findingsShown
      ? `已显示 ${findingsShown} 条` + (findingsCursor === null ? "(全部)" : "")
      : "";
  }

  function applyFilters() {
    updateExportLink();
    loadFindings(false);
  }

  // ---------------------------------------------------------------- statistics

  let statsSeq = 0;
  let lastSeries = null;

  function chartGroup(b) {
    if (b.since === undefined) return "day";
    const span = (b.until === undefined ? Date.now() : b.until) - b.since;
    return span <= 7 * DAY ? "hour" : "day";
  }

  async function loadStats() {
    const b = rangeBounds();
    const group = chartGroup(b);
    const range = addRange(new URLSearchParams(), b).toString();
    const q = (g) => api(`/v1/stats?group=${g}` + (range ? "&" + range : ""));
    const seq = ++statsSeq;
    let agents, rules, series;
    try {
      [agents, rules, series] = await Promise.all([q("agent"), q("rule"), q(group)]);
    } catch (e) {
      fail(e);
      return;
    }
    if (seq !== statsSeq) return;
    renderRules(rules.rows || []);
    renderAgents(agents.rows || []);
    lastSeries = { rows: series.rows || [], group, bounds: b };
    renderChart();
    renderKpis(series.rows || [], rules.rows || []);
  }

  const byFindings = (rows) => rows.slice().sort((a, b) => b.findings - a.findings || String(a.key).localeCompare(String(b.key)));

  function emptyRow(cols, text) {
    return h("tr", { class: "empty-row" }, [h("td", { colspan: String(cols), class: "muted", text })]);
  }

  function renderRules(rows) {
    const body = $("rules-table").tBodies[0];
    body.replaceChildren();
    if (!rows.length) body.append(emptyRow(6, "暂无数据"));
    for (const r of byFindings(rows)) {
      const cat = ruleCategory(r.key);
      const share = r.false_positive_share;
      body.append(
        h(
          "tr",
          {
            "data-testid": "rule-row",
            "data-rule": r.key,
            title: "筛选此规则的记录",
            onclick: () => setFilter("rule", r.key),
          },
          [
            h("td", {}, [h("code", { text: r.key }), CATEGORY[cat] ? h("span", { class: "badge rule-cat cat-" + cat, text: CATEGORY[cat] }) : null]),
            h("td", { class: "num", text: fmtInt(r.findings) }),
            h("td", { class: "num", text: fmtInt(r.messages) }),
            h("td", { class: "num", text: fmtRate(r.rate_per_100) }),
            h("td", { class: "num", text: fmtInt(r.reviews) }),
            h("td", {
              class: "num" + (share !== null && share !== undefined && share >= 0.5 ? " share-high" : ""),
              id: "fp-share-" + r.key,
              "data-testid": "fp-share",
              "data-rule": r.key,
              "data-share": share === null || share === undefined ? "" : String(share),
              text: fmtShare(share),
            }),
          ],
        ),
      );
    }
    const list = $("rule-options");
    list.replaceChildren(...rows.map((r) => h("option", { value: r.key })));
  }

  function renderAgents(rows) {
    const body = $("agents-table").tBodies[0];
    body.replaceChildren();
    if (!rows.length) body.append(emptyRow(6, "暂无数据"));
    for (const r of byFindings(rows)) {
      body.append(
        h(
          "tr",
          {
            "data-testid": "agent-row",
            "data-agent": r.key,
            title: r.key ? "筛选此坐席的记录" : "",
            onclick: () => r.key && setFilter("agent", r.key),
          },
          [
            h("td", { text: r.key || "(未知坐席)" }),
            h("td", { class: "num", text: fmtInt(r.findings) }),
            h("td", { class: "num", text: fmtInt(r.messages) }),
            h("td", { class: "num", text: fmtRate(r.rate_per_100) }),
            h("td", { class: "num", text: fmtDuration(r.median_reply_ms) }),
            h("td", { class: "num", "data-testid": "agent-fp-share", text: fmtShare(r.false_positive_share) }),
          ],
        ),
      );
    }
    const list = $("agent-options");
    list.replaceChildren(...rows.filter((r) => r.key).map((r) => h("option", { value: r.key })));
  }

  function renderKpis(series, rules) {
    const sum = (rows, k) => rows.reduce((s, r) => s + (Number(r[k]) || 0), 0);
    const findings = sum(series, "findings");
    const messages = sum(series, "messages");
    const reviews = sum(rules, "reviews");
    const fps = sum(rules, "false_positives");
    $("kpi-findings").textContent = fmtInt(findings);
    $("kpi-messages").textContent = fmtInt(messages);
    $("kpi-rate").textContent = messages ? fmtRate((findings * 100) / messages) : "—";
    $("kpi-fp").textContent = reviews ? fmtShare(fps / reviews) : "—";
    $("kpi-fp-sub").textContent = reviews ? `已复核 ${fmtInt(reviews)} 条,其中误报 ${fmtInt(fps)} 条` : "尚无复核";
  }

  function setFilter(name, value) {
    $("filters").elements[name].value = value;
    applyFilters();
    $("findings-title").scrollIntoView({ behavior: "smooth", block: "start" });
  }

  // ---------------------------------------------------------------- chart (inline SVG)

  const SVG = "http://www.w3.org/2000/svg";
  function s(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function niceStep(raw) {
    if (raw <= 1) return 1;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const m of [1, 2, 5, 10]) if (m * mag >= raw) return m * mag;
    return 10 * mag;
  }

  function bucketLabel(ms, group, first) {
    const d = new Date(ms);
    const date = `${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
    if (group === "day") return date;
    const hm = `${pad(d.getHours())}:00`;
    return first || d.getHours() === 0 ? `${date} ${hm}` : hm;
  }

  function renderChart() {
    const box = $("chart");
    if (!lastSeries) return;
    const { rows, group, bounds } = lastSeries;
    const size = group === "hour" ? HOUR : DAY;
    const byKey = new Map(rows.map((r) => [Number(r.key), r]));
    const now = Date.now();
    const last = Math.floor(((bounds.until === undefined ? now : bounds.until) - 1) / size) * size;
    let first;
    if (bounds.since !== undefined) first = Math.floor(bounds.since / size) * size;
    else if (rows.length) first = Math.min(...rows.map((r) => Number(r.key)));
    else first = last - 13 * size;
    first = Math.max(first, last - 399 * size);
    const buckets = [];
    for (let t = first; t <= last; t += size) buckets.push(t);

    const W = Math.max(320, box.clientWidth || 800);
    const H = 280;
    const m = { l: 44, r: 12, t: 14, b: 30 };
    const pw = W - m.l - m.r;
    const ph = H - m.t - m.b;
    const values = buckets.map((t) => (byKey.get(t) ? Number(byKey.get(t).findings) || 0 : 0));
    const step = niceStep(Math.max(...values, 0) / 4);
    const top = step * 4;
    const y = (v) => m.t + ph - (v / top) * ph;

    const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img", "aria-label": "违规数量随时间变化" });
    for (let i = 0; i <= 4; i++) {
      const v = step * i;
      svg.append(s("line", { class: i === 0 ? "axis" : "grid", x1: m.l, x2: W - m.r, y1: y(v), y2: y(v) }));
      svg.append(s("text", { class: "tick", x: m.l - 6, y: y(v) + 4, "text-anchor": "end" }, String(v)));
    }
    const bw = pw / Math.max(buckets.length, 1);
    const barW = Math.max(1, Math.min(28, bw * 0.72));
    const every = Math.max(1, Math.ceil(buckets.length / Math.max(1, Math.floor(pw / 78))));
    buckets.forEach((t, i) => {
      const v = values[i];
      const x = m.l + i * bw + (bw - barW) / 2;
      if (v > 0) {
        const row = byKey.get(t);
        const bar = s("rect", {
          class: "bar" + (t === last && bounds.until === undefined ? " now" : ""),
          x: x.toFixed(1),
          y: y(v).toFixed(1),
          width: barW.toFixed(1),
          height: Math.max(1, m.t + ph - y(v)).toFixed(1),
          rx: Math.min(3, barW / 3).toFixed(1),
          "data-bucket": String(t),
          "data-findings": String(v),
        });
        const label = group === "hour" ? `${bucketLabel(t, group, true)} 起 1 小时` : bucketLabel(t, group, true);
        bar.append(s("title", {}, `${label}\n违规 ${v} 条 · 检查消息 ${fmtInt(row.messages)} 条 · 每百条 ${fmtRate(row.rate_per_100)}`));
        svg.append(bar);
      }
      if (i % every === 0) {
        svg.append(s("text", { class: "tick", x: (m.l + i * bw + bw / 2).toFixed(1), y: H - 10, "text-anchor": "middle" }, bucketLabel(t, group, i === 0)));
      }
    });
    if (!values.some((v) => v > 0)) {
      svg.append(s("text", { class: "tick", x: m.l + pw / 2, y: m.t + ph / 2, "text-anchor": "middle" }, "该时间范围内暂无违规"));
    }
    box.replaceChildren(svg);
    const total = values.reduce((a, b) => a + b, 0);
    $("chart-caption").textContent = `${group === "hour" ? "按小时" : "按天"} · 共 ${fmtInt(total)} 条`;
  }

  // ---------------------------------------------------------------- conversation view

  async function openFinding(id) {
    const f = await api(`/v1/findings/${encodeURIComponent(id)}`);
    const dialog = $("conversation");
    dialog.dataset.findingId = String(f.id);
    const body = $("conv-body");

    const thread = h("ol", { class: "thread", "data-testid": "context" });
    const context = Array.isArray(f.context) ? f.context : [];
    if (!context.length) thread.append(h("li", { class: "none", text: "(此前没有消息)" }));
    for (const c of context) {
      const role = c.role === "customer" ? "customer" : "agent";
      thread.append(
        h("li", { class: "bubble " + role, "data-testid": "context-message", data: { role } }, [
          h("span", { class: "who", text: `${ROLE[role]} · ${fmtTime(c.at_ms, true)}` }),
          h("span", { class: "txt", text: c.text }),
        ]),
      );
    }
    thread.append(
      h("li", { class: "bubble flagged", "data-testid": "flagged-message" }, [
        h("span", { class: "who", text: `${ROLE.agent} ${f.agent || ""} · ${fmtTime(f.at_ms, true)} · 被标记的消息` }),
        highlighted(f.text, f.start, f.end, "txt"),
      ]),
    );

    const detail = h("div", { class: "detail" }, [
      h("h3", { text: "违反的规范" }),
      h("p", { "data-testid": "norm", text: f.message || "—" }),
    ]);
    const suggestions = Array.isArray(f.suggestions) ? f.suggestions : [];
    if (suggestions.length) {
      detail.append(
        h("h3", { text: "建议用语" }),
        h("ul", { "data-testid": "suggestions" }, suggestions.map((x) => h("li", { text: x }))),
      );
    }
    if (f.fix !== null && f.fix !== undefined && f.text) {
      const ok = Number.isInteger(f.start) && Number.isInteger(f.end) && f.start <= f.end && f.end <= f.text.length;
      detail.append(
        h("h3", { text: "修改建议" }),
        ok
          ? h("p", { class: "fix-preview", "data-testid": "fix" }, [
              document.createTextNode(f.text.slice(0, f.start)),
              h("ins", {}, [document.createTextNode(f.fix)]),
              document.createTextNode(f.text.slice(f.end)),
            ])
          : h("p", { class: "fix-preview", "data-testid": "fix", text: f.fix }),
      );
    }

    const note = h("input", { type: "text", placeholder: "复核备注(可选)", maxlength: "500", "aria-label": "复核备注" });
    if (f.note) note.value = f.note;
    const reviewedAt = f.reviewed_at_ms ? h("span", { class: "muted", text: `复核于 ${fmtFull(f.reviewed_at_ms)}` }) : null;
    const controls = reviewControls(f, async () => f.id, () => note.value.trim());

    body.replaceChildren(
      h("div", { class: "conv-meta" }, [
        metaItem("坐席", f.agent || "—"),
        metaItem("会话", f.conversation || "—"),
        f.message_id ? metaItem("消息编号", f.message_id) : null,
        metaItem("时间", fmtFull(f.at_ms)),
        metaItem("规则", f.rule),
        categoryBadge(f.category),
        severityBadge(f.severity),
        actionBadge(f.action),
      ]),
      thread,
      detail,
      h("div", { class: "note-row" }, [note, controls, reviewedAt]),
    );
    showVerdict(dialog, f.verdict);
    if (!dialog.open) dialog.showModal();
    // Focus the dialog itself rather than its first button (Esc still closes it).
    dialog.focus();
  }

  const metaItem = (k, v) => h("span", {}, [`${k} `, h("b", { text: v })]);

  // ---------------------------------------------------------------- wiring

  function debounce(fn, ms) {
    let t = 0;
    return (...args) => {
      clearTimeout(t);
      t = setTimeout(() => fn(...args), ms);
    };
  }

  function init() {
    const form = $("filters");
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      applyFilters();
    });
    form.addEventListener("change", (e) => {
      if (e.target.tagName === "SELECT") applyFilters();
    });
    form.addEventListener("input", debounce((e) => {
      if (e.target.tagName === "INPUT") applyFilters();
    }, 400));
    form.addEventListener("reset", () => setTimeout(applyFilters, 0));

    $("range").addEventListener("change", () => {
      $("custom-range").hidden = $("range").value !== "custom";
      applyFilters();
      loadStats();
    });
    for (const id of ["range-since", "range-until"]) {
      $(id).addEventListener("change", () => {
        applyFilters();
        loadStats();
      });
    }
    $("load-more").addEventListener("click", () => loadFindings(true));
    $("findings-new").addEventListener("click", () => loadFindings(false));

    const dialog = $("conversation");
    $("conv-close").addEventListener("click", () => dialog.close());
    dialog.addEventListener("click", (e) => {
      if (e.target === dialog) dialog.close();
    });

    window.addEventListener("resize", debounce(renderChart, 150));
    setInterval(loadStats, 60 * 1000);

    updateExportLink();
    loadFindings(false);
    loadStats();
    connectEvents();
  }

  init();
})();
