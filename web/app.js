// Switchboard browser client. The signaling protocol is docs/protocol.md: one
// WebSocket, a "publisher" PeerConnection that we offer on (our camera and
// microphone go up) and a "subscriber" PeerConnection that the server offers
// on (everyone else's media comes down).
import { addCamera, getMedia, preferCodec, setLayers, SizeReporter } from './media.js';

const loadedAt = performance.now();

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const CODECS = { vp8: 'video/VP8', vp9: 'video/VP9', h264: 'video/H264' };
const preferredCodec = CODECS[(params.get('codec') || 'vp8').toLowerCase()] || CODECS.vp8;
// ?simulcast=0 publishes the camera as a single encoding, for debugging.
const simulcast = params.get('simulcast') !== '0';
// ?publish=0 joins as a viewer: no camera or microphone (a screen share still works).
const publishMedia = params.get('publish') !== '0';
const ANSWER_TIMEOUT = 15_000; // ms the publisher waits for the server's answer

const tiles = new Map(); // participant id -> {el, video, stream, label, ...}: camera and microphone
const screens = new Map(); // participant id -> the tile of their screen share
const received = new Map(); // MediaStreamTrack shown in a tile -> {id: server track id, participant, transceiver}
let session = null; // the current join; callbacks of an older one compare against it and stop
let baseState = 'idle';
let stateDetail = '';

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
  // A participant with a screen share has two tiles; each id is listed once.
  tiles: () => [...new Set([...document.querySelectorAll('#grid .tile[data-participant]')].map((el) => el.dataset.participant))],
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
  // ICE recovers from "disconnected" by itself, so that is shown as reconnecting, not as an error.
  sb.state =
    baseState === 'joined' && pcs.includes('failed') ? 'error'
    : baseState === 'joined' && pcs.includes('disconnected') ? 'reconnecting'
    : baseState;
  const status = $('status');
  status.dataset.state = sb.state;
  status.textContent = `${sb.state}${stateDetail ? ` (${stateDetail})` : ''} · publisher: ${connState(sb.publisher)} · subscriber: ${connState(sb.subscriber)}`;
  const n = Object.keys(sb.participants).length + (sb.you ? 1 : 0);
  $('room-info').textContent = session ? `Room ${session.room} · ${n} participant${n === 1 ? '' : 's'}` : '';
}

function addError(msg) {
  sb.errors.push(msg);
  const li = document.createElement('li');
  li.textContent = msg;
  $('errors').append(li);
  console.warn('switchboard:', msg);
}

// ---- session ----

function join(room, name) {
  if (session) return;
  sb.errors.length = 0;
  $('errors').replaceChildren();
  sb.firstRemoteFrameAt = null;
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const ws = new WebSocket(`${proto}//${location.host}/ws`);
  const s = (session = { room, name, ws, pub: null, sub: null, stream: null, config: {}, closing: false });
  s.send = (msg) => ws.readyState === WebSocket.OPEN && ws.send(JSON.stringify(msg));
  $('join-form').hidden = true;
  $('call').hidden = false;
  updateControls();
  setState('connecting');

  sb.timings = { start: performance.now() };
  ws.onopen = () => {
    mark('wsOpen');
    s.send({ type: 'join', room, name, token: params.get('token') || undefined }); // ?token=: a join token (undefined is left out)
  };
  ws.onmessage = (e) => session === s && onMessage(s, e.data);
  ws.onclose = (e) => {
    if (session !== s || s.closing) return;
    addError(`WebSocket closed unexpectedly: code ${e.code}${e.reason ? `, ${e.reason}` : ''}`);
    teardown('closed', `code ${e.code}`);
  };
}

function leave() {
  if (!session) return;
  session.send({ type: 'leave' });
  teardown('closed');
  // Without the name a reload shows the form instead of joining again.
  const url = new URL(location.href);
  url.searchParams.delete('name');
  history.replaceState(null, '', url);
}

function teardown(state, detail) {
  const s = session;
  if (!s) return;
  session = null;
  s.closing = true;
  if (s.ws.readyState <= WebSocket.OPEN) s.ws.close(1000);
  s.pub?.pc.close();
  s.sub?.pc.close();
  s.stream?.getTracks().forEach((t) => t.stop());
  s.screen?.stream.getTracks().forEach((t) => t.stop());
  $('local').srcObject = null;
  showLocalScreen(null);
  for (const id of [...tiles.keys(), ...screens.keys()]) removeTile(id);
  sizes.reset();
  Object.assign(sb, { you: null, publisher: null, subscriber: null, participants: {}, tracks: {}, streams: {}, publishLayers: {} });
  $('enable-audio').hidden = true;
  $('call').hidden = true;
  $('join-form').hidden = false;
  setState(state, detail);
}

function onMessage(s, data) {
  let m;
  try {
    m = JSON.parse(data);
  } catch {
    return addError('unparseable message from the server');
  }
  switch (m.type) {
    case 'joined':
      return onJoined(s, m);
    case 'offer':
      if (m.target === 'subscriber') onSubscriberOffer(s, m.sdp);
      return;
    case 'answer':
      if (m.target === 'publisher' && s.pub) onPublisherAnswer(s.pub, m.sdp);
      return;
    case 'candidate': {
      const peer = m.target === 'publisher' ? s.pub : m.target === 'subscriber' ? s.sub : null;
      if (peer && m.candidate) onRemoteCandidate(peer, m.candidate);
      return;
    }
    case 'participant-joined':
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
    case 'pong':
      return;
    case 'draining':
      // Shown, not acted on: the call goes on until the server closes it.
      addError(`the server is restarting; this call ends within ${m.grace} s`);
      return;
    case 'error':
      addError(`server error: ${m.code}: ${m.message}`);
      // Before "joined" the join itself was refused; go back to the form so it can be corrected.
      if (!sb.you) teardown('error', m.code);
      return;
    default:
      console.warn('switchboard: unknown message type', m.type);
  }
}

function mark(step) {
  sb.timings[step] ??= performance.now();
}

async function onJoined(s, m) {
  if (sb.you) return;
  mark('joined');
  sb.you = m.you;
  if (Array.isArray(m.iceServers)) s.config = { iceServers: m.iceServers };
  const url = new URL(location.href);
  url.searchParams.set('room', s.room);
  url.searchParams.set('name', s.name);
  history.replaceState(null, '', url);
  $('local-name').textContent = `${m.you.name} (you)`;
  for (const p of m.participants || []) addParticipant(p);
  for (const t of m.tracks || []) setTrackInfo(t);

  // The subscriber exists before getUserMedia, which can take seconds (a
  // permission prompt), because the server may offer as soon as we joined.
  s.sub = makePeer(s, 'subscriber');
  s.sub.pc.ontrack = onTrack;
  sb.subscriber = s.sub.pc;
  setState('joined');
  updateControls();

  const stream = publishMedia ? await getMedia(addError) : null;
  mark('gotMedia');
  if (session !== s) return stream?.getTracks().forEach((t) => t.stop());
  s.stream = stream;
  $('local').srcObject = stream;
  updateControls();
  if (stream) publish(s, stream); // a viewer has nothing to offer
}

// ---- PeerConnections ----

function makePeer(s, target) {
  const pc = new RTCPeerConnection(s.config);
  // chain serializes the work on this pc; remoteQueue holds candidates that
  // arrived before the remote description; localQueue holds ours until the
  // server has our offer/answer, which they must not overtake.
  const peer = { pc, target, s, chain: Promise.resolve(), remoteQueue: [], localQueue: [], signaled: false };
  pc.onicecandidate = (e) => {
    if (!e.candidate || !e.candidate.candidate) return; // end of candidates: the server needs nothing
    const candidate = e.candidate.toJSON();
    if (peer.signaled) s.send({ type: 'candidate', target, candidate });
    else peer.localQueue.push(candidate);
  };
  const event = 'onconnectionstatechange' in pc ? 'connectionstatechange' : 'iceconnectionstatechange';
  pc.addEventListener(event, () => {
    if (connState(pc) === 'connected') mark(`${target}Connected`);
    if (connState(pc) === 'failed') addError(`${target} connection failed`);
    render();
  });
  return peer;
}

function run(peer, fn) {
  peer.chain = peer.chain.then(fn).catch((err) => {
    // After leave the closed pc rejects whatever was still queued; that is not news.
    if (peer.pc.signalingState !== 'closed') addError(`${peer.target}: ${err.name}: ${err.message}`);
  });
}

function signaled(peer) {
  peer.signaled = true;
  for (const candidate of peer.localQueue.splice(0)) peer.s.send({ type: 'candidate', target: peer.target, candidate });
}

async function setRemote(peer, desc) {
  await peer.pc.setRemoteDescription(desc);
  for (const c of peer.remoteQueue.splice(0)) await addCandidate(peer, c);
}

function onRemoteCandidate(peer, candidate) {
  run(peer, async () => {
    if (peer.pc.remoteDescription) await addCandidate(peer, candidate);
    else peer.remoteQueue.push(candidate);
  });
}

async function addCandidate(peer, candidate) {
  // One unusable candidate (e.g. an address family we lack) must not stop the chain.
  try {
    await peer.pc.addIceCandidate(candidate);
  } catch (err) {
    console.warn(`switchboard: ${peer.target} candidate rejected:`, err);
  }
}

// publisher returns the publisher PeerConnection, made on first use: the
// camera's or a viewer's first screen share.
function publisher(s) {
  if (!s.pub) {
    s.pub = makePeer(s, 'publisher');
    s.pub.sources = new Map(); // transceiver -> 'microphone' | 'camera' | 'screen'
    s.pub.answered = null; // resolves the answer that negotiate waits for
    sb.publisher = s.pub.pc;
  }
  return s.pub;
}

function publish(s, stream) {
  const pub = publisher(s);
  for (const track of stream.getTracks()) {
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
  render();
  negotiate(s);
}

// negotiate sends a publisher offer and applies the answer as one step of the
// publisher's chain, so that nothing else (another offer, publish-layers)
// runs between the two.
function negotiate(s) {
  const pub = s.pub;
  run(pub, async () => {
    await pub.pc.setLocalDescription(await pub.pc.createOffer());
    // The mids exist from setLocalDescription on.
    const sources = {};
    for (const [t, source] of pub.sources) if (t.mid !== null) sources[t.mid] = source;
    const answer = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer to the offer within ${ANSWER_TIMEOUT / 1000} s`)), ANSWER_TIMEOUT);
      pub.answered = (sdp) => {
        clearTimeout(timer);
        resolve(sdp);
      };
    });
    s.send({ type: 'offer', target: 'publisher', sdp: pub.pc.localDescription.sdp, sources });
    signaled(pub);
    try {
      await setRemote(pub, { type: 'answer', sdp: await answer });
    } finally {
      pub.answered = null;
    }
  });
}

function onPublisherAnswer(pub, sdp) {
  if (pub.answered) pub.answered(sdp);
  else run(pub, () => setRemote(pub, { type: 'answer', sdp })); // unasked for: the pc decides what it means
}

// onPublishLayers turns the simulcast layers of one of our senders on or off
// (dynacast), in the publisher's chain so that it never meets a renegotiation.
function onPublishLayers(s, m) {
  const pub = s.pub;
  if (!pub || m.mid == null || !Array.isArray(m.active)) return;
  run(pub, async () => {
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
  const pub = publisher(s);
  const transceiver = pub.pc.addTransceiver(track, { direction: 'sendonly', streams: [stream] });
  preferCodec(transceiver, preferredCodec, addError);
  pub.sources.set(transceiver, 'screen');
  s.screen = { stream, transceiver };
  // The browser's own "stop sharing" ends the track.
  track.addEventListener('ended', () => s.screen?.stream === stream && stopScreen(s));
  showLocalScreen(stream);
  updateControls();
  negotiate(s);
}

function stopScreen(s) {
  const { stream, transceiver } = s.screen;
  s.screen = null;
  stream.getTracks().forEach((t) => t.stop());
  showLocalScreen(null);
  updateControls();
  const pub = s.pub;
  run(pub, () => {
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
  run(sub, async () => {
    await setRemote(sub, { type: 'offer', sdp });
    await sub.pc.setLocalDescription(await sub.pc.createAnswer());
    s.send({ type: 'answer', target: 'subscriber', sdp: sub.pc.localDescription.sdp });
    signaled(sub);
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

// msid returns the a=msid stream and track ids of the m-line mid in sdp.
function msid(sdp, mid) {
  if (!sdp || mid == null) return null;
  for (const section of sdp.split(/\r?\nm=/).slice(1)) {
    if (!section.split(/\r?\n/).includes(`a=mid:${mid}`)) continue;
    const m = /^a=msid:(\S+) (\S+?)\r?$/m.exec(section);
    return m && m[1] !== '-' ? { stream: m[1], track: m[2] } : null;
  }
  return null;
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
  ensureTile(p.id);
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
    el.append(video, pausedEl, layerEl, label);
    // One stream per participant, so audio and video stay in sync in one element.
    const stream = new MediaStream();
    video.srcObject = stream;
    tile = { el, video, stream, label, pausedEl, layerEl, participant: id, source };
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
