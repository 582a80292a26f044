// Live board: the browser side of the flask_wamp_bridge example.
//
// Login and logout are plain HTTP (fetch); everything live goes over one WAMP
// session opened with wampy.js on the app's own origin (new Wampy('/wamp')).
// The bridge takes the identity from the Flask session cookie, so the page
// never handles a token: after logging in it simply opens a new session.
"use strict";

(() => {
  const BOARD_POST = "app.board.post";
  const BOARD_HISTORY = "app.public.board.history";
  const BOARD_MESSAGES = "app.public.board.messages";
  const PRESENCE_LIST = "app.public.presence.list";
  const PRESENCE_TOPIC = "app.public.presence";
  const POKE = "app.poke";
  const NOTIFY = "app.notify";
  const MAX_SHOWN = 50;
  const teamChannel = (team) => `app.team.${team}.chat`; // members only: the app's authorizer decides

  const body = document.body;
  const $ = (id) => document.getElementById(id);
  const app = {
    user: body.dataset.user || null, // who the Flask session says we are
    wampy: null,
    details: null, // WELCOME details of the live session: authid, authrole
    generation: 0, // callbacks of replaced Wampy instances are ignored
    loggingOut: false,
    retries: 0, // our own reconnects after the server said GOODBYE (e.g. a worker restart)
    presence: { users: [], guests: 0 },
    team: null, // { name, subscriptionId } of the team channel this page follows
  };

  // --- small helpers ------------------------------------------------------------------

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text; // never innerHTML: user data
    return node;
  }

  function errorText(error) {
    if (!error) return "unknown error";
    if (error.argsList && typeof error.argsList[0] === "string") return error.argsList[0];
    return error.errorUri || error.message || String(error);
  }

  function avatar(name) {
    let hash = 0;
    for (const ch of name) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
    const node = el("span", "avatar", name.slice(0, 1).toUpperCase());
    node.style.background = `hsl(${hash % 360} 55% 52%)`;
    node.setAttribute("aria-hidden", "true");
    return node;
  }

  function clock(seconds) {
    return new Date(seconds * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  async function postJSON(url, data) {
    const response = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(data),
      credentials: "same-origin",
    });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(answer.error || `${response.status} ${response.statusText}`);
    return answer;
  }

  function toast(text) {
    const node = el("div", "toast", text);
    $("toasts").append(node);
    setTimeout(() => node.classList.add("gone"), 4000);
    setTimeout(() => node.remove(), 4600);
  }

  // --- rendering ------------------------------------------------------------------------

  function setState(state, text) {
    body.dataset.state = state;
    $("conn").dataset.state = state;
    $("conn").textContent = text;
  }

  function isMember() {
    return Boolean(app.user && app.details && app.details.authrole !== "anonymous");
  }

  function renderAccount() {
    $("login-form").hidden = Boolean(app.user);
    $("signed-in").hidden = !app.user;
    if (app.user) {
      $("me").textContent = app.user;
      $("me-avatar").replaceWith(Object.assign(avatar(app.user), { id: "me-avatar" }));
    }
    $("composer").hidden = !isMember();
    $("team-card").hidden = !isMember();
    $("guest-hint").hidden = isMember();
    $("guest-hint").textContent = app.details
      ? "You are watching as a guest. Log in to post and poke people."
      : "Log in to post and poke people.";
    const info = app.details
      ? `WAMP session ${app.details.session ?? app.wampy?.getSessionId() ?? ""} · ${app.details.authid} (${app.details.authrole})`
      : "No WAMP session.";
    $("session-info").textContent = info;
    renderPresence(app.presence);
  }

  function showBanner(text, action) {
    const banner = $("banner");
    banner.replaceChildren(el("p", "", text));
    if (action) {
      const button = el("button", "", action.label);
      button.type = "button";
      button.addEventListener("click", action.run);
      banner.append(button);
    }
    banner.hidden = false;
  }

  function hideBanner() {
    $("banner").hidden = true;
  }

  function messageNode(message) {
    const li = el("li", "message");
    li.dataset.id = message.id;
    li.dataset.author = message.author;
    if (app.user && message.author === app.user) li.classList.add("mine");
    const head = el("div", "meta");
    head.append(el("span", "author", message.author), el("time", "time", clock(message.at)));
    const via = el("span", "via", message.via === "http" ? "via HTTP" : "via WAMP");
    via.title = `handled by worker ${message.worker}`;
    head.append(via);
    const text = el("p", "text");
    // highlight @mentions without ever parsing HTML
    for (const part of message.text.split(/(@[a-z0-9][a-z0-9_-]{1,19})/)) {
      if (/^@[a-z0-9]/.test(part)) {
        const mention = el("span", "mention", part);
        if (app.user && part === `@${app.user}`) mention.classList.add("me");
        text.append(mention);
      } else if (part) {
        text.append(document.createTextNode(part));
      }
    }
    const bubble = el("div", "bubble");
    bubble.append(head, text);
    li.append(avatar(message.author), bubble);
    return li;
  }

  function addMessage(message, animate = true) {
    const list = $("messages");
    if (list.querySelector(`li[data-id="${Number(message.id)}"]`)) return; // seen (history + event)
    list.querySelector(".empty")?.remove();
    const node = messageNode(message);
    if (animate) node.classList.add("new");
    // keep the list ordered by id even if a live event overtakes the history call
    const later = [...list.children].find((li) => Number(li.dataset.id) > message.id);
    list.insertBefore(node, later || null);
    while (list.children.length > MAX_SHOWN) list.firstElementChild.remove();
    $("board-count").textContent = `${list.children.length} shown`;
    list.scrollTop = list.scrollHeight;
  }

  function renderHistory(messages) {
    for (const message of messages) addMessage(message, false);
  }

  function renderPresence(presence) {
    app.presence = presence;
    const list = $("online");
    list.replaceChildren();
    for (const name of presence.users) {
      const li = el("li", "person");
      li.dataset.user = name;
      const label = el("span", "name", name);
      li.append(avatar(name), label);
      if (name === app.user) {
        label.append(el("span", "you", " (you)"));
      } else if (isMember()) {
        const button = el("button", "poke", "Poke");
        button.type = "button";
        button.title = `Send ${name} a notification only they see`;
        button.addEventListener("click", () => poke(name));
        li.append(button);
      }
      list.append(li);
    }
    if (!presence.users.length) list.append(el("li", "empty", "No members online."));
    const guests = presence.guests || 0;
    $("guest-count").textContent = guests ? `+ ${guests} guest${guests === 1 ? "" : "s"} watching` : "";
  }

  function addNotification(note) {
    const list = $("notifications");
    list.querySelector(".empty")?.remove();
    const li = el("li", `note note-${note.kind}`);
    li.dataset.kind = note.kind;
    li.dataset.from = note.from;
    const text = note.kind === "poke" ? `${note.from} poked you` : `${note.from} mentioned you: “${note.text}”`;
    li.append(el("span", "what", text), el("time", "time", clock(note.at)));
    list.prepend(li);
    toast(text);
  }

  // --- the WAMP session -------------------------------------------------------------------

  function retire(wampy) {
    // stop an instance for good: no reconnects, and a GOODBYE if it is still live
    if (!wampy) return;
    wampy.setOptions({ autoReconnect: false });
    wampy.disconnect().catch(() => {});
  }

  async function connect() {
    const generation = ++app.generation;
    const current = () => generation === app.generation;
    retire(app.wampy);
    app.details = null;
    const wampy = new Wampy(body.dataset.wampPath, {
      realm: body.dataset.realm,
      onClose: () => current() && closed(),
      onReconnect: () => current() && setState("connecting", "reconnecting…"),
      // wampy renews the subscriptions after this callback: load the board a moment
      // later, so nothing published meanwhile is missed (messages merge by id)
      onReconnectSuccess: (details) => { if (current()) setTimeout(() => current() && joined(wampy, details, true), 300); },
      onError: (error) => {
        // an ABORT while reconnecting (e.g. logged out meanwhile): stop retrying
        if (current() && error && error.name === "AbortedError") refused(wampy, error);
      },
    });
    app.wampy = wampy;
    setState("connecting", "connecting…");
    let details;
    try {
      details = await wampy.connect();
    } catch (error) {
      if (current()) refused(wampy, error);
      return;
    }
    if (!current()) return;
    try {
      await wampy.subscribe(BOARD_MESSAGES, onBoard);
      await wampy.subscribe(PRESENCE_TOPIC, (event) => renderPresence(event.argsList[0]));
      if (details.authrole !== "anonymous") {
        await wampy.subscribe(NOTIFY, (event) => addNotification(event.argsList[0]));
      }
    } catch (error) {
      showBanner(`Could not subscribe: ${errorText(error)}`);
    }
    await joined(wampy, details, false);
  }

  function onBoard(event) {
    addMessage(event.argsList[0]);
  }

  async function recover(wampy) {
    // After a reconnect: the posts published while the socket was down, from the
    // event history of our (renewed) subscription (WAMP_BRIDGE_EVENT_HISTORY); addMessage merges by id.
    const { subscriptionId } = await wampy.subscribe(BOARD_MESSAGES, onBoard); // wampy's id, no new SUBSCRIBE
    const [events] = (await wampy.call("wamp.subscription.get_events", [subscriptionId, MAX_SHOWN])).argsList;
    for (const event of events.reverse()) addMessage(event.args[0]); // newest first: oldest first
    body.dataset.recovered = String(Number(body.dataset.recovered || 0) + 1);
  }

  async function joined(wampy, details, again) {
    app.retries = 0;
    app.details = { ...details, session: wampy.getSessionId() };
    const who = details.authrole === "anonymous" ? "guest" : details.authid;
    setState("live", `live · ${who}`);
    if (!app.loggingOut) hideBanner();
    renderAccount();
    // fetched after subscribing, so nothing published in between is missed
    try {
      if (again) {
        await recover(wampy).catch(async () => renderHistory((await wampy.call(BOARD_HISTORY)).argsList[0]));
      } else {
        renderHistory((await wampy.call(BOARD_HISTORY)).argsList[0]);
      }
      renderPresence((await wampy.call(PRESENCE_LIST)).argsList[0]);
    } catch (error) {
      if (!again) showBanner(`Could not load the board: ${errorText(error)}`);
    }
    if (isMember()) await followTeam(wampy, again);
  }

  // --- the team channel ------------------------------------------------------------------------

  function onTeamMessage(event) {
    const list = $("team-messages");
    // the router discloses the publisher: a page cannot sign as someone else
    const who = event.details.publisher_authid || "?";
    list.append(el("li", "team-message", `${who}: ${event.argsList[0]}`));
    while (list.children.length > MAX_SHOWN) list.firstElementChild.remove();
  }

  async function followTeam(wampy, again) {
    let team;
    try {
      team = (await (await fetch("/api/team", { credentials: "same-origin" })).json()).team;
    } catch {
      return;
    }
    renderTeam(team);
    if (!team) return;
    try {
      const { subscriptionId } = await wampy.subscribe(teamChannel(team), onTeamMessage);
      app.team = { name: team, subscriptionId };
      $("team-composer").hidden = false;
      await refreshTeamOnline();
    } catch (error) {
      $("team-error").textContent = `Cannot follow team ${team}: ${errorText(error)}`;
    }
  }

  async function refreshTeamOnline() {
    if (!app.team || !app.wampy) return;
    try {
      // presence: usernames of the channel's subscribers (never their session ids)
      const users = (await app.wampy.call("wamp.subscription.list_subscribers", [app.team.subscriptionId])).argsList[0];
      $("team-online").replaceChildren(...users.map((name) => {
        const li = el("li", "person");
        li.dataset.user = name;
        li.append(avatar(name), el("span", "name", name));
        return li;
      }));
    } catch (error) {
      $("team-error").textContent = errorText(error);
    }
  }

  function renderTeam(team) {
    $("team-name").textContent = team ? `team ${team}` : "join a team";
    for (const button of $("team-pick").querySelectorAll("button")) {
      button.classList.toggle("primary", button.dataset.team === team);
    }
    if (!team) {
      $("team-composer").hidden = true;
      $("team-online").replaceChildren();
    }
  }

  async function joinTeam(team) {
    $("team-error").textContent = "";
    try {
      await postJSON("/api/team", { team });
    } catch (error) {
      $("team-error").textContent = errorText(error);
      return;
    }
    if (app.team && app.wampy) await app.wampy.unsubscribe(app.team.subscriptionId).catch(() => {});
    app.team = null;
    $("team-messages").replaceChildren();
    if (app.wampy) await followTeam(app.wampy, false);
  }

  async function sendTeam(event) {
    event.preventDefault();
    const field = $("team-text");
    if (!app.team || !field.value.trim()) return;
    try {
      const text = field.value.trim();
      await app.wampy.publish(teamChannel(app.team.name), [text]);
      onTeamMessage({ details: { publisher_authid: app.user }, argsList: [text] }); // the router skips the sender
      field.value = "";
    } catch (error) {
      $("team-error").textContent = errorText(error);
    }
  }

  function refused(wampy, error) {
    retire(wampy);
    app.details = null;
    setState("error", "not connected");
    renderAccount();
    showBanner(`The server refused the live session (${errorText(error)}).`, { label: "Try again", run: connect });
  }

  async function closed() {
    // The session ended and wampy will not retry: the server said GOODBYE (a
    // logout, here or in another tab; a worker shutting down), or wampy gave up.
    app.details = null;
    if (app.loggingOut) return; // logout() shows the outcome
    const generation = app.generation;
    let user; // undefined: the server did not answer
    try {
      user = (await (await fetch("/api/me", { credentials: "same-origin" })).json()).user;
    } catch {
      user = undefined;
    }
    if (generation !== app.generation) return; // replaced meanwhile (login, logout)
    if (app.user && user === null) {
      loggedOut("You were logged out (in another tab or window); the server closed this page's live session.");
      return;
    }
    if (user !== undefined) app.user = user;
    renderAccount();
    if (app.retries < 5) {
      app.retries += 1;
      setState("connecting", "reconnecting…");
      setTimeout(() => generation === app.generation && connect(), 1000 * app.retries);
      return;
    }
    setState("offline", user === undefined ? "offline" : "disconnected");
    showBanner(user === undefined ? "The server cannot be reached." : "The live session ended.",
               { label: "Reconnect", run: () => { app.retries = 0; hideBanner(); connect(); } });
  }

  function loggedOut(text) {
    app.user = null;
    app.loggingOut = false;
    app.generation++; // ignore whatever the old instance still reports
    retire(app.wampy);
    app.wampy = null;
    app.details = null;
    setState("logged-out", "logged out");
    renderAccount();
    renderPresence({ users: [], guests: 0 });
    for (const li of $("messages").querySelectorAll("li.mine")) li.classList.remove("mine");
    $("notifications").replaceChildren(el("li", "empty", "Only you see these."));
    showBanner(text, { label: "Watch as guest", run: () => { hideBanner(); connect(); } });
  }

  // --- user actions ------------------------------------------------------------------------

  async function login(event) {
    event.preventDefault();
    $("login-error").textContent = "";
    try {
      const answer = await postJSON("/login", { username: $("username").value });
      app.user = answer.user;
    } catch (error) {
      $("login-error").textContent = errorText(error);
      return;
    }
    $("username").value = "";
    hideBanner();
    renderAccount();
    await connect(); // a new WebSocket carries the new session cookie: the bridge sees the user
  }

  async function logout() {
    app.loggingOut = true;
    let answer;
    try {
      answer = await postJSON("/logout", {});
    } catch (error) {
      app.loggingOut = false;
      showBanner(`Logout failed: ${errorText(error)}`);
      return;
    }
    const n = answer.closed_sessions;
    const ended = n === null || n === undefined
      ? "The server could not reach the router to end your live sessions."
      : `The server ended ${n} live WAMP session${n === 1 ? "" : "s"}.`;
    loggedOut(`You are logged out. ${ended}`);
  }

  async function post(event) {
    event.preventDefault();
    const field = $("text");
    const text = field.value;
    $("post-error").textContent = "";
    if (!text.trim() || !app.wampy) return;
    try {
      await app.wampy.call(BOARD_POST, [text]);
      field.value = "";
    } catch (error) {
      $("post-error").textContent = errorText(error);
    }
    field.focus();
  }

  async function poke(name) {
    try {
      await app.wampy.call(POKE, [name]);
      toast(`You poked ${name}`);
    } catch (error) {
      toast(`Could not poke ${name}: ${errorText(error)}`);
    }
  }

  // --- start ---------------------------------------------------------------------------------

  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", logout);
  $("composer").addEventListener("submit", post);
  $("team-composer").addEventListener("submit", sendTeam);
  for (const button of $("team-pick").querySelectorAll("button")) {
    button.addEventListener("click", () => joinTeam(button.dataset.team));
  }
  setInterval(refreshTeamOnline, 5000);
  $("text").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) $("composer").requestSubmit();
  });
  renderAccount();
  if (typeof Wampy !== "function") {
    setState("error", "wampy.js missing");
    showBanner("wampy.js did not load: run scripts/setup in the repository root (it installs it with npm).");
  } else {
    connect();
  }
})();
