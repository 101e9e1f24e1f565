// The demo's customer page: one conversation with the service centre, straight to the chat backend
// (customers never pass through liyu). Message text is untrusted: textContent only.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const KEY = "liyu-demo-conversation";
  let socket = null;
  let ended = false;
  let seq = 0;

  function h(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function status(state, text) {
    const s = $("status");
    s.dataset.state = state;
    s.textContent = text;
  }

  const clock = (ms) => new Date(ms || Date.now()).toLocaleTimeString("zh-CN", { hour: "2-digit", minute: "2-digit" });

  function render(m) {
    const mine = m.from === "customer";
    const li = h("li", "msg " + (mine ? "mine" : "theirs"));
    li.dataset.testid = "message";
    li.dataset.from = m.from;
    li.append(h("div", "who", mine ? "我" : "客服 " + (m.sender || "")));
    const bubble = h("div", "bubble");
    const text = h("span", "txt", m.text);
    text.dataset.testid = "message-text";
    bubble.append(text);
    li.append(bubble, h("time", "meta", clock(m.at)));
    $("messages").append(li);
    li.scrollIntoView({ block: "end" });
  }

  function system(text) {
    const li = h("li", "system", text);
    $("messages").append(li);
    li.scrollIntoView({ block: "end" });
  }

  function finish() {
    ended = true;
    sessionStorage.removeItem(KEY);
    $("input").disabled = true;
    $("end").disabled = true;
    status("ended", "咨询已结束");
    system("本次咨询已结束,感谢您的使用。刷新页面可发起新的咨询。");
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const known = sessionStorage.getItem(KEY);
    const query = known ? "?conversation=" + encodeURIComponent(known) : "";
    socket = new WebSocket(scheme + location.host + "/ws/customer" + query);
    socket.addEventListener("open", () => status("open", "已接通人工客服"));
    socket.addEventListener("message", (e) => {
      let f;
      try {
        f = JSON.parse(e.data);
      } catch (_) {
        return;
      }
      if (f.type === "welcome") {
        sessionStorage.setItem(KEY, f.conversation);
        $("messages").replaceChildren();
        system("您好,欢迎咨询便民服务中心。请描述您要办理的业务。");
        for (const m of f.messages || []) render(m);
      } else if (f.type === "message") {
        render(f);
      } else if (f.type === "closed") {
        finish();
      } else if (f.type === "error") {
        system("发送失败:" + f.message);
      }
    });
    socket.addEventListener("close", () => {
      if (ended) return;
      status("closed", "连接已断开,正在重连…");
      setTimeout(connect, 1000);
    });
  }

  function send() {
    const input = $("input");
    const text = input.value;
    if (!text.trim() || !socket || socket.readyState !== 1 || ended) return;
    socket.send(JSON.stringify({ type: "message", id: "q-" + Date.now().toString(36) + "-" + ++seq, text }));
    input.value = "";
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("composer").addEventListener("submit", (e) => {
      e.preventDefault();
      send();
    });
    $("input").addEventListener("keydown", (e) => {
      // Enter sends; Shift+Enter is a new line; Enter that confirms a Chinese input method's
      // candidate is not a send.
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        send();
      }
    });
    $("end").addEventListener("click", () => {
      if (socket && socket.readyState === 1) socket.send(JSON.stringify({ type: "end" }));
    });
    connect();
    $("input").focus();
  });
})();
