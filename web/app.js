// Switchboard browser client. The signaling protocol is docs/protocol.md: one
// WebSocket, a "publisher" PeerConnection that we offer on (our camera and
// microphone go up) and a "subscriber" PeerConnection that the server offers
// on (everyone else's media comes down).
const loadedAt = performance.now();

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const CODECS = { vp8: 'video/VP8', vp9: 'video/VP9', h264: 'video/H264' };
const preferredCodec = CODECS[(params.get('codec') || 'vp8').toLowerCase()] || CODECS.vp8;

const tiles = new Map(); // participant id -> {el, video, stream, label}
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
  tiles: () => [...document.querySelectorAll('#grid .tile[data-participant]')].map((el) => el.dataset.participant),
});

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
    s.send({ type: 'join', room, name });
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
  $('local').srcObject = null;
  for (const id of [...tiles.keys()]) removeTile(id);
  Object.assign(sb, { you: null, publisher: null, subscriber: null, participants: {} });
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
      if (m.target === 'publisher' && s.pub) run(s.pub, () => setRemote(s.pub, { type: 'answer', sdp: m.sdp }));
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
    case 'track-unpublished': {
      const tile = tiles.get(m.track.participant);
      const track = tile?.stream.getTrackById(m.track.id);
      if (track) tile.stream.removeTrack(track);
      return;
    }
    case 'track-published': // the media itself arrives with the next subscriber offer
    case 'pong':
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

  // The subscriber exists before getUserMedia, which can take seconds (a
  // permission prompt), because the server may offer as soon as we joined.
  s.sub = makePeer(s, 'subscriber');
  s.sub.pc.ontrack = onTrack;
  sb.subscriber = s.sub.pc;
  setState('joined');

  const stream = await getMedia();
  mark('gotMedia');
  if (session !== s) return stream?.getTracks().forEach((t) => t.stop());
  s.stream = stream;
  $('local').srcObject = stream;
  updateControls();
  if (stream) publish(s, stream); // a viewer has nothing to offer
}

async function getMedia() {
  if (!navigator.mediaDevices?.getUserMedia) {
    addError('getUserMedia is unavailable (it needs https or localhost); joining as a viewer');
    return null;
  }
  const video = { width: 640, height: 480 };
  let firstError = null;
  for (const constraints of [{ audio: true, video }, { audio: true }, { video }]) {
    try {
      const stream = await navigator.mediaDevices.getUserMedia(constraints);
      if (firstError) addError(`getUserMedia failed (${firstError}); continuing with ${Object.keys(constraints)[0]} only`);
      return stream;
    } catch (err) {
      firstError ??= `${err.name}: ${err.message}`;
    }
  }
  addError(`getUserMedia failed (${firstError}); joining as a viewer`);
  return null;
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

function publish(s, stream) {
  const pub = (s.pub = makePeer(s, 'publisher'));
  sb.publisher = pub.pc;
  for (const track of stream.getTracks()) {
    const transceiver = pub.pc.addTransceiver(track, { direction: 'sendonly', streams: [stream] });
    if (track.kind === 'video') preferCodec(transceiver);
  }
  render();
  run(pub, async () => {
    await pub.pc.setLocalDescription(await pub.pc.createOffer());
    s.send({ type: 'offer', target: 'publisher', sdp: pub.pc.localDescription.sdp });
    signaled(pub);
  });
}

function preferCodec(transceiver) {
  if (!('setCodecPreferences' in RTCRtpTransceiver.prototype)) return;
  // Browsers check the list against the receive capabilities (newer ones also accept send ones).
  const codecs = (RTCRtpReceiver.getCapabilities?.('video') || RTCRtpSender.getCapabilities?.('video'))?.codecs;
  if (!codecs) return;
  const wanted = codecs.filter((c) => c.mimeType.toLowerCase() === preferredCodec.toLowerCase());
  if (!wanted.length) return addError(`${preferredCodec} is not supported here; using the browser's default codec`);
  try {
    // The others stay in the list so the server can still pick one of them.
    transceiver.setCodecPreferences([...wanted, ...codecs.filter((c) => !wanted.includes(c))]);
  } catch (err) {
    console.warn('switchboard: setCodecPreferences failed:', err);
  }
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
  });
}

function onTrack(e) {
  const id = e.streams[0]?.id;
  if (!id) return console.warn('switchboard: a track without a stream id', e.track.id);
  const track = e.track;
  mark(`first${track.kind === 'video' ? 'Video' : 'Audio'}Track`);
  // A reused transceiver brings back the same track object for someone else.
  detach(track);
  const tile = ensureTile(id);
  tile.stream.addTrack(track);
  track.onended = () => detach(track);
  play(tile.video);
}

function detach(track) {
  for (const tile of tiles.values()) if (tile.stream.getTracks().includes(track)) tile.stream.removeTrack(track);
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

function ensureTile(id) {
  let tile = tiles.get(id);
  if (!tile) {
    const el = document.createElement('div');
    el.className = 'tile';
    el.dataset.participant = id;
    const video = document.createElement('video');
    video.autoplay = true;
    video.setAttribute('playsinline', '');
    const label = document.createElement('div');
    label.className = 'name';
    el.append(video, label);
    // One stream per participant, so audio and video stay in sync in one element.
    const stream = new MediaStream();
    video.srcObject = stream;
    tile = { el, video, stream, label };
    tiles.set(id, tile);
    $('grid').append(el);
    watchFirstFrame(video);
  }
  tile.label.textContent = sb.participants[id] ?? id;
  return tile;
}

function removeTile(id) {
  const tile = tiles.get(id);
  if (!tile) return;
  tile.video.srcObject = null;
  tile.el.remove();
  tiles.delete(id);
}

function watchFirstFrame(video) {
  const mark = () => {
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
    video.addEventListener('loadeddata', mark);
    video.addEventListener('resize', mark);
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
}

function setButton(button, track, pressedText, text) {
  const pressed = !!track && !track.enabled;
  button.disabled = !track;
  button.setAttribute('aria-pressed', String(pressed));
  button.textContent = pressed ? pressedText : text;
}

$('mute').addEventListener('click', () => toggleTrack('audio'));
$('camera').addEventListener('click', () => toggleTrack('video'));
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
