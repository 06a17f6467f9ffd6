// Switchboard browser client. The signaling protocol is docs/protocol.md: one
// WebSocket, a "publisher" PeerConnection that we offer on (our camera and
// microphone go up) and a "subscriber" PeerConnection that the server offers
// on (everyone else's media comes down). connection.js keeps the WebSocket
// alive across network trouble; this file keeps the call on screen meanwhile.
import { Connection } from './connection.js';
import { Peer } from './peer.js';
import { addCamera, getMedia, msid, preferCodec, setLayers, SizeReporter } from './media.js';

const loadedAt = performance.now();

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const CODECS = { vp8: 'video/VP8', vp9: 'video/VP9', h264: 'video/H264' };
const preferredCodec = CODECS[(params.get('codec') || 'vp8').toLowerCase()] || CODECS.vp8;
// ?simulcast=0 publishes the camera as a single encoding, for debugging.
const simulcast = params.get('simulcast') !== '0';
// ?publish=0 joins as a viewer: no camera or microphone (a screen share still works).
const publishMedia = params.get('publish') !== '0';

const tiles = new Map(); // participant id -> {el, video, stream, label, ...}: camera and microphone
const screens = new Map(); // participant id -> the tile of their screen share
const received = new Map(); // MediaStreamTrack shown in a tile -> {id: server track id, participant, transceiver}
let session = null; // the current call; callbacks of an older one compare against it and stop
let baseState = 'idle';
let stateDetail = '';
let notice = ''; // a message for the banner that outlives the call ("replaced")

const sb = (window.switchboard = {
  state: 'idle',
  you: null,
  publisher: null,
  subscriber: null,
  participants: {},
  errors: [],
  loadedAt,
  firstRemoteFrameAt: null,
  // performance.now() of each step of the last join, for the load tool and
  // for finding where a slow join spends its time.
  timings: {},
  // Server track id -> its info from joined, track-published and track-updated.
  tracks: {},
  // Server track id -> {paused, layer}: the last stream-state of each received video.
  streams: {},
  // Publisher mid -> the rids that the last publish-layers left active.
  publishLayers: {},
  // How often the call came back after the signaling connection broke: the
  // same session (resumed) or a new one (rejoined).
  reconnects: { resumed: 0, rejoined: 0 },
  // A participant with a screen share has two tiles; each id is listed once.
  tiles: () => [...new Set([...document.querySelectorAll('#grid .tile[data-participant]')].map((el) => el.dataset.participant))],
});
Object.defineProperties(sb, {
  // The last numbered server message handled.
  lastSeq: { enumerable: true, get: () => session?.conn?.lastSeq ?? 0 },
  // performance.now() when the signaling connection was lost; null while up.
  awaySince: { enumerable: true, get: () => session?.conn?.awaySince ?? null },
});

// track-settings: the size each received video is shown at.
const sizes = new SizeReporter((trackId, width, height) => session?.send({ type: 'track-settings', trackId, width, height }));

// ---- visible state ----

function connState(pc) {
  // Older Firefox has no connectionState; the ICE state is the next best thing.
  return pc ? pc.connectionState || pc.iceConnectionState : '-';
}

function setState(state, detail = '') {
  baseState = state;
  stateDetail = detail;
  render();
}

function render() {
  const pcs = [sb.publisher, sb.subscriber].filter(Boolean).map(connState);
  const away = session?.conn?.state === 'away';
  // Both the signaling and the media connections come back by themselves
  // (connection.js), so their trouble is shown as reconnecting, not as an error.
  sb.state = baseState === 'joined' && (away || pcs.includes('failed') || pcs.includes('disconnected')) ? 'reconnecting' : baseState;
  const status = $('status');
  status.dataset.state = sb.state;
  status.textContent = `${sb.state}${stateDetail ? ` (${stateDetail})` : ''} · publisher: ${connState(sb.publisher)} · subscriber: ${connState(sb.subscriber)}`;
  const n = Object.keys(sb.participants).length + (sb.you ? 1 : 0);
  $('room-info').textContent = session ? `Room ${session.room} · ${n} participant${n === 1 ? '' : 's'}` : '';
  const banner = $('banner');
  banner.textContent =
    sb.state === 'reconnecting' ? 'Reconnecting…'
    : session?.draining ? 'The server is restarting; the call reconnects by itself.'
    : notice;
  banner.hidden = !banner.textContent;
}

function addError(msg) {
  sb.errors.push(msg);
  const li = document.createElement('li');
  li.textContent = msg;
  $('errors').append(li);
  console.warn('switchboard:', msg);
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

// ---- session ----

function join(room, name) {
  if (session) return;
  sb.errors.length = 0;
  $('errors').replaceChildren();
  sb.firstRemoteFrameAt = null;
  notice = '';
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  // epoch counts the sessions (joins) of this call: a rejoin makes new PeerConnections.
  const s = (session = { room, name, conn: null, pub: null, sub: null, stream: null, media: null, config: {}, epoch: 0 });
  s.send = (msg) => s.conn.send(msg);
  $('join-form').hidden = true;
  $('call').hidden = false;
  updateControls();
  setState('connecting');

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
      render();
    },
    rejoin: () => dropPeers(s),
    resumed: () => onResumed(s),
    draining: () => {
      s.draining = true;
      render();
    },
    ended: (reason, detail) => onEnded(s, reason, detail),
  };
  s.conn = new Connection(`${proto}//${location.host}/ws`, hooks, storedSecret(room));
}

function leave() {
  if (!session) return;
  storeSecret(session.room, null);
  teardown('closed');
  // Without the name a reload shows the form instead of joining again.
  forgetName();
}

function forgetName() {
  const url = new URL(location.href);
  url.searchParams.delete('name');
  history.replaceState(null, '', url);
}

// onEnded: the connection gave up for good.
function onEnded(s, reason, detail) {
  if (session !== s) return;
  if (reason === 'replaced') {
    storeSecret(s.room, null);
    teardown('closed', 'replaced');
    forgetName(); // a reload must not take the call back from the other tab
    notice = 'You joined this call from another tab or window.';
    return render();
  }
  if (reason === 'refused') addError(`server error: ${detail.code}: ${detail.message}`);
  else if (reason === 'gave-up') addError('lost the connection to the server and could not get it back within 5 minutes');
  else addError(`WebSocket closed unexpectedly: code ${detail.code}${detail.reason ? `, ${detail.reason}` : ''}`);
  teardown(reason === 'closed' ? 'closed' : 'error', reason === 'refused' ? detail.code : reason === 'closed' ? `code ${detail.code}` : '');
}

function teardown(state, detail) {
  const s = session;
  if (!s) return;
  session = null;
  s.conn.leave();
  dropPeers(s);
  s.stream?.getTracks().forEach((t) => t.stop());
  s.screen?.stream.getTracks().forEach((t) => t.stop());
  $('local').srcObject = null;
  showLocalScreen(null);
  for (const id of [...tiles.keys(), ...screens.keys()]) removeTile(id);
  Object.assign(sb, { you: null, participants: {} });
  $('enable-audio').hidden = true;
  $('call').hidden = true;
  $('join-form').hidden = false;
  setState(state, detail);
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
  render();
}

function onMessage(s, m) {
  if (!m) return addError('unparseable message from the server');
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
    case 'participant-updated': // reconnecting or back
      return addParticipant(m.participant);
    case 'participant-left':
      return removeParticipant(m.participant.id);
    case 'track-published': // the media itself arrives with the next subscriber offer
    case 'track-updated':
      return setTrackInfo(m.track);
    case 'track-unpublished':
      return removeTrackInfo(m.track);
    case 'stream-state':
      return onStreamState(m);
    case 'publish-layers':
      return onPublishLayers(s, m);
    case 'error':
      return addError(`server error: ${m.code}: ${m.message}`);
    default:
      console.warn('switchboard: unknown message type', m.type);
  }
}

function mark(step) {
  sb.timings[step] ??= performance.now();
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
  const url = new URL(location.href);
  url.searchParams.set('room', s.room);
  url.searchParams.set('name', s.name);
  history.replaceState(null, '', url);
  $('local-name').textContent = `${m.you.name} (you)`;
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
  sb.subscriber = s.sub.pc;
  setState('joined');
  updateControls();

  // The camera and microphone are asked for once per call.
  const epoch = s.epoch;
  s.media ??= publishMedia ? getMedia(addError) : Promise.resolve(null);
  const stream = await s.media;
  mark('gotMedia');
  if (session !== s) return stream?.getTracks().forEach((t) => t.stop());
  if (s.epoch !== epoch) return; // a newer session publishes it
  if (s.stream !== stream) $('local').srcObject = s.stream = stream;
  updateControls();
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
  render();
}

// ---- PeerConnections ----

// makePeer makes the PeerConnection target names. A path that died comes
// back through an ICE restart: the publisher is ours to offer again, the
// subscriber the server's (restart-ice).
function makePeer(s, target) {
  const peer = new Peer(target, s.config, {
    send: s.send,
    error: addError,
    state: () => {
      const state = connState(peer.pc);
      if (state === 'connected') mark(`${target}Connected`);
      if (state === 'disconnected' || state === 'failed') s.conn.probe();
      render();
    },
    restart: target === 'publisher' ? () => negotiate(s, true) : () => s.send({ type: 'restart-ice', target }),
    ready: () => s.conn.healthy,
  });
  return peer;
}

// publisher returns the publisher PeerConnection, made on first use: the
// camera's or a viewer's first screen share.
function publisher(s) {
  if (!s.pub) {
    s.pub = makePeer(s, 'publisher');
    s.pub.sources = new Map(); // transceiver -> 'microphone' | 'camera' | 'screen'
    sb.publisher = s.pub.pc;
  }
  return s.pub;
}

// publishAll publishes the camera, microphone and screen share of the call
// on a new publisher connection.
function publishAll(s) {
  if (!s.stream && !s.screen) return; // a viewer has nothing to offer
  const pub = publisher(s);
  const stream = s.stream;
  for (const track of stream?.getTracks() || []) {
    try {
      if (track.kind === 'video') {
        const transceiver = addCamera(pub.pc, track, stream, { simulcast, codec: preferredCodec });
        preferCodec(transceiver, preferredCodec, addError);
        pub.sources.set(transceiver, 'camera');
      } else {
        pub.sources.set(pub.pc.addTransceiver(track, { direction: 'sendonly', streams: [stream] }), 'microphone');
      }
    } catch (err) {
      addError(`cannot publish the ${track.kind === 'video' ? 'camera' : 'microphone'}: ${err.name}: ${err.message}`);
    }
  }
  if (s.screen && !pub.sources.has(s.screen.transceiver)) s.screen.transceiver = addScreen(pub, s.screen.stream);
  render();
  negotiate(s);
}

// negotiate sends a publisher offer (with new ICE credentials for
// iceRestart) telling the server which mid is which source.
function negotiate(s, iceRestart = false) {
  const pub = s.pub;
  const sources = () => Object.fromEntries([...pub.sources].filter(([t]) => t.mid !== null).map(([t, source]) => [t.mid, source]));
  pub.negotiate(() => ({ sources: sources() }), iceRestart);
}

// onPublishLayers turns the simulcast layers of one of our senders on or off
// (dynacast), in the publisher's chain so that it never meets a renegotiation.
function onPublishLayers(s, m) {
  const pub = s.pub;
  if (!pub || m.mid == null || !Array.isArray(m.active)) return;
  pub.run(async () => {
    const transceiver = pub.pc.getTransceivers().find((t) => t.mid === String(m.mid));
    if (!transceiver) return console.warn('switchboard: publish-layers for an unknown mid', m.mid);
    sb.publishLayers[transceiver.mid] = await setLayers(transceiver.sender, m.active);
  });
}

// ---- screen share ----

async function toggleScreen() {
  const s = session;
  if (!s || !sb.you) return;
  if (s.screen) return stopScreen(s);
  let stream;
  try {
    stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
  } catch (err) {
    // NotAllowedError: the user closed the picker, which needs no message.
    if (err.name !== 'NotAllowedError') addError(`screen share failed: ${err.name}: ${err.message}`);
    return;
  }
  const track = stream.getVideoTracks()[0];
  if (session !== s || s.screen || !track) return stream.getTracks().forEach((t) => t.stop());
  track.contentHint = 'detail'; // keep text sharp; the frame rate gives way first
  s.screen = { stream, transceiver: null };
  // The browser's own "stop sharing" ends the track.
  track.addEventListener('ended', () => s.screen?.stream === stream && stopScreen(s));
  showLocalScreen(stream);
  updateControls();
  // Between a lost session and the next one, that one publishes it (publishAll).
  if (!s.pub && s.conn.state !== 'up') return;
  s.screen.transceiver = addScreen(publisher(s), stream);
  negotiate(s);
}

function addScreen(pub, stream) {
  const transceiver = pub.pc.addTransceiver(stream.getVideoTracks()[0], { direction: 'sendonly', streams: [stream] });
  preferCodec(transceiver, preferredCodec, addError);
  pub.sources.set(transceiver, 'screen');
  return transceiver;
}

function stopScreen(s) {
  const { stream, transceiver } = s.screen;
  s.screen = null;
  stream.getTracks().forEach((t) => t.stop());
  showLocalScreen(null);
  updateControls();
  const pub = s.pub;
  if (!pub?.sources.has(transceiver)) return; // not published yet
  pub.run(() => {
    pub.sources.delete(transceiver);
    transceiver.stop(); // the next offer ends the track at the server
  });
  negotiate(s);
}

function showLocalScreen(stream) {
  $('local-screen').srcObject = stream;
  $('local-screen-tile').hidden = !stream;
}

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

// place shows a received track in its participant's tile: the camera tile,
// or for a screen share a tile of its own (both have the participant's
// stream id, so the track info tells them apart).
function place(track, participant, transceiver) {
  const id = serverTrackId(track, participant, transceiver);
  const screen = track.kind === 'video' && sb.tracks[id]?.source === 'screen';
  let tile = (screen ? screens : tiles).get(participant);
  if (!tile?.stream.getTracks().includes(track)) {
    // A reused transceiver brings back the same track object for someone else.
    detach(track);
    tile = ensureTile(participant, screen ? 'screen' : 'camera');
    tile.stream.addTrack(track);
    play(tile.video);
  }
  received.set(track, { id, participant, transceiver });
  showStreamState(tile);
  sizes.check(tile.video);
}

// relocate places every received track again, after something that may
// change its server id or participant (a renegotiation) or its source (track
// info).
function relocate() {
  const sdp = session?.sub?.pc.remoteDescription?.sdp;
  for (const [track, r] of [...received]) place(track, msid(sdp, r.transceiver?.mid)?.stream ?? r.participant, r.transceiver);
}

// serverTrackId is the server's id of a received track: the a=msid track id
// of its m-line, which the server sets to its id; Chrome's track ids are the
// same, other browsers make up their own; as a last resort the participant's
// track of this kind that no other tile shows, a camera before a screen.
function serverTrackId(track, participant, transceiver) {
  const fromSdp = msid(session?.sub?.pc.remoteDescription?.sdp, transceiver?.mid)?.track;
  if (fromSdp) return fromSdp;
  if (sb.tracks[track.id]) return track.id;
  const taken = new Set([...received].filter(([t]) => t !== track).map(([, r]) => r.id));
  const known = Object.values(sb.tracks).filter((t) => t.participant === participant && t.kind === track.kind && !taken.has(t.id));
  known.sort((a, b) => (a.source === 'screen') - (b.source === 'screen'));
  return known[0]?.id ?? track.id;
}

function detach(track) {
  received.delete(track);
  for (const tile of [...tiles.values(), ...screens.values()]) {
    if (!tile.stream.getTracks().includes(track)) continue;
    tile.stream.removeTrack(track);
    if (tile.source === 'screen' && !tile.stream.getTracks().length) dropTile(screens, tile.participant);
    else showStreamState(tile);
  }
}

function setTrackInfo(t) {
  if (!t?.id) return;
  sb.tracks[t.id] = t;
  relocate(); // its source decides which tile shows it
}

function removeTrackInfo(t) {
  if (!t?.id) return;
  delete sb.tracks[t.id];
  delete sb.streams[t.id];
  sizes.forget(t.id);
  for (const [track, r] of [...received]) if (r.id === t.id) detach(track);
}

function onStreamState(m) {
  if (typeof m.trackId !== 'string') return;
  sb.streams[m.trackId] = { paused: !!m.paused, layer: m.layer || null };
  for (const tile of [...tiles.values(), ...screens.values()]) showStreamState(tile);
}

// ---- tiles ----

function addParticipant(p) {
  if (!p?.id || p.id === sb.you?.id) return;
  sb.participants[p.id] = p.name;
  // Its client lost the connection to the server: its tile and video stay.
  const tile = ensureTile(p.id);
  tile.el.classList.toggle('reconnecting', !!p.reconnecting);
  tile.awayEl.hidden = !p.reconnecting;
  render();
}

function removeParticipant(id) {
  delete sb.participants[id];
  removeTile(id);
  render();
}

function ensureTile(id, source = 'camera') {
  const map = source === 'screen' ? screens : tiles;
  let tile = map.get(id);
  if (!tile) {
    const el = document.createElement('div');
    el.className = source === 'screen' ? 'tile screen' : 'tile';
    el.dataset.participant = id;
    el.dataset.source = source;
    const video = document.createElement('video');
    video.autoplay = true;
    video.setAttribute('playsinline', '');
    const label = document.createElement('div');
    label.className = 'name';
    const pausedEl = document.createElement('div');
    pausedEl.className = 'paused-note';
    pausedEl.textContent = 'paused (low bandwidth)';
    pausedEl.hidden = true;
    const layerEl = document.createElement('div');
    layerEl.className = 'layer';
    layerEl.title = 'simulcast layer received';
    layerEl.hidden = true;
    const awayEl = document.createElement('div');
    awayEl.className = 'reconnecting-note';
    awayEl.textContent = 'Reconnecting…';
    awayEl.hidden = true;
    el.append(video, pausedEl, layerEl, awayEl, label);
    // One stream per participant, so audio and video stay in sync in one element.
    const stream = new MediaStream();
    video.srcObject = stream;
    tile = { el, video, stream, label, pausedEl, layerEl, awayEl, participant: id, source };
    map.set(id, tile);
    // A screen share sits right after its owner's camera.
    if (source === 'screen' && tiles.has(id)) tiles.get(id).el.after(el);
    else $('grid').append(el);
    watchFirstFrame(video);
    sizes.watch(video, () => videoTrackId(tile));
  }
  const name = sb.participants[id] ?? id;
  tile.label.textContent = source === 'screen' ? `${name} (screen)` : name;
  return tile;
}

function removeTile(id) {
  dropTile(tiles, id);
  dropTile(screens, id);
}

function dropTile(map, id) {
  const tile = map.get(id);
  if (!tile) return;
  for (const track of tile.stream.getTracks()) received.delete(track);
  sizes.unwatch(tile.video);
  tile.video.srcObject = null;
  tile.el.remove();
  map.delete(id);
}

// videoTrackId is the server id of the video a tile shows, or null.
function videoTrackId(tile) {
  const track = tile.stream.getVideoTracks()[0];
  return (track && received.get(track)?.id) ?? null;
}

function showStreamState(tile) {
  const id = videoTrackId(tile);
  const state = id ? sb.streams[id] : undefined;
  tile.el.classList.toggle('paused', !!state?.paused);
  tile.pausedEl.hidden = !state?.paused;
  tile.layerEl.textContent = state?.layer ?? '';
  tile.layerEl.hidden = !state?.layer;
}

function watchFirstFrame(video) {
  const seen = () => {
    if (!video.videoWidth) return;
    sb.firstRemoteFrameAt ??= performance.now();
    mark('firstFrame');
  };
  if ('requestVideoFrameCallback' in video) {
    video.requestVideoFrameCallback(() => {
      sb.firstRemoteFrameAt ??= performance.now();
      mark('firstFrame');
    });
  } else {
    video.addEventListener('loadeddata', seen);
    video.addEventListener('resize', seen);
  }
}

function play(video) {
  video.play().catch((err) => {
    if (err.name !== 'NotAllowedError') return; // AbortError: a newer load superseded this play
    // Autoplay policy: muted video may still play, so the picture shows while
    // the sound waits for the click.
    video.muted = true;
    video.play().catch(() => {});
    $('enable-audio').hidden = false;
  });
}

function enableAudio() {
  $('enable-audio').hidden = true;
  for (const { video } of tiles.values()) {
    video.muted = false;
    play(video);
  }
}

// ---- controls ----

function toggleTrack(kind) {
  for (const t of session?.stream?.getTracks() || []) if (t.kind === kind) t.enabled = !t.enabled;
  updateControls();
}

function updateControls() {
  const stream = session?.stream;
  setButton($('mute'), stream?.getAudioTracks()[0], 'Unmute', 'Mute');
  setButton($('camera'), stream?.getVideoTracks()[0], 'Camera on', 'Camera off');
  const sharing = !!session?.screen;
  $('screen').disabled = !sb.you || !navigator.mediaDevices?.getDisplayMedia;
  $('screen').setAttribute('aria-pressed', String(sharing));
  $('screen').textContent = sharing ? 'Stop sharing' : 'Share screen';
}

function setButton(button, track, pressedText, text) {
  const pressed = !!track && !track.enabled;
  button.disabled = !track;
  button.setAttribute('aria-pressed', String(pressed));
  button.textContent = pressed ? pressedText : text;
}

$('mute').addEventListener('click', () => toggleTrack('audio'));
$('camera').addEventListener('click', () => toggleTrack('video'));
$('screen').addEventListener('click', toggleScreen);
$('leave').addEventListener('click', leave);
$('enable-audio').addEventListener('click', enableAudio);
// A closed tab leaves at once, instead of being waited for as reconnecting.
addEventListener('pagehide', () => session?.conn.leave());
// A page restored from the back-forward cache has lost its call: start anew.
addEventListener('pageshow', (e) => e.persisted && location.reload());

const form = $('join-form');
form.elements.namedItem('room').value = params.get('room') ?? '';
form.elements.namedItem('name').value = params.get('name') ?? '';
form.addEventListener('submit', (e) => {
  e.preventDefault();
  join(form.elements.namedItem('room').value.trim(), form.elements.namedItem('name').value.trim());
});

render();
if (params.get('room') && params.get('name')) join(params.get('room'), params.get('name'));
else form.elements.namedItem(params.get('room') ? 'name' : 'room').focus();
