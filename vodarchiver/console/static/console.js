// vodarchiver's console: local times, countdowns, live fragments, actions and the login form.
// Plain JavaScript served by the daemon (the CSP allows no inline script).
"use strict";
(function () {
  function duration(s) {
    s = Math.max(0, Math.round(s));
    const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600),
      m = Math.floor((s % 3600) / 60), sec = s % 60;
    if (d) return d + "d " + h + "h";
    if (h) return h + "h " + m + "m";
    if (m) return m + "m " + sec + "s";
    return sec + "s";
  }

  // Every <time datetime> shows the browser's local time; hovering shows UTC.
  function localTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (t) {
      const when = new Date(t.getAttribute("datetime"));
      if (isNaN(when.getTime())) return;
      t.textContent = when.toLocaleString();
      t.title = when.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
    });
  }

  function countdowns() {
    document.querySelectorAll("[data-countdown]").forEach(function (el) {
      const end = Date.parse(el.dataset.countdown);
      if (isNaN(end)) return;
      const left = (end - Date.now()) / 1000;
      el.textContent = left <= 0 ? "expired" : duration(left) + " left";
    });
  }

  function refresh(el) {
    return fetch(el.dataset.live, { headers: { Accept: "text/html" }, cache: "no-store" })
      .then(function (r) {
        el.classList.toggle("stale", !r.ok);
        return r.ok ? r.text() : null;
      })
      .then(function (html) {
        if (html === null) return;
        // Keep what the user is typing in a field of the fragment (priority, checkbox).
        const focused = document.activeElement && el.contains(document.activeElement)
          ? document.activeElement.id : null;
        if (focused && document.activeElement.tagName === "INPUT") return;
        el.innerHTML = html;
        localTimes(el);
        countdowns();
        if (focused) { const again = document.getElementById(focused); if (again) again.focus(); }
      })
      .catch(function () { el.classList.add("stale"); });
  }

  function live(el) {
    const every = parseInt(el.dataset.every || "1000", 10);
    function loop() { refresh(el).finally(function () { setTimeout(loop, every); }); }
    setTimeout(loop, every);
  }

  function csrf() {
    return fetch("/session", { cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : {}; })
      .then(function (s) { return s.csrf || null; })
      .catch(function () { return null; });
  }

  function say(text, good) {
    const out = document.getElementById("action-result") || (function () {
      const p = document.createElement("p");
      p.id = "action-result";
      p.setAttribute("role", "status");
      const main = document.getElementById("main");
      main.insertBefore(p, main.children[2] || null);
      return p;
    })();
    out.textContent = text;
    out.className = good ? "ok" : "bad";
  }

  function act(button) {
    const action = button.dataset.action, vod = button.dataset.vod;
    if (button.dataset.confirm && !window.confirm(button.dataset.confirm)) return;
    let body = {};
    if (action === "priority") {
      const n = parseInt(document.getElementById("priority-value").value, 10);
      if (isNaN(n)) { say("Priority must be a whole number.", false); return; }
      body = { priority: n };
    } else if (action === "reprocess") {
      const box = document.getElementById("reprocess-delete");
      body = { delete_old: !!(box && box.checked) };
    }
    button.disabled = true;
    csrf().then(function (token) {
      const headers = { "Content-Type": "application/json" };
      if (token) headers["X-CSRF-Token"] = token;
      return fetch("/admin/vods/" + encodeURIComponent(vod) + "/" + action, {
        method: "POST", headers: headers, body: JSON.stringify(body), credentials: "same-origin",
      });
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (j) {
        if (r.ok) {
          say(action + ": " + (j.from_state || j.previous_state || "?") + " → " + j.state, true);
        } else {
          let text = action + " refused (HTTP " + r.status + "): " + (j.error || r.statusText);
          if (Array.isArray(j.allowed)) {
            text += "; allowed now: " + (j.allowed.length ? j.allowed.join(", ") : "none");
          }
          say(text, false);
        }
        const part = document.getElementById("vod-live");
        if (part) refresh(part);
      });
    }).catch(function () {
      say(action + " failed: the daemon did not answer.", false);
    }).finally(function () { button.disabled = false; });
  }

  function session(el) {
    fetch("/session", { cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (s) {
        if (!s || !s.required) return;
        if (s.authenticated) {
          const b = document.createElement("button");
          b.type = "button";
          b.textContent = "Log out";
          b.addEventListener("click", function () {
            csrf().then(function (token) {
              const headers = token ? { "X-CSRF-Token": token } : {};
              return fetch("/logout", { method: "POST", headers: headers });
            }).then(function () { window.location.assign("/"); });
          });
          el.appendChild(b);
        } else {
          const a = document.createElement("a");
          a.href = "/ui/login";
          a.textContent = "Log in";
          el.appendChild(a);
        }
      })
      .catch(function () {});
  }

  function loginForm(form) {
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      const token = document.getElementById("login-token").value;
      fetch("/login", {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ token: token }),
      }).then(function (r) {
        if (r.ok) { window.location.assign("/"); return; }
        document.getElementById("login-result").textContent =
          r.status === 401 || r.status === 403 ? "That token is not right." : "Login failed (HTTP " + r.status + ").";
      }).catch(function () {
        document.getElementById("login-result").textContent = "The daemon did not answer.";
      });
    });
  }

  document.addEventListener("click", function (ev) {
    const button = ev.target.closest("button[data-action]");
    if (button) act(button);
  });

  document.addEventListener("DOMContentLoaded", function () {
    localTimes(document);
    countdowns();
    setInterval(countdowns, 1000);
    document.querySelectorAll("[data-live]").forEach(live);
    document.querySelectorAll("[data-session]").forEach(session);
    const form = document.getElementById("login-form");
    if (form) loginForm(form);
  });
})();
