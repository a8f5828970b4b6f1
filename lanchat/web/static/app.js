// lanchat's page: one WebSocket to the relay that served it; each message one protocol frame
// (docs/protocol.md, "Browsers"). Nothing from the network ever becomes markup: text goes in
// with textContent only, and the Content-Security-Policy forbids inline script anyway.
"use strict";

const $ = (id) => document.getElementById(id);
const log = $("log"), state = $("state"), say = $("say"), send = $("send");
const KEEP = 1000;  // messages kept on the page

let ws = null;
let myName = localStorage.getItem("lanchat.name") || "";
let epoch = null, lastSeq = 0;  // for resume: no duplicates, and a note for a gap
let present = [];  // names, in joining order
let maxLine = 4096;  // bytes of one frame, from the welcome
let retry = 0, whoAsked = false, leaving = false, welcomed = false, asking = false;
let operator = false, removed = false;  // an operator of the room; removed by one (no reconnect)
// A room's password, typed once and kept in this page's memory only (never in storage), so that
// a reconnect logs in again without asking. `plainLogin`: the relay takes it on this connection
// (https://, or the operator allowed it on plain http: docs/protocol.md, "Logging in").
let password = null, plainLogin = location.protocol === "https:";

// --- showing things --------------------------------------------------------------------------

function hue(name) {  // a stable colour per name
  let h = 0;
  for (const c of name.toLowerCase()) h = (h * 31 + c.codePointAt(0)) % 360;
  return h;
}

function nameSpan(name) {
  const span = document.createElement("span");
  span.className = "who";
  span.textContent = name;
  span.style.setProperty("--hue", hue(name));
  return span;
}

function mentions(text) {
  if (!myName) return false;
  const escaped = myName.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return new RegExp(`(^|[^\\p{L}\\p{N}_])@?${escaped}($|[^\\p{L}\\p{N}_])`, "iu").test(text);
}

function add(parts, cls, time) {
  const stick = log.parentElement.scrollTop + log.parentElement.clientHeight
    >= log.parentElement.scrollHeight - 40;
  const li = document.createElement("li");
  if (cls) li.className = cls;
  const t = document.createElement("time");
  const when = time ? new Date(time * 1000) : new Date();
  t.dateTime = when.toISOString();
  t.textContent = when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  li.append(t, ...parts);
  log.append(li);
  while (log.children.length > KEEP) log.firstElementChild.remove();
  if (stick) li.scrollIntoView({ block: "end" });
}

const note = (text, cls = "note", time) => add([text], cls, time);

function showWho() {
  const ul = $("who");
  ul.replaceChildren(...present.map((n) => {
    const li = document.createElement("li");
    li.append(nameSpan(n));
    return li;
  }));
  $("count").textContent = `(${present.length})`;
}

function showTopic(topic) {
  const t = $("topic");
  t.textContent = topic ? `Topic: ${topic}` : "";
  t.hidden = !topic;
}

function setState(text, down) {
  state.textContent = text;
  state.classList.toggle("down", down);
  say.disabled = send.disabled = down;
}

// --- the connection --------------------------------------------------------------------------

function connect() {
  leaving = welcomed = false;
  setState("Connecting…", true);
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  ws = new WebSocket(`${scheme}//${location.host}/ws`);
  ws.onopen = () => {
    const hello = { type: "hello", version: 1, name: myName, client: "lanchat web" };
    if (epoch) hello.resume = { epoch, seq: lastSeq };
    ws.send(JSON.stringify(hello));
  };
  ws.onmessage = (e) => {
    let frame;
    try { frame = JSON.parse(e.data); } catch { return; }
    receive(frame);
  };
  ws.onclose = () => {
    ws = null;
    if (asking) return;  // the name or password form says what to do
    if (removed) { setState("An operator removed you from the room.", true); return; }
    if (leaving) { setState("You left. Reload the page to join again.", true); return; }
    const wait = Math.min(15, 2 ** retry++) + Math.random();
    setState(`Disconnected. Reconnecting in ${Math.round(wait)} s…`, true);
    setTimeout(connect, wait * 1000);
  };
}

function receive(f) {
  const fresh = typeof f.seq === "number" && f.seq > lastSeq;
  switch (f.type) {
    case "welcome":
      if (f.epoch !== epoch) lastSeq = 0;  // a new history: its seqs start again
      if (epoch) note("Reconnected.");
      epoch = f.epoch;
      welcomed = true;
      myName = f.name;
      maxLine = f.max_line || maxLine;
      retry = 0;
      $("room").textContent = `lanchat · ${f.room}`;
      showTopic(f.topic || "");
      document.title = `${f.room} · lanchat`;
      setState(`Connected as ${f.name}`, false);
      if (document.activeElement === document.body) say.focus();
      break;
    case "who":
      present = f.names;
      showWho();
      if (whoAsked) note(`Here (${f.count}): ${f.names.join(", ")}`);
      whoAsked = false;
      break;
    case "gap":
      note(f.message, "gap", f.time);
      break;
    case "message":
    case "action":
      if (f.history && !fresh) return;  // seen before a reconnect: no duplicates
      if (f.type === "action") add(["* ", nameSpan(f.from), ` ${f.text}`], mentioned(f), f.time);
      else add([nameSpan(f.from), `: ${f.text}`], mentioned(f), f.time);
      break;
    case "join":
      if (!fresh) return;
      if (!present.includes(f.name)) present.push(f.name);
      showWho();
      add([nameSpan(f.name), " joined."], "note", f.time);
      break;
    case "leave":
      if (!fresh) return;
      present = present.filter((n) => n !== f.name);
      showWho();
      add([nameSpan(f.name), ` left (${f.reason}).`], "note", f.time);
      break;
    case "nick":
      if (!fresh) return;
      present = present.map((n) => (n === f.old ? f.new : n));
      showWho();
      if (f.old === myName) {
        myName = f.new;
        localStorage.setItem("lanchat.name", f.new);
        setState(`Connected as ${f.new}`, false);
      }
      add([nameSpan(f.old), " is now ", nameSpan(f.new), "."], "note", f.time);
      break;
    case "moderation":
      if (!fresh) return;
      if (f.action === "operator" && f.name === myName) operator = true;
      if (f.action === "topic") showTopic(f.topic);
      note(f.text, "moderation", f.time);
      break;
    case "topic":
      note(f.topic ? `Topic: ${f.topic}` + (f.by ? ` (set by ${f.by})` : "") : "No topic is set.",
        "note", f.time);
      break;
    case "login-needed":
      plainLogin = f.password;
      if (!f.password) {  // plain http: no password is sent here; the message says where to go
        leaving = true;
        note(f.message, "note error", f.time);
        setState("This room needs a password.", true);
      } else if (password) {
        sendLogin();  // a reconnect: the password typed before
      } else {
        askPassword();
      }
      break;
    case "login-ok":
      $("login-form").hidden = true;
      $("say-form").hidden = false;
      break;
    case "error":
      note(f.message, "note error", f.time);
      if (!welcomed && f.code.startsWith("name") || f.code === "bad-name") askName();
      if (!welcomed && f.code === "wrong-password") { password = null; askPassword(); }
      if (f.code === "login-locked" || f.code === "plain-login") { password = null; leaving = true; }
      break;
    case "notice":  // the room's service: its backplane went away or came back
      note(f.message, "note", f.time);
      break;
    case "bye":
      if (f.reason === "quit" || f.reason === "refused") leaving = true;
      if (f.reason === "kicked" || f.reason === "banned") removed = true;  // final: no reconnect
      note(f.message, "note", f.time);
      break;
  }
  // Only room events count: private frames (welcome, who, error...) repeat the last seq.
  if (fresh && ROOM_EVENTS.has(f.type)) lastSeq = f.seq;
}

// "mark": nothing to show, only where to resume from (docs/protocol.md).
const ROOM_EVENTS = new Set(["message", "action", "join", "leave", "nick", "bye", "moderation", "mark"]);

const mentioned = (f) => (f.from !== myName && mentions(f.text) ? "mention" : "");

// --- what you type -----------------------------------------------------------------------------

const HELP = "Commands: /me ACTION, /nick NAME, /who, /topic, /quit; //text sends a line "
  + "starting with /.";
const OPERATOR_HELP = "Operator commands: /kick NAME [REASON], /mute NAME [MINUTES] (default "
  + "10), /unmute NAME, /ban NAME [REASON] (their address, until the server stops), "
  + "/unban NAME|ADDRESS, /topic TEXT (/topic - clears it).";

function frameFor(text) {
  if (/^\/\/?login(\s|$)/i.test(text)) return loginFrame(text);  // never a message
  if (!text.startsWith("/") || text.startsWith("//")) {
    return { type: "message", text: text.startsWith("//") ? text.slice(1) : text };
  }
  const [cmd, ...rest] = text.slice(1).split(" ");
  const arg = rest.join(" ").trim();
  const [name, ...more] = arg.split(" ");
  const extra = more.join(" ").trim();
  switch (cmd.toLowerCase()) {
    case "me": return arg ? { type: "action", text: arg } : null;
    case "nick": return arg ? { type: "nick", name: arg } : null;
    case "who": whoAsked = true; return { type: "who" };
    case "quit": leaving = true; return { type: "bye" };
    case "topic":  // the relay says who may set it (operators) and answers a query to anyone
      if (!arg) return { type: "topic" };
      return { type: "topic", text: arg === "-" ? "" : arg };
    case "kick": case "ban": return name ? { type: cmd.toLowerCase(), name, reason: extra } : null;
    case "unmute": return name ? { type: "unmute", name } : null;
    case "unban": return name ? { type: "unban", target: name } : null;
    case "mute":
      if (!name) return null;
      if (!extra) return { type: "mute", name };
      if (!/^[0-9]+$/.test(extra)) { note("Usage: /mute NAME [MINUTES]"); return null; }
      return { type: "mute", name, minutes: Number(extra) };
    default:
      note(operator ? `${HELP} ${OPERATOR_HELP}` : HELP);
      return null;
  }
}

function loginFrame(text) {  // a member becomes an operator: over https:// only (or where allowed)
  const arg = text.replace(/^\/\/?login\s*/i, "");
  if (!arg || text.startsWith("//")) {
    note("/login OPERATOR-PASSWORD makes you an operator; a line starting with /login is never sent.");
    return null;
  }
  if (!plainLogin) {
    note("Not sent: this page is not encrypted. Log in as an operator over https://, "
      + "or with `lanchat join --operator`.");
    return null;
  }
  return { type: "login", password: arg };
}

$("say-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = say.value.trim();
  if (!text || !ws || ws.readyState !== WebSocket.OPEN) return;
  const frame = frameFor(text);
  if (frame) {
    const json = JSON.stringify(frame);
    if (new TextEncoder().encode(json).length > maxLine) {  // kept in the box, to shorten
      note(`That is too long to send (at most ${maxLine} bytes). Shorten it, or send it in parts.`);
      return;
    }
    ws.send(json);
  }
  say.value = "";
});

$("name-form").addEventListener("submit", (e) => {
  e.preventDefault();
  myName = $("name").value.trim();
  asking = false;
  localStorage.setItem("lanchat.name", myName);
  $("name-form").hidden = true;
  $("say-form").hidden = false;
  connect();
});

function sendLogin() {
  ws.send(JSON.stringify({ type: "login", password }));
}

$("login-form").addEventListener("submit", (e) => {
  e.preventDefault();
  password = $("password").value;
  $("password").value = "";
  asking = false;
  $("login-form").hidden = true;
  $("say-form").hidden = false;
  if (ws && ws.readyState === WebSocket.OPEN) sendLogin();
  else connect();  // the relay stopped waiting meanwhile: the next login-needed sends it
});

function askPassword() {  // asked in this page; a reconnect sends it again without asking
  asking = true;
  $("say-form").hidden = true;
  $("login-form").hidden = false;
  setState("This room needs a password.", true);
  $("password").focus();
}

function askName() {  // asked once, remembered in this browser (again if the relay refused it)
  leaving = asking = true;  // no reconnect with a name the relay refused
  localStorage.removeItem("lanchat.name");
  $("say-form").hidden = true;
  $("name-form").hidden = false;
  setState("Choose a name to join.", true);
  $("name").focus();
}

if (myName) connect();
else askName();
