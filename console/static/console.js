// jitssh console: the login page's code exchange and the player's windows.
// No framework, no inline script, no eval (the console's CSP forbids them).
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("login-form");
  if (form) login(form);
  const app = document.getElementById("player-app");
  if (app && typeof AsciinemaPlayer !== "undefined") player(app);
  const share = document.getElementById("share-url");
  if (share) share.addEventListener("focus", () => share.select());
});

// login reads the one-time code from the URL fragment (which no server
// sees: not in Referer, not in access logs), drops it from the address bar
// and history, asks the console whose code it is (without spending it)
// and asks "Log in as USER?": a code from someone else's link must not log
// this browser in as them unnoticed (login CSRF). The button submits it.
async function login(form) {
  const m = /(?:^#|&)code=([A-Za-z0-9_-]+)/.exec(location.hash);
  const status = document.getElementById("login-status");
  history.replaceState(null, "", location.pathname);
  if (!m) {
    status.textContent = "No login code in this address.";
    return;
  }
  let res, ans;
  try {
    res = await fetch("/console/login/check", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ code: m[1] }),
    });
    ans = res.ok ? await res.json() : await res.text();
  } catch (err) {
    status.textContent = "Could not check the login code: " + err;
    return;
  }
  if (!res.ok) {
    status.textContent = ans;
    return;
  }
  status.textContent = "Log in to the jitssh console as " + ans.user + "?";
  if (ans.current && ans.current !== ans.user) {
    const cur = document.getElementById("login-current");
    cur.textContent = "This browser is logged in as " + ans.current + ". Logging in as " + ans.user + " ends that session. If you did not run jit console as " + ans.user + " yourself, close this page.";
    cur.hidden = false;
  }
  document.getElementById("login-code").value = m[1];
  document.getElementById("login-confirm").textContent = "Log in as " + ans.user;
  form.hidden = false;
}

function fmt(t) {
  t = Math.max(0, Math.floor(t));
  const s = String(t % 60).padStart(2, "0");
  const m = Math.floor(t / 60);
  return m >= 60 ? Math.floor(m / 60) + ":" + String(m % 60).padStart(2, "0") + ":" + s : m + ":" + s;
}

// player plays a recording in windows the server cuts (from=, window=):
// each window starts with a prelude that rebuilds the screen, so a seek
// asks for one window only and the tab never holds the whole recording.
// A live session is followed with the player's eventsource driver.
function player(app) {
  const el = document.getElementById("player");
  const status = document.getElementById("player-status");
  const seek = document.getElementById("seek");
  const pos = document.getElementById("pos");
  const pp = document.getElementById("pp");
  const speedSel = document.getElementById("speed");
  const idleSel = document.getElementById("idle");
  const st = { p: null, text: "", from: 0, end: 0, eof: false, gen: 0, duration: parseFloat(app.dataset.duration) || 0, paused: false };
  window.jitPlayer = st; // read by the browser tests
  document.getElementById("dur").textContent = fmt(st.duration);
  const opts = (startAt) => {
    const o = { autoPlay: !st.paused, speed: parseFloat(speedSel.value), fit: "width", controls: false, startAt: startAt || 0 };
    const idle = parseFloat(idleSel.value);
    if (idle > 0) o.idleTimeLimit = idle;
    return o;
  };
  const mount = (startAt) => {
    if (st.p) st.p.dispose();
    el.textContent = "";
    st.p = AsciinemaPlayer.create({ data: st.text }, el, opts(startAt));
    st.p.addEventListener("ended", () => {
      if (!st.eof) load(st.end);
      else status.textContent = "End of recording.";
    });
    st.loaded = (st.loaded || 0) + 1;
  };
  const load = async (at) => {
    const gen = ++st.gen;
    status.textContent = "Loading " + fmt(at) + "…";
    const t0 = performance.now();
    let res, text;
    // A load aborted by the network (not an answer) is tried again, three
    // times at most.
    for (let i = 0; ; i++) {
      try {
        res = await fetch(app.dataset.cast + "&from=" + at.toFixed(3), { credentials: "same-origin" });
        text = await res.text();
        break;
      } catch (err) {
        if (i >= 2 || gen !== st.gen) {
          status.textContent = "Could not load the recording: " + err;
          return;
        }
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
    if (gen !== st.gen) return;
    if (!res.ok) {
      status.textContent = text;
      return;
    }
    st.text = text;
    st.from = at;
    pos.textContent = fmt(at);
    st.end = parseFloat(res.headers.get("X-Jit-Window-End")) || at;
    st.eof = res.headers.get("X-Jit-Window-EOF") === "true";
    st.fetchMs = performance.now() - t0;
    status.textContent = "";
    mount(0);
  };
  const current = async () => (st.p ? st.from + ((await st.p.getCurrentTime()) || 0) : st.from);
  if (app.dataset.live === "true" && !(parseFloat(app.dataset.at) > 0)) {
    seek.disabled = true;
    status.textContent = "Following the live session.";
    st.p = AsciinemaPlayer.create({ driver: "eventsource", url: app.dataset.liveUrl }, el, { autoPlay: true, fit: "width", controls: false });
    st.live = true;
    pp.disabled = true;
  } else {
    load(parseFloat(app.dataset.at) || 0);
  }
  seek.addEventListener("change", () => load(parseFloat(seek.value)));
  pp.addEventListener("click", () => {
    if (!st.p) return;
    st.paused = !st.paused;
    if (st.paused) st.p.pause();
    else st.p.play();
    pp.textContent = st.paused ? "Play" : "Pause";
  });
  const remount = async () => {
    if (!st.p || st.live) return;
    const t = (await st.p.getCurrentTime()) || 0;
    mount(t);
  };
  speedSel.addEventListener("change", remount);
  idleSel.addEventListener("change", remount);
  setInterval(async () => {
    if (!st.p || st.live) return;
    const t = await current();
    pos.textContent = fmt(t);
    if (document.activeElement !== seek) seek.value = t;
  }, 500);
}
