/*! liyu-console.js — 礼语 liyu in an agent console.
 *
 * Plain JavaScript, no dependencies, no build step. Served by liyu's admin listener at
 * /liyu-console.js (its styles at /liyu-console.css). Add both to your agent console and attach it to
 * the WebSocket your console talks to its chat server on, through liyu:
 *
 *   <link rel="stylesheet" href="https://liyu.example:9090/liyu-console.css">
 *   <script src="https://liyu.example:9090/liyu-console.js"></script>
 *   const liyu = LiyuConsole.attach({ socket, input, messages, conversation: () => currentId });
 *   liyu.send({ type: "message", id, conversation, sender, text });   // instead of socket.send
 *
 * What it does: reads liyu's `liyu.findings` and `liyu.nudge` frames from the socket; underlines the
 * flagged span in the sent message (a popover gives the norm and the suggestions); in block mode marks
 * a held-back message "not sent" with "use this wording" and "send anyway"; shows a banner when a
 * customer has been waiting; checks the draft as the agent types (a `liyu.check` frame on the same
 * socket, debounced) and shows warnings under the input box before the message leaves. Tab takes the
 * first suggestion. README.md ("Agent console") documents the options and the frames.
 *
 * Message text is untrusted: everything reaches the page through textContent and text nodes, never
 * innerHTML, so the script works under a strict Content-Security-Policy (no inline script or style).
 * Spans (start/end) are UTF-16 offsets, which are exactly JavaScript string indexes.
 */
(function (global) {
  "use strict";

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
  const RANK = { info: 0, warn: 1, block: 2 };

  // h("div", {class: "x", text: "…", data: {liyu: "y"}, onclick: fn}, [children]): no innerHTML.
  function h(tag, props, children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k === "data") for (const [dk, dv] of Object.entries(v)) node.dataset[dk] = dv;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children || []) {
      if (c === null || c === undefined || c === false) continue;
      node.append(typeof c === "string" ? document.createTextNode(c) : c);
    }
    return node;
  }

  // RFC 6901, the same pointers as liyu's [[messages]] config.
  function pointer(value, ptr) {
    if (!ptr) return value;
    let v = value;
    for (const raw of ptr.split("/").slice(1)) {
      const key = raw.replace(/~1/g, "/").replace(/~0/g, "~");
      if (v === null || typeof v !== "object" || !(key in v)) return undefined;
      v = v[key];
    }
    return v;
  }

  const idOf = (v) => (typeof v === "string" || typeof v === "number" ? String(v) : null);
  const worst = (findings) =>
    findings.reduce((w, f) => (RANK[f.severity] > RANK[w] ? f.severity : w), "info");

  // The finding's first approved wording: a suggestion, else the fix.
  function firstChoice(f) {
    if (Array.isArray(f.suggestions) && f.suggestions.length) return f.suggestions[0];
    return typeof f.fix === "string" ? f.fix : null;
  }

  function choices(f) {
    const out = Array.isArray(f.suggestions) ? f.suggestions.slice() : [];
    if (typeof f.fix === "string" && !out.includes(f.fix)) out.push(f.fix);
    return out;
  }

  // `text` with the finding's span replaced by `wording`; null when the text no longer holds what was
  // flagged. The span is trusted only if it still holds the flagged words (the draft may have
  // changed since it was checked); else they are looked for.
  function replaced(text, f, wording) {
    let start = f.start;
    let end = f.end;
    if (!(Number.isInteger(start) && Number.isInteger(end) && text.slice(start, end) === f.matched)) {
      start = f.matched ? text.indexOf(f.matched) : -1;
      if (start < 0) return null;
      end = start + f.matched.length;
    }
    return text.slice(0, start) + wording + text.slice(end);
  }

  // The text as text nodes, each flagged stretch wrapped in a focusable mark. Overlapping findings
  // cut the text at every boundary; a stretch carries every finding that covers it.
  function marked(text, findings, onOpen) {
    const spans = findings.filter(
      (f) => Number.isInteger(f.start) && Number.isInteger(f.end) && f.start < f.end && f.end <= text.length,
    );
    const cuts = new Set([0, text.length]);
    for (const f of spans) {
      cuts.add(f.start);
      cuts.add(f.end);
    }
    const points = [...cuts].sort((a, b) => a - b);
    const out = [];
    for (let i = 0; i + 1 < points.length; i++) {
      const [a, b] = [points[i], points[i + 1]];
      const piece = text.slice(a, b);
      const covering = spans.filter((f) => f.start <= a && b <= f.end);
      if (!covering.length) {
        out.push(document.createTextNode(piece));
        continue;
      }
      const mark = h("mark", {
        class: "liyu-mark liyu-sev-" + worst(covering),
        tabindex: "0",
        role: "button",
        "aria-haspopup": "dialog",
        title: covering.map((f) => f.message).join("\n"),
        data: { liyu: "mark", rule: covering.map((f) => f.rule).join(" ") },
        text: piece,
      });
      const open = (e) => {
        e.preventDefault();
        onOpen(mark, covering);
      };
      mark.addEventListener("click", open);
      mark.addEventListener("keydown", (e) => {
        if (e.key === "Enter" || e.key === " ") open(e);
      });
      out.push(mark);
    }
    return out;
  }

  // Frames liyu puts on the socket: JSON objects, or Socket.IO events `42[/ns,]["liyu.…",{…}]`.
  // Anything else is the chat's own and is left alone.
  function liyuFrame(data) {
    if (typeof data !== "string" || data.indexOf("liyu.") < 0) return null;
    try {
      if (data[0] === "{") {
        const v = JSON.parse(data);
        return v && typeof v.type === "string" && v.type.startsWith("liyu.") ? v : null;
      }
      if (data.startsWith("42")) {
        const v = JSON.parse(data.slice(data.indexOf("[")));
        if (Array.isArray(v) && typeof v[0] === "string" && v[0].startsWith("liyu.")) return v[1];
      }
    } catch (_) {
      // Not one of liyu's frames.
    }
    return null;
  }

  class Console {
    constructor(options) {
      const o = (this.options = Object.assign(
        {
          framing: "json",
          event: "message",
          debounce: 300,
          fields: {},
          conversation: () => null,
          conversationLabel: (id) => "会话 " + id,
        },
        options,
      ));
      this.fields = Object.assign({ id: "/id", text: "/text", conversation: "/conversation" }, o.fields);
      if (!o.input || !o.messages) throw new Error("LiyuConsole.attach needs `input` and `messages` elements");
      this.input = o.input;
      this.messages = o.messages;
      this.warnings = o.warnings || h("div", { class: "liyu-draft" });
      if (!o.warnings) this.input.insertAdjacentElement("afterend", this.warnings);
      this.warnings.classList.add("liyu-draft");
      this.warnings.hidden = true;
      this.warnings.setAttribute("aria-live", "polite");
      this.warnings.dataset.liyu = "draft";
      this.banners = o.banner || h("div", { class: "liyu-banners" });
      if (!o.banner) this.messages.insertAdjacentElement("beforebegin", this.banners);
      this.banners.classList.add("liyu-banners");
      this.sentPayloads = new Map(); // message id → payload, for "send anyway"
      this.texts = new WeakMap(); // message element → its text as sent
      this.pending = new Map(); // message id → findings frame whose element is not on the page yet
      this.draft = { seq: 0, asked: 0, findings: [], mode: null };
      this.timer = null;
      this.popover = null;
      this.onFrame = (e) => {
        const frame = liyuFrame(e.data);
        if (frame) this.handle(frame);
      };
      this.onInput = () => this.scheduleCheck();
      this.onKey = (e) => this.key(e);
      this.onDocClick = (e) => {
        if (this.popover && !this.popover.contains(e.target) && !e.target.classList.contains("liyu-mark")) {
          this.closePopover(false);
        }
      };
      this.input.addEventListener("input", this.onInput);
      this.input.addEventListener("keydown", this.onKey);
      document.addEventListener("click", this.onDocClick);
      // Consoles that render a sent message only when the server echoes it: findings that came
      // first are applied once the element shows up.
      this.observer = new MutationObserver(() => this.applyPending());
      this.observer.observe(this.messages, { childList: true, subtree: true });
      this.setSocket(o.socket || null);
    }

    // ------------------------------------------------------------------ the socket

    setSocket(socket) {
      this.unhookSocket();
      this.socket = socket;
      if (!socket) return;
      if (typeof socket.addEventListener === "function") {
        socket.addEventListener("message", this.onFrame);
      } else if (typeof socket.on === "function") {
        // A Socket.IO client: liyu's frames arrive as events named after their type.
        this.ioHandlers = ["liyu.findings", "liyu.nudge", "liyu.checked"].map((name) => {
          const fn = (payload) => this.handle(payload);
          socket.on(name, fn);
          return [name, fn];
        });
      }
    }

    unhookSocket() {
      const s = this.socket;
      if (!s) return;
      if (typeof s.removeEventListener === "function") s.removeEventListener("message", this.onFrame);
      if (this.ioHandlers && typeof s.off === "function") for (const [n, fn] of this.ioHandlers) s.off(n, fn);
      this.ioHandlers = null;
    }

    isSocketIO() {
      return this.socket && typeof this.socket.emit === "function" && typeof this.socket.addEventListener !== "function";
    }

    emit(type, payload) {
      const s = this.socket;
      if (!s) return false;
      if (this.isSocketIO()) {
        s.emit(type, payload);
        return true;
      }
      if (s.readyState !== 1) return false;
      s.send(this.options.framing === "socketio" ? "42" + JSON.stringify([type, payload]) : JSON.stringify(payload));
      return true;
    }

    // ------------------------------------------------------------------ sending

    // Sends a chat message (an object, as your chat server expects it) and remembers it, so a blocked
    // message can be sent again with "send anyway".
    send(payload) {
      this.sent(payload);
      this.emit(this.options.event, payload);
    }

    // Remembers a message your console sent by other means (HTTP, its own socket code).
    sent(payload) {
      const id = idOf(pointer(payload, this.fields.id));
      if (id !== null) {
        this.sentPayloads.set(id, payload);
        // Bounded: only recent messages can be sent anyway.
        if (this.sentPayloads.size > 200) this.sentPayloads.delete(this.sentPayloads.keys().next().value);
      }
      const conversation = idOf(pointer(payload, this.fields.conversation));
      if (conversation !== null) this.dismissBanner(conversation);
      this.showDraft([]);
      this.draft.seq++;
    }

    resend(id) {
      const payload = this.sentPayloads.get(id);
      if (!payload) return false;
      const again = Object.assign({}, payload, { liyu_override: true });
      if (typeof this.options.resend === "function") this.options.resend(again);
      else this.emit(this.options.event, again);
      return true;
    }

    // ------------------------------------------------------------------ liyu's frames

    // One of liyu's frames (an object, or its JSON text), from the socket or from elsewhere: the body
    // of a 422 answer to an HTTP send is a findings frame too.
    handle(frame) {
      if (typeof frame === "string") {
        try {
          frame = JSON.parse(frame);
        } catch (_) {
          return;
        }
      }
      if (!frame || typeof frame !== "object") return;
      if (frame.type === "liyu.findings") this.findings(frame);
      else if (frame.type === "liyu.nudge") this.nudge(frame);
      else if (frame.type === "liyu.checked") this.checked(frame);
    }

    element(id) {
      for (const el of this.messages.querySelectorAll("[data-liyu-message-id]")) {
        if (el.dataset.liyuMessageId === id) return el;
      }
      return null;
    }

    findings(frame) {
      const findings = Array.isArray(frame.findings) ? frame.findings : [];
      const id = idOf(frame.message_id);
      const el = id === null ? null : this.element(id);
      if (id !== null && !el) {
        this.pending.set(id, frame);
        if (this.pending.size > 50) this.pending.delete(this.pending.keys().next().value);
      } else if (el) {
        this.annotate(el, id, frame.action, findings);
      } else if (!frame.conversation || frame.conversation === this.options.conversation()) {
        // A conversation finding (a slow reply, a missing farewell): no message of its own.
        this.notice(findings);
      }
      if (typeof this.options.onFindings === "function") this.options.onFindings(frame, el);
    }

    applyPending() {
      for (const [id, frame] of this.pending) {
        const el = this.element(id);
        if (!el) continue;
        this.pending.delete(id);
        this.annotate(el, id, frame.action, Array.isArray(frame.findings) ? frame.findings : []);
        if (typeof this.options.onFindings === "function") this.options.onFindings(frame, el);
      }
    }

    annotate(el, id, action, findings) {
      // Rebuilt from the text as sent, never from what the page shows now (our own marks).
      let textEl = el.querySelector("[data-liyu-text]");
      if (!textEl) {
        textEl = h("span", { class: "liyu-text", "data-liyu-text": true, text: el.textContent });
        el.replaceChildren(textEl);
      }
      if (!this.texts.has(textEl)) this.texts.set(textEl, textEl.textContent);
      const text = this.texts.get(textEl);
      this.observer.disconnect();
      textEl.replaceChildren(...marked(text, findings, (mark, covering) => this.openPopover(mark, covering, text)));
      el.classList.add("liyu-flagged");
      el.dataset.liyuAction = action || "delivered";
      if (action === "blocked") this.blocked(el, id, text, findings);
      else if (action === "overridden") this.overridden(el);
      this.observer.observe(this.messages, { childList: true, subtree: true });
    }

    bar(el) {
      let bar = el.querySelector(".liyu-bar");
      if (!bar) {
        bar = h("div", { class: "liyu-bar", role: "status" });
        el.append(bar);
      }
      return bar;
    }

    blocked(el, id, text, findings) {
      el.classList.add("liyu-blocked");
      const f = findings.find((x) => x.severity === "block" && firstChoice(x)) || findings.find(firstChoice);
      const canResend = this.sentPayloads.has(id);
      const bar = this.bar(el);
      const status = h("span", { class: "liyu-bar-text", data: { liyu: "not-sent" }, text: "未发送:此消息含服务忌语,客户未收到" });
      const use = f
        ? h("button", {
            type: "button",
            class: "liyu-btn liyu-btn-primary",
            data: { liyu: "use-wording" },
            text: "使用建议措辞",
            title: replaced(text, f, firstChoice(f)),
            onclick: () => this.toDraft(replaced(text, f, firstChoice(f))),
          })
        : null;
      const anyway = canResend
        ? h("button", {
            type: "button",
            class: "liyu-btn",
            data: { liyu: "send-anyway" },
            text: "仍然发送",
            title: "确认无误后强制发送,将记录在看板上",
            onclick: (e) => {
              e.currentTarget.disabled = true;
              status.textContent = "正在强制发送…";
              if (!this.resend(id)) status.textContent = "无法重新发送此消息";
            },
          })
        : null;
      bar.replaceChildren(status, use, anyway);
    }

    overridden(el) {
      el.classList.remove("liyu-blocked");
      el.classList.add("liyu-overridden");
      this.bar(el).replaceChildren(
        h("span", { class: "liyu-bar-text", data: { liyu: "overridden" }, text: "已强制发送(已记录)" }),
      );
    }

    notice(findings) {
      for (const f of findings) {
        this.messages.append(
          h("div", { class: "liyu-notice liyu-sev-" + f.severity, role: "note", data: { liyu: "notice", rule: f.rule } }, [
            h("strong", { text: (CATEGORY[f.category] || f.category) + " · " }),
            f.message,
            choices(f).length ? h("span", { class: "liyu-muted", text: " 建议:" + choices(f).join(" / ") }) : null,
          ]),
        );
      }
    }

    // ------------------------------------------------------------------ the popover

    openPopover(mark, findings, text) {
      this.closePopover(false);
      const close = h("button", { type: "button", class: "liyu-close", "aria-label": "关闭", text: "×", onclick: () => this.closePopover(true) });
      const items = findings.map((f) =>
        h("section", { class: "liyu-pop-item liyu-sev-" + f.severity }, [
          h("div", { class: "liyu-pop-head" }, [
            h("span", { class: "liyu-badge liyu-sev-" + f.severity, text: SEVERITY[f.severity] || f.severity }),
            h("span", { class: "liyu-cat", text: CATEGORY[f.category] || f.category }),
          ]),
          h("p", { class: "liyu-norm", data: { liyu: "norm" }, text: f.message }),
          choices(f).length ? h("p", { class: "liyu-muted", text: "建议改为:" }) : null,
          h(
            "ul",
            { class: "liyu-suggestions", data: { liyu: "suggestions" } },
            choices(f).map((s) =>
              h("li", {}, [
                h("button", {
                  type: "button",
                  class: "liyu-chip",
                  text: s,
                  title: "放入输入框",
                  onclick: () => {
                    this.closePopover(false);
                    this.toDraft(replaced(text, f, s));
                  },
                }),
              ]),
            ),
          ),
        ]),
      );
      const pop = h("div", { class: "liyu-popover", role: "dialog", "aria-label": "服务用语提示", data: { liyu: "popover" } }, [close, ...items]);
      pop.addEventListener("keydown", (e) => {
        if (e.key === "Escape") this.closePopover(true);
      });
      document.body.append(pop);
      // Positioned through the CSSOM, which a strict style-src allows (inline style attributes it
      // would not).
      const r = mark.getBoundingClientRect();
      const left = Math.max(8, Math.min(r.left, window.innerWidth - pop.offsetWidth - 8));
      const below = r.bottom + 6 + pop.offsetHeight < window.innerHeight;
      pop.style.left = left + "px";
      pop.style.top = (below ? r.bottom + 6 : Math.max(8, r.top - 6 - pop.offsetHeight)) + "px";
      this.popover = pop;
      this.popoverFrom = mark;
      close.focus();
    }

    closePopover(refocus) {
      if (!this.popover) return;
      this.popover.remove();
      this.popover = null;
      if (refocus && this.popoverFrom) this.popoverFrom.focus();
      this.popoverFrom = null;
    }

    // ------------------------------------------------------------------ the draft

    toDraft(text) {
      if (typeof text !== "string") return;
      // The warnings were about the old draft; the new one is checked as if typed.
      this.showDraft([]);
      this.input.value = text;
      this.input.focus();
      const end = text.length;
      if (typeof this.input.setSelectionRange === "function") this.input.setSelectionRange(end, end);
      // Your console's own listeners see the change as if it were typed (and liyu checks it again).
      this.input.dispatchEvent(new Event("input", { bubbles: true }));
    }

    scheduleCheck() {
      clearTimeout(this.timer);
      const seq = ++this.draft.seq;
      if (!this.input.value.trim()) {
        this.showDraft([]);
        return;
      }
      this.timer = setTimeout(() => this.checkDraft(seq), this.options.debounce);
    }

    // Checks the draft now (through options.check, or a liyu.check frame on the socket).
    checkDraft(seq) {
      seq = seq === undefined ? ++this.draft.seq : seq;
      const text = this.input.value;
      if (!text.trim()) return this.showDraft([]);
      this.draft.asked = seq;
      if (typeof this.options.check === "function") {
        Promise.resolve(this.options.check(text)).then(
          (findings) => this.checked({ id: seq, findings: findings || [] }),
          () => {},
        );
        return;
      }
      this.emit("liyu.check", { type: "liyu.check", id: seq, text, conversation: this.options.conversation() });
    }

    checked(frame) {
      // Only the answer for the draft as it is now: older answers arrive for text already changed.
      if (frame.id !== this.draft.seq) return;
      if (frame.mode) this.draft.mode = frame.mode;
      this.showDraft(Array.isArray(frame.findings) ? frame.findings : []);
    }

    showDraft(findings) {
      this.draft.findings = findings.filter((f) => f.severity !== "info");
      const list = this.draft.findings;
      this.warnings.hidden = list.length === 0;
      this.input.classList.toggle("liyu-input-flagged", list.length > 0);
      if (!list.length) {
        this.warnings.replaceChildren();
        return;
      }
      const willBlock = this.draft.mode === "block" && list.some((f) => f.severity === "block");
      const text = this.input.value;
      const items = list.map((f, i) =>
        h("div", { class: "liyu-draft-item liyu-sev-" + f.severity, data: { liyu: "draft-warning", rule: f.rule } }, [
          h("div", { class: "liyu-draft-head" }, [
            h("span", { class: "liyu-badge liyu-sev-" + f.severity, text: SEVERITY[f.severity] || f.severity }),
            h("span", { class: "liyu-cat", text: CATEGORY[f.category] || f.category }),
            h("q", { class: "liyu-matched", data: { liyu: "matched" }, text: f.matched }),
          ]),
          h("p", { class: "liyu-norm", data: { liyu: "norm" }, text: f.message }),
          choices(f).length
            ? h(
                "div",
                { class: "liyu-choices" },
                [h("span", { class: "liyu-muted", text: "建议:" })].concat(
                  choices(f).map((s, j) =>
                    h("button", {
                      type: "button",
                      class: "liyu-chip" + (i === 0 && j === 0 ? " liyu-chip-default" : ""),
                      data: { liyu: i === 0 && j === 0 ? "suggestion-default" : "suggestion" },
                      title: i === 0 && j === 0 ? "按 Tab 采用" : "采用",
                      onclick: () => this.toDraft(replaced(text, f, s)),
                    }, [s, i === 0 && j === 0 ? h("kbd", { text: "Tab" }) : null]),
                  ),
                ),
              )
            : null,
        ]),
      );
      const head = willBlock
        ? h("div", { class: "liyu-draft-title liyu-sev-block", data: { liyu: "will-block" }, text: "发送后将被拦截,不会送达客户" })
        : h("div", { class: "liyu-draft-title", text: "发送前请留意服务用语" });
      this.warnings.replaceChildren(head, ...items);
    }

    key(e) {
      if (e.key !== "Tab" || e.shiftKey || e.altKey || e.ctrlKey || e.metaKey || e.isComposing) return;
      const f = this.draft.findings.find(firstChoice);
      if (!f) return;
      const next = replaced(this.input.value, f, firstChoice(f));
      if (next === null) return;
      e.preventDefault();
      this.toDraft(next);
    }

    // ------------------------------------------------------------------ nudges

    nudge(frame) {
      const conversation = idOf(frame.conversation);
      if (conversation === null) return;
      this.dismissBanner(conversation);
      const waited = Number.isFinite(frame.waited_seconds) ? frame.waited_seconds : null;
      const label = this.options.conversationLabel(conversation);
      const select = () => {
        if (typeof this.options.onSelectConversation === "function") this.options.onSelectConversation(conversation);
      };
      const banner = h("div", { class: "liyu-banner", role: "alert", data: { liyu: "nudge", conversation } }, [
        h("span", { class: "liyu-banner-icon", "aria-hidden": "true", text: "!" }),
        h("div", { class: "liyu-banner-body" }, [
          h("button", {
            type: "button",
            class: "liyu-banner-title",
            text: waited === null ? label + " 的客户正在等待回复" : label + " 的客户已等待 " + waited + " 秒",
            onclick: select,
          }),
          h("div", { class: "liyu-muted", text: frame.message || "" }),
          h(
            "div",
            { class: "liyu-choices" },
            (Array.isArray(frame.suggestions) ? frame.suggestions : []).map((s) =>
              h("button", {
                type: "button",
                class: "liyu-chip",
                text: s,
                onclick: () => {
                  select();
                  this.toDraft(s);
                },
              }),
            ),
          ),
        ]),
        h("button", { type: "button", class: "liyu-close", "aria-label": "关闭提醒", text: "×", onclick: () => this.dismissBanner(conversation) }),
      ]);
      this.banners.append(banner);
      if (typeof this.options.onNudge === "function") this.options.onNudge(frame);
    }

    dismissBanner(conversation) {
      for (const b of this.banners.querySelectorAll(".liyu-banner")) {
        if (b.dataset.conversation === conversation) b.remove();
      }
    }

    detach() {
      this.unhookSocket();
      clearTimeout(this.timer);
      this.observer.disconnect();
      this.input.removeEventListener("input", this.onInput);
      this.input.removeEventListener("keydown", this.onKey);
      document.removeEventListener("click", this.onDocClick);
      this.closePopover(false);
    }
  }

  global.LiyuConsole = {
    version: "1",
    attach: (options) => new Console(options || {}),
  };
})(typeof window !== "undefined" ? window : this);
