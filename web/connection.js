// The signaling connection of the Switchboard client and how it survives the
// network (docs/protocol.md "Reconnecting"): one WebSocket at a time, pings
// that find a dead one, reconnection with backoff, and the choice between
// resuming the session and joining again. It knows nothing of media: what
// the call needs on the way back, the app does in the callbacks.

const PING_EVERY = 2000; // ms between our pings while the socket is open
const DEAD_AFTER = 5000; // ms of silence after which the socket is dead
const HEALTHY_WITHIN = 3000; // ms since we last heard from the server, for healthy
const PROBE_TIMEOUT = 1500; // ms a probe's ping may take when the media paths broke
// ms a reconnection attempt may take to open: short while the outage is
// young, so that the try in flight when the network returns (its SYN lost)
// is replaced within a moment rather than 3 s later; longer after, for
// slow networks.
const FAST_OPEN_TIMEOUT = 1500;
const OPEN_TIMEOUT = 5000;
const GIVE_UP_AFTER = 5 * 60_000; // ms away before we stop trying
const FAST_FOR = 30_000; // ms away during which tries are at most FAST_CAP apart
const FAST_CAP = 1500;
const SLOW_CAP = 5000;
// Join refusals that may pass: we try again later instead of giving up.
const TRANSIENT = new Set(['shutting-down', 'server-full', 'too-many-connections', 'rate-limited', 'internal']);
// Close code for a socket we abandon: not 1000 or 1001, which tell the server
// that we left, should the close frame reach it once the network is back.
const ABANDONED = 4000;
const REPLACED = 4001;
// The server ended our part in the call for good: a moderator removed us
// (4002, "removed") or ended the room (4003, "room-ended"). Never reconnect.
const FINAL = { 4002: 'removed', 4003: 'room-ended' };
// A cluster sends a join to the node that has the room: redirects in a row
// past this are a loop, and the join is refused instead.
const MAX_REDIRECTS = 5;

// signalingURL is the WebSocket of the node whose page is at url.
export function signalingURL(url) {
  const u = new URL(url, location.href);
  u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  u.pathname = '/ws';
  u.search = u.hash = '';
  return u.href;
}

// Connection opens the WebSocket at url and joins with the message that
// hooks.hello(replace) returns. Once joined, a socket that closes or goes
// silent is replaced by a new one that resumes the session (hooks.resumed)
// or, when the server no longer has it, joins again (hooks.rejoin before
// the join goes out, then hooks.joined(m, true)). Numbered messages reach
// hooks.message once each, in order. It ends (hooks.ended(reason, detail))
// In a cluster a join may be redirected to another node: the connection
// follows at once, and stays there. A node that cannot be reached again
// after one try is left: the next tries go back to the node the page came
// from (the entry), naming the lost node in the join's avoid so that the
// room is placed elsewhere. A draining node names a node to move to: the
// connection leaves and joins there (hooks.rejoin, then joined(m, true)).
//
// It ends (hooks.ended(reason, detail))
// on leave(), on "replaced", when the first join fails or is refused
// ('closed', 'refused'), on "removed" and "room-ended" (a moderator's
// doing; detail is the server's error message, with its reason), and after
// 5 minutes away ('gave-up'). probe() asks
// it to check the socket at once, when the media paths broke.
//
// hooks: {hello(replace), joined(m, again), message(m), away(why),
// rejoin(), resumed(m), draining(m), ended(reason, detail)}.
export class Connection {
  constructor(url, hooks, replace) {
    this.url = url;
    this.entry = url; // where the page came from: the way back in when a node is lost
    this.node = null; // the cluster node we joined (joined.node)
    this.avoid = null; // a node we could not reach, for the next join
    this.redirects = 0; // in a row, without a join
    this.failedOpens = 0; // tries in a row whose socket never opened
    this.hooks = hooks;
    this.replace = replace || null; // secret of an older session our next join ends
    this.secret = null; // resume secret of the current session
    this.lastSeq = 0; // highest numbered message handled
    this.joined = false; // a join succeeded at least once
    this.state = 'connecting'; // 'connecting' | 'up' | 'away' | 'ended'
    this.awaySince = null; // performance.now() when the socket was lost
    this.ws = null;
    // accepted: the server took our join or resume on this socket (it sent
    // joined, resumed, or a numbered message); until then only they go out.
    this.accepted = false;
    this.attempts = 0;
    this.attemptAt = 0;
    this.retry = null;
    this.onOnline = () => this.state === 'away' && !this.ws && this.hurry();
    addEventListener('online', this.onOnline);
    this.open();
  }

  // send sends msg if the session is there to take it; false if not.
  send(msg) {
    return this.accepted && this.raw(msg);
  }

  // healthy says whether the session is up and the server answered lately:
  // what we send now arrives.
  get healthy() {
    return this.state === 'up' && this.ws?.readyState === WebSocket.OPEN && performance.now() - this.heardAt < HEALTHY_WITHIN;
  }

  // leave ends the session at the server and stops.
  leave() {
    if (this.state === 'ended') return;
    this.send({ type: 'leave' });
    const ws = this.ws;
    this.stop();
    if (ws && ws.readyState <= WebSocket.OPEN) ws.close(1000);
  }

  open() {
    this.retry = null;
    this.accepted = false;
    this.attemptAt = performance.now();
    if (this.state === 'away' && this.failedOpens > 0 && this.url !== this.entry) {
      // The node we were on is gone: back in through the entry, elsewhere.
      console.info(`switchboard: node ${this.node || this.url} unreachable; joining again through ${this.entry}`);
      this.avoid = this.node;
      this.url = this.entry;
      this.secret = null; // our session died with that node
    }
    if (this.state === 'away') console.info(`switchboard: reconnecting, try ${this.attempts}`);
    const ws = (this.ws = new WebSocket(this.url));
    let opened = false;
    // A connect into a dead network hangs for minutes; a new one may pass.
    const young = this.awaySince != null && performance.now() - this.awaySince < FAST_FOR;
    const opening = this.joined && setTimeout(() => this.lost(ws, 'no answer from the server'), young ? FAST_OPEN_TIMEOUT : OPEN_TIMEOUT);
    ws.onopen = () => {
      clearTimeout(opening);
      opened = true;
      this.failedOpens = 0;
      this.heard();
      this.pinger = setInterval(() => this.tick(ws), 1000);
      if (this.secret) this.raw({ type: 'resume', secret: this.secret, seq: this.lastSeq });
      else this.join();
    };
    ws.onmessage = (e) => ws === this.ws && this.receive(e.data);
    ws.onclose = (e) => {
      clearTimeout(opening);
      if (ws !== this.ws) return;
      if (!opened) this.failedOpens++;
      if (e.code === REPLACED) return this.end('replaced');
      if (FINAL[e.code]) return this.end(FINAL[e.code], { code: FINAL[e.code], message: e.reason || '' });
      this.lost(ws, `code ${e.code}${e.reason ? `, ${e.reason}` : ''}`, e);
    };
  }

  join() {
    this.accepted = false;
    this.lastSeq = 0; // a new session numbers its messages from 1
    if (this.joined) this.hooks.rejoin();
    const hello = this.hooks.hello(this.replace || undefined);
    if (this.avoid) hello.avoid = this.avoid;
    if (this.ticket) hello.ticket = this.ticket;
    this.raw(hello);
  }

  raw(msg) {
    if (this.ws?.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(msg));
    return true;
  }

  receive(data) {
    this.heard();
    let m;
    try {
      m = JSON.parse(data);
    } catch {
      return this.hooks.message(null);
    }
    if (typeof m.seq === 'number') {
      this.accepted = true; // the session's own messages come only once it is ours
      if (m.seq <= this.lastSeq) return; // sent again after a resume: handled already
      this.lastSeq = m.seq;
    }
    switch (m.type) {
      case 'pong':
        return;
      case 'joined': {
        this.accepted = true;
        const again = this.joined;
        this.secret = m.resume?.secret ?? null;
        this.replace = null;
        this.joined = true;
        this.node = m.node || null;
        this.avoid = null;
        this.ticket = null;
        this.redirects = 0;
        this.back();
        return this.hooks.joined(m, again);
      }
      case 'resumed':
        this.accepted = true;
        this.back();
        return this.hooks.resumed(m);
      case 'draining':
        if (m.url && signalingURL(m.url) !== this.url) return this.move(m);
        return this.hooks.draining(m);
      case 'redirect':
        return this.redirect(m);
      case 'error':
        return this.error(m);
      default:
        return this.hooks.message(m);
    }
  }

  error(m) {
    if (m.code === 'replaced') return this.end('replaced');
    if (m.code === 'removed' || m.code === 'room-ended') return this.end(m.code, m);
    if (this.accepted) {
      // The server closes the socket next; we come back (to a server that runs).
      if (m.code === 'shutting-down') return this.hooks.draining(m);
      if (m.code === 'connection-failed') return console.warn('switchboard: the server ended the session:', m.message);
      return this.hooks.message(m); // about one message; the session goes on
    }
    // An answer to our resume or join.
    if (m.code === 'resume-failed') {
      this.replace = this.secret;
      this.secret = null;
      return this.join(); // on this socket
    }
    if (this.joined && TRANSIENT.has(m.code)) return this.lost(this.ws, m.code);
    this.end('refused', m);
  }

  // redirect follows the cluster to the node that has the room, at once.
  redirect(m) {
    if (this.accepted || typeof m.url !== 'string') return;
    if (++this.redirects > MAX_REDIRECTS) return this.end('refused', { code: 'redirect-loop', message: 'the servers keep sending us elsewhere' });
    console.info(`switchboard: the room is on node ${m.node}; joining there`);
    this.drop();
    this.url = signalingURL(m.url);
    this.ticket = m.ticket || null; // the node it names takes us without deciding again
    this.open();
  }

  // move leaves a draining node for the one it names and joins there.
  move(m) {
    console.info(`switchboard: this server is draining; moving to node ${m.node}`);
    this.send({ type: 'leave' });
    const ws = this.ws;
    this.ws = null;
    clearInterval(this.pinger);
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = null;
      ws.close(1000);
    }
    this.secret = null; // the session stays behind
    this.url = signalingURL(m.url);
    this.state = 'away';
    this.awaySince = performance.now();
    this.hooks.away('moving to another server');
    this.open();
  }

  back() {
    this.state = 'up';
    this.awaySince = null;
    this.attempts = 0;
  }

  heard() {
    this.heardAt = performance.now();
    this.pingedAt = null;
  }

  // tick pings, and finds the socket dead when a ping sent at least 3 s ago
  // went unanswered and nothing came for 5 s (a late timer in a background
  // tab alone is not silence).
  tick(ws) {
    if (ws !== this.ws) return;
    const now = performance.now();
    if (now - this.heardAt > DEAD_AFTER && this.pingedAt && now - this.pingedAt > DEAD_AFTER - PING_EVERY) {
      return this.lost(ws, 'no answer from the server');
    }
    if (now - (this.pingSentAt ?? 0) >= PING_EVERY - 100) {
      this.pingSentAt = now;
      this.pingedAt ??= now;
      this.raw({ type: 'ping' });
    }
  }

  // probe is told that the media paths broke: the network may have changed
  // under the socket too. A ping unanswered for 1.5 s then says it did.
  probe() {
    const ws = this.ws;
    if (this.state !== 'up' || !ws || this.probing) return;
    const heardAt = this.heardAt;
    this.probing = setTimeout(() => {
      this.probing = null;
      if (this.heardAt === heardAt) this.lost(ws, 'no answer to a probe');
    }, PROBE_TIMEOUT);
    this.pingedAt ??= performance.now();
    this.raw({ type: 'ping' });
  }

  // lost abandons ws and tries again, unless we never joined: then it ends.
  lost(ws, why, closeEvent) {
    if (ws !== this.ws || this.state === 'ended') return;
    if (!this.joined) return this.end('closed', closeEvent || { code: 0, reason: why });
    this.drop();
    if (this.state !== 'away') {
      this.state = 'away';
      this.awaySince = performance.now();
      this.hooks.away(why);
    }
    this.schedule();
  }

  // schedule plans the next attempt: the first within 0.5 s, then after
  // growing, jittered delays counted from the previous attempt's start, at
  // most 1.5 s apart for the first 30 s and 5 s after.
  schedule() {
    const now = performance.now();
    const away = now - this.awaySince;
    if (away > GIVE_UP_AFTER) return this.end('gave-up');
    const n = this.attempts++;
    const cap = away < FAST_FOR ? FAST_CAP : SLOW_CAP;
    const delay = n === 0 ? Math.random() * 500 : Math.min(cap, 500 * 2 ** n) * (0.5 + Math.random() / 2);
    const from = n === 0 ? now : this.attemptAt;
    this.retry = setTimeout(() => this.open(), Math.max(0, from + delay - now));
  }

  // hurry skips the wait: the browser says the network is back.
  hurry() {
    clearTimeout(this.retry);
    this.open();
  }

  // drop forgets the current socket and closes it as abandoned.
  drop() {
    const ws = this.ws;
    this.ws = null;
    clearInterval(this.pinger);
    if (!ws) return;
    ws.onopen = ws.onmessage = ws.onclose = null;
    if (ws.readyState <= WebSocket.OPEN) ws.close(ABANDONED, 'reconnecting');
  }

  stop() {
    this.state = 'ended';
    this.awaySince = null;
    clearTimeout(this.retry);
    clearInterval(this.pinger);
    removeEventListener('online', this.onOnline);
    if (this.ws) this.ws.onopen = this.ws.onmessage = this.ws.onclose = null;
    this.ws = null;
  }

  end(reason, detail) {
    if (this.state === 'ended') return;
    this.drop();
    this.stop();
    this.hooks.ended(reason, detail);
  }
}
