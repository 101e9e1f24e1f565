// The demo's agent console: a small chat console, as an integrator's would be, with liyu-console.js
// attached to it. Its page and its WebSocket go through liyu's proxy; it only adds the pieces a console
// always has (conversation list, message list, input box) and hands liyu's part to LiyuConsole.
// Message text is untrusted: textContent only.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const AGENT = new URLSearchParams(location.search).get("agent") || "agent-1";
  const MODE = {
    annotate: ["标注模式", "违规消息照常送达,坐席收到提示"],
    block: ["拦截模式", "严重违规的消息不会送达客户"],
  };
  const conversations = new Map(); // id → {id, name, closed, messages: Map(id → element), unread, item}
  let current = null;
  let socket = null;
  let liyu = null;
  let seq = 0;

  function h(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  const clock = (ms) => new Date(ms || Date.now()).toLocaleTimeString("zh-CN", { hour: "2-digit", minute: "2-digit" });

  function status(state, text) {
    $("status").dataset.state = state;
    $("status").textContent = text;
  }

  // ---------------------------------------------------------------- conversations

  function conversation(c) {
    let conv = conversations.get(c.conversation);
    if (!conv) {
      conv = { id: c.conversation, name: c.name || c.conversation, closed: false, messages: new Map(), unread: 0 };
      conv.item = h("li", "conv");
      conv.button = h("button", "conv-button");
      conv.button.type = "button";
      conv.button.dataset.conversation = conv.id;
      conv.button.addEventListener("click", () => select(conv.id));
      conv.item.append(conv.button);
      conversations.set(conv.id, conv);
      $("conversations").prepend(conv.item);
      $("no-conversations").hidden = true;
    }
    conv.closed = !!c.closed;
    for (const m of c.messages || []) message(conv, m);
    refreshItem(conv);
    return conv;
  }

  function refreshItem(conv) {
    const last = [...conv.messages.values()].pop();
    const preview = last ? last.querySelector("[data-liyu-text]").textContent : "新会话";
    const parts = [h("span", "conv-name", conv.name)];
    if (conv.closed) parts.push(h("span", "tag", "已结束"));
    if (conv.unread) parts.push(h("span", "unread", String(conv.unread)));
    parts.push(h("span", "conv-preview", preview));
    conv.button.replaceChildren(...parts);
    conv.item.classList.toggle("active", conv.id === current);
  }

  function select(id) {
    const conv = conversations.get(id);
    if (!conv) return;
    current = id;
    conv.unread = 0;
    for (const c of conversations.values()) refreshItem(c);
    $("chat-title").textContent = conv.name;
    $("chat-state").textContent = conv.closed ? "客户已结束咨询" : "会话 " + conv.id;
    // The elements are kept per conversation, so liyu's marks on them survive switching.
    $("messages").replaceChildren(...conv.messages.values());
    $("input").disabled = conv.closed;
    $("send").disabled = conv.closed;
    const last = [...conv.messages.values()].pop();
    if (last) last.scrollIntoView({ block: "end" });
    if (!conv.closed) $("input").focus();
  }

  // One message of a conversation: its element, created once. An agent's message is shown as soon
  // as it is sent ("发送中"), and marked delivered when the chat server confirms it.
  function message(conv, m) {
    let li = conv.messages.get(m.id);
    if (!li) {
      const mine = m.from === "agent";
      li = h("li", "msg " + (mine ? "mine" : "theirs"));
      li.dataset.from = m.from;
      // liyu-console.js finds a sent message by this attribute and its text by [data-liyu-text].
      if (mine) li.dataset.liyuMessageId = m.id;
      li.append(h("div", "who", mine ? "坐席 " + (m.sender || AGENT) : conv.name));
      const bubble = h("div", "bubble");
      const text = h("span", "txt", m.text);
      text.dataset.liyuText = "";
      text.dataset.testid = "message-text";
      bubble.append(text);
      const meta = h("div", "meta");
      meta.append(h("time", "", clock(m.at)));
      if (mine) meta.append(h("span", "delivery", m.pending ? "发送中…" : "已送达"));
      li.append(bubble, meta);
      conv.messages.set(m.id, li);
      if (current === conv.id) {
        $("messages").append(li);
        li.scrollIntoView({ block: "end" });
      } else if (!mine && !m.history) {
        conv.unread++;
      }
    }
    if (m.from === "agent" && !m.pending) delivered(li);
    refreshItem(conv);
    return li;
  }

  function delivered(li) {
    const d = li.querySelector(".delivery");
    if (d) {
      d.textContent = "已送达";
      d.dataset.state = "delivered";
    }
  }

  // ---------------------------------------------------------------- the chat server's frames

  function chatFrame(f) {
    if (f.type === "hello") {
      const m = MODE[f.mode] || [f.mode, ""];
      $("mode").textContent = m[0];
      $("mode").title = m[1];
      $("mode").dataset.mode = f.mode;
      for (const c of f.conversations || []) {
        for (const msg of c.messages || []) msg.history = true;
        conversation(c);
      }
      if (!current) {
        const open = [...conversations.values()].filter((c) => !c.closed).pop();
        if (open) select(open.id);
      }
    } else if (f.type === "conversation") {
      conversation(f);
      if (!current) select(f.conversation);
    } else if (f.type === "message" || f.type === "sent") {
      const conv = conversations.get(f.conversation) || conversation({ conversation: f.conversation });
      message(conv, f);
    } else if (f.type === "conversation.closed") {
      const conv = conversations.get(f.conversation);
      if (!conv) return;
      conv.closed = true;
      refreshItem(conv);
      if (current === conv.id) select(conv.id);
    }
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + location.host + "/ws/agent?agent=" + encodeURIComponent(AGENT));
    socket.addEventListener("open", () => status("open", "已连接"));
    socket.addEventListener("message", (e) => {
      let f;
      try {
        f = JSON.parse(e.data);
      } catch (_) {
        return;
      }
      // liyu's frames (liyu.findings, liyu.nudge, liyu.checked) are LiyuConsole's.
      if (f && typeof f.type === "string" && !f.type.startsWith("liyu.")) chatFrame(f);
    });
    socket.addEventListener("close", () => {
      status("closed", "连接已断开,正在重连…");
      setTimeout(connect, 1000);
    });
    liyu.setSocket(socket);
  }

  function send() {
    const input = $("input");
    const text = input.value;
    const conv = conversations.get(current);
    if (!text.trim() || !conv || conv.closed || !socket || socket.readyState !== 1) return;
    const id = "m-" + Date.now().toString(36) + "-" + ++seq;
    const payload = { type: "message", id, conversation: conv.id, sender: AGENT, text };
    message(conv, { id, from: "agent", sender: AGENT, text, at: Date.now(), pending: true });
    liyu.send(payload);
    input.value = "";
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("agent-name").textContent = AGENT;
    if (!window.LiyuConsole) {
      status("error", "未能加载 liyu-console.js");
      return;
    }
    liyu = window.LiyuConsole.attach({
      input: $("input"),
      messages: $("messages"),
      warnings: $("draft"),
      banner: $("banners"),
      conversation: () => current,
      conversationLabel: (id) => (conversations.get(id) || { name: "会话 " + id }).name,
      onSelectConversation: select,
      onFindings: (frame, el) => {
        if (!el) return;
        const d = el.querySelector(".delivery");
        if (d && frame.action === "blocked") {
          d.textContent = "未发送";
          d.dataset.state = "blocked";
        }
      },
    });
    $("composer").addEventListener("submit", (e) => {
      e.preventDefault();
      send();
    });
    $("input").addEventListener("keydown", (e) => {
      // Enter sends; Shift+Enter is a new line; Enter that confirms an input method's candidate is
      // not a send. (Tab is LiyuConsole's: it takes the suggestion.)
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        send();
      }
    });
    connect();
  });
})();
