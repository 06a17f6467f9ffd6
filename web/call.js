// The call: its session with the server (docs/protocol.md) and what the
// server's messages do to it. One WebSocket (connection.js keeps it alive
// across network trouble), a "publisher" PeerConnection that we offer on
// (publish.js) and a "subscriber" PeerConnection that the server offers on
// (everyone else's media comes down, tiles.js shows it).
import { Connection } from './connection.js';
import { Peer } from './peer.js';
import { getMedia } from './media.js';
import { $, addError, current, emit, mark, options, params, prefs, received, sb, screens, tiles } from './state.js';
import { detach, local, place, refresh, refreshAll, relocate, removeTile, setReconnecting, sizes } from './tiles.js';
import { muteBy, onPublishLayers, publishAll, negotiate, setPeerMaker, showLocalScreen } from './publish.js';
import { onSpeakers, startStats, stopStats } from './stats.js';
import { attachChat } from './chat.js';

export const ui = { notice: '' }; // a message for the banner that outlives the call ("replaced")

function connState(pc) {
  // Older Firefox has no connectionState; the ICE state is the next best thing.
  return pc ? pc.connectionState || pc.iceConnectionState : '-';
}

// callState is what the call is doing now: idle, connecting, joined,
// reconnecting, closed or error. Both the signaling and the media
// connections come back by themselves, so their trouble is reconnecting.
export function callState() {
  const s = current.session;
  const pcs = [sb.publisher, sb.subscriber].filter(Boolean).map(connState);
  const away = s?.conn?.state === 'away';
  return ui.base === 'joined' && (away || pcs.includes('failed') || pcs.includes('disconnected')) ? 'reconnecting' : ui.base;
}
ui.base = 'idle';

function setState(state, detail = '') {
  ui.base = state;
  ui.detail = detail;
  emit('render');
}

// The resume secret of the room's call, kept per tab, so that a reloaded
// page ends its old session at once (join's "replace").
const secretKey = (room) => `switchboard.resume.${room}`;
function storeSecret(room, secret) {
  try {
    if (secret) sessionStorage.setItem(secretKey(room), secret);
    else sessionStorage.removeItem(secretKey(room));
  } catch {} // storage may be off; only the replace is lost
}
function storedSecret(room) {
  try {
    return sessionStorage.getItem(secretKey(room));
  } catch {
    return null;
  }
}

// join starts the call; media, when given, is the promise of the stream the
// pre-join screen opened (its camera and microphone, already allowed).
export function join(room, name, media) {
  if (current.session) return;
  sb.errors.length = 0;
  sb.firstRemoteFrameAt = null;
  ui.notice = '';
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  // epoch counts the sessions (joins) of this call: a rejoin makes new PeerConnections.
  const s = { room, name, conn: null, pub: null, sub: null, stream: null, media, config: {}, epoch: 0 };
  current.session = s;
  s.send = (msg) => s.conn.send(msg);
  prefs.set('name', name);
  emit('joining', s);
  setState('connecting');
  refresh(local);

  sb.timings = { start: performance.now() };
  const hooks = {
    hello: (replace) => {
      mark('wsOpen');
      // ?token=: a join token; undefined fields are left out.
      return { type: 'join', room, name, token: params.get('token') || undefined, replace };
    },
    joined: (m, again) => onJoined(s, m, again),
    message: (m) => onMessage(s, m),
    away: (why) => {
      console.warn('switchboard: signaling connection lost:', why);
      emit('render');
    },
    rejoin: () => dropPeers(s),
    resumed: () => onResumed(s),
    draining: () => {
      s.draining = true;
      emit('render');
    },
    ended: (reason, detail) => onEnded(s, reason, detail),
  };
  s.conn = new Connection(`${proto}//${location.host}/ws`, hooks, storedSecret(room));
  // The address bar keeps the room, never our name: it is the room's link.
  forgetName();
}

export function leave() {
  const s = current.session;
  if (!s) return;
  storeSecret(s.room, null);
  teardown('closed');
}

function forgetName() {
  const url = new URL(location.href);
  if (!url.searchParams.has('name')) return;
  url.searchParams.delete('name');
  history.replaceState(null, '', url);
}

// errorText says a refusal of the server in plain words, with what to do.
export function errorText(code, message) {
  switch (code) {
    case 'room-full': return 'This room is full. Try again later, or ask the person who invited you.';
    case 'server-full': return 'The server is busy right now. Try again in a few minutes.';
    case 'token-expired': return 'Your link has expired. Ask for a new link to this call.';
    case 'unauthorized': return 'This link does not let you in. Ask for a new link to this call.';
    case 'forbidden': return 'Your link is for another room, or does not allow this. Ask for a new link.';
    case 'too-many-connections': return 'Too many attempts from your network. Wait a minute, then try again.';
    case 'shutting-down': return 'The server is restarting. Try again in a minute.';
    case 'bad-message': return /room/.test(message) ? 'That room name is not valid: use letters, digits, _ - and . only.' : `Something went wrong (${message}).`;
    default: return `Something went wrong (${code}: ${message}).`;
  }
}

// onEnded: the connection gave up for good.
function onEnded(s, reason, detail) {
  if (current.session !== s) return;
  if (reason === 'replaced') {
    storeSecret(s.room, null);
    teardown('closed', 'replaced');
    ui.notice = 'You joined this call from another tab or window.';
    return emit('render');
  }
  if (reason === 'removed' || reason === 'room-ended') {
    // A moderator's doing: final, like "replaced"; the reason stays on the join screen.
    storeSecret(s.room, null);
    const why = String(detail?.message || '').trim();
    teardown('closed', reason);
    ui.notice =
      reason === 'removed' ? `You were removed from the call${why ? `: ${why}` : '.'}`
      : s.endingRoom ? 'You ended the call for everyone.'
      : `The call was ended by the host${why ? `: ${why}` : '.'}`;
    return emit('render');
  }
  if (reason === 'refused') addError(errorText(detail.code, detail.message));
  else if (reason === 'gave-up') addError('The connection to the server was lost and did not come back within 5 minutes. Check your network, then join again.');
  else addError(`Could not reach the server (code ${detail.code}${detail.reason ? `, ${detail.reason}` : ''}). Check your network, then join again.`);
  teardown(reason === 'closed' ? 'closed' : 'error', reason === 'refused' ? detail.code : reason === 'closed' ? `code ${detail.code}` : '');
}

// moderate sends a moderator's action (docs/protocol.md "moderate"): mute
// (kind 'audio' or 'video') or remove a participant, or end the room for
// everyone. The server refuses it ("forbidden") without the admin right.
export function moderate(action, fields = {}) {
  const s = current.session;
  if (!s || !sb.you?.admin) return false;
  if (action === 'end-room') s.endingRoom = true;
  return s.send({ type: 'moderate', action, ...fields });
}

function teardown(state, detail) {
  const s = current.session;
  if (!s) return;
  current.session = null;
  s.conn.leave();
  dropPeers(s);
  stopStats();
  s.stream?.getTracks().forEach((t) => t.stop());
  s.screen?.stream.getTracks().forEach((t) => t.stop());
  $('local').srcObject = null;
  showLocalScreen(null);
  for (const id of [...tiles.keys(), ...screens.keys()]) removeTile(id);
  Object.assign(sb, { you: null, participants: {} });
  $('enable-audio').hidden = true;
  setState(state, detail);
  emit('ended', s);
}

// dropPeers closes both PeerConnections and forgets what they received, for
// a new session (a rejoin) or none; the tiles and the local media stay.
function dropPeers(s) {
  s.epoch++;
  for (const peer of [s.pub, s.sub]) peer?.close();
  s.pub = s.sub = null;
  for (const track of [...received.keys()]) detach(track);
  sizes.reset(); // the new session is told every size afresh
  Object.assign(sb, { publisher: null, subscriber: null, tracks: {}, streams: {}, publishLayers: {} });
  emit('render');
}

function onMessage(s, m) {
  if (!m) return addError('The server sent something this page does not understand. Reload the page.');
  switch (m.type) {
    case 'offer':
      if (m.target === 'subscriber') onSubscriberOffer(s, m.sdp);
      return;
    case 'answer':
      if (m.target === 'publisher' && s.pub) s.pub.onAnswer(m.sdp);
      return;
    case 'candidate': {
      const peer = m.target === 'publisher' ? s.pub : m.target === 'subscriber' ? s.sub : null;
      if (peer && m.candidate) peer.addRemoteCandidate(m.candidate);
      return;
    }
    case 'participant-joined':
      emit('toast', `${m.participant?.name ?? 'Someone'} joined`);
      return addParticipant(m.participant);
    case 'participant-updated': // reconnecting or back
      return addParticipant(m.participant);
    case 'participant-left':
      if (sb.participants[m.participant?.id] != null) emit('toast', `${sb.participants[m.participant.id]} left`);
      return removeParticipant(m.participant.id);
    case 'track-published': // the media itself arrives with the next subscriber offer
    case 'track-updated':
    case 'track-muted':
      return setTrackInfo(m.track);
    case 'track-unpublished':
      return removeTrackInfo(m.track);
    case 'stream-state':
      return onStreamState(m);
    case 'publish-layers':
      return onPublishLayers(s, m);
    case 'speakers':
      return onSpeakers(m.speakers);
    case 'muted': // a moderator muted our microphone or turned our camera off
      return onMutedBy(s, m);
    case 'error':
      // A server that does not know "mute" yet: the others just see no icon.
      if (m.code === 'unknown-type') return console.warn('switchboard: the server refused a message:', m.message);
      return addError(errorText(m.code, m.message));
    default:
      console.warn('switchboard: unknown message type', m.type);
  }
}

function onMutedBy(s, m) {
  const source = m.kind === 'audio' ? 'microphone' : m.kind === 'video' ? 'camera' : null;
  if (!source) return;
  muteBy(s, source);
  const who = m.by?.name || 'The host';
  emit('toast', source === 'microphone' ? `${who} muted your microphone` : `${who} turned your camera off`);
}

// onJoined starts a session: the first of the call, or a new one after the
// old one was lost (again), which keeps the tiles of those still here and
// publishes the same camera, microphone and screen again.
async function onJoined(s, m, again) {
  mark('joined');
  if (again) sb.reconnects.rejoined++;
  s.draining = false;
  sb.you = m.you;
  storeSecret(s.room, m.resume?.secret);
  s.config = Array.isArray(m.iceServers) ? { iceServers: m.iceServers } : {};
  const here = new Set((m.participants || []).map((p) => p.id));
  for (const id of new Set([...Object.keys(sb.participants), ...tiles.keys(), ...screens.keys()])) {
    if (!here.has(id)) removeParticipant(id);
  }
  for (const p of m.participants || []) addParticipant(p);
  for (const t of m.tracks || []) setTrackInfo(t);

  // The subscriber exists before getUserMedia, which can take seconds (a
  // permission prompt), because the server may offer as soon as we joined.
  s.sub = makePeer(s, 'subscriber');
  s.sub.pc.ontrack = onTrack;
  attachChat(s.sub.pc); // the room's data channels come with the server's first offer
  sb.subscriber = s.sub.pc;
  setState('joined');
  startStats();
  refresh(local);

  // The camera and microphone are asked for once per call.
  const epoch = s.epoch;
  s.media ??= options.publish ? getMedia(addError, { camera: prefs.get('camera'), microphone: prefs.get('microphone') }) : Promise.resolve(null);
  const stream = await s.media;
  mark('gotMedia');
  if (current.session !== s) return stream?.getTracks().forEach((t) => t.stop());
  if (s.epoch !== epoch) return; // a newer session publishes it
  if (s.stream !== stream) $('local').srcObject = s.stream = stream;
  refresh(local);
  emit('controls');
  publishAll(s);
}

// onResumed: the session is back; the media connections may need help.
function onResumed(s) {
  sb.reconnects.resumed++;
  s.draining = false;
  if (s.pub?.offer) s.send(s.pub.offer); // its answer was lost, or the offer was
  for (const peer of [s.pub, s.sub]) if (peer?.signaled) peer.markSignaled(); // candidates that found no socket
  s.pub?.afterOutage(['failed', 'disconnected']);
  s.sub?.afterOutage(['failed', 'disconnected', 'checking']);
  emit('render');
}

// makePeer makes the PeerConnection target names. A path that died comes
// back through an ICE restart: the publisher is ours to offer again, the
// subscriber the server's (restart-ice).
function makePeer(s, target) {
  const peer = new Peer(target, s.config, {
    send: s.send,
    error: (msg) => addError(`The ${target === 'publisher' ? 'outgoing' : 'incoming'} media connection had a problem (${msg}).`),
    state: () => {
      const state = connState(peer.pc);
      if (state === 'connected') mark(`${target}Connected`);
      if (state === 'disconnected' || state === 'failed') s.conn.probe();
      emit('render');
    },
    restart: target === 'publisher' ? () => negotiate(s, true) : () => s.send({ type: 'restart-ice', target }),
    ready: () => s.conn.healthy,
  });
  return peer;
}
setPeerMaker(makePeer);

function onSubscriberOffer(s, sdp) {
  const sub = s.sub;
  if (!sub) return;
  mark('subscriberOffer');
  sub.run(async () => {
    await sub.setRemote({ type: 'offer', sdp });
    await sub.pc.setLocalDescription(await sub.pc.createAnswer());
    s.send({ type: 'answer', target: 'subscriber', sdp: sub.pc.localDescription.sdp });
    sub.markSignaled();
    // A transceiver the server stopped sending on keeps its track object, muted
    // rather than ended, so its track leaves the tile here.
    for (const t of sub.pc.getTransceivers()) {
      if (t.currentDirection !== 'recvonly' && t.currentDirection !== 'sendrecv') detach(t.receiver.track);
    }
    relocate(); // a reused transceiver may carry another track now
  });
}

function onTrack(e) {
  const id = e.streams[0]?.id;
  if (!id) return console.warn('switchboard: a track without a stream id', e.track.id);
  const track = e.track;
  mark(`first${track.kind === 'video' ? 'Video' : 'Audio'}Track`);
  place(track, id, e.transceiver);
  track.onended = () => detach(track);
}

function setTrackInfo(t) {
  if (!t?.id) return;
  sb.tracks[t.id] = { ...sb.tracks[t.id], ...t };
  if (!('muted' in t)) delete sb.tracks[t.id].muted;
  relocate(); // its source decides which tile shows it
  refreshAll();
  emit('participants');
}

function removeTrackInfo(t) {
  if (!t?.id) return;
  delete sb.tracks[t.id];
  delete sb.streams[t.id];
  sizes.forget(t.id);
  for (const [track, r] of [...received]) if (r.id === t.id) detach(track);
  refreshAll();
  emit('participants');
}

function onStreamState(m) {
  if (typeof m.trackId !== 'string') return;
  sb.streams[m.trackId] = { paused: !!m.paused, layer: m.layer || null };
  refreshAll();
}

function addParticipant(p) {
  if (!p?.id || p.id === sb.you?.id) return;
  sb.participants[p.id] = p.name;
  // Its client lost the connection to the server: its tile and video stay.
  setReconnecting(p.id, !!p.reconnecting);
  emit('participants');
  emit('render');
}

function removeParticipant(id) {
  delete sb.participants[id];
  removeTile(id);
  emit('participants');
  emit('render');
}
