// What we send: the publisher PeerConnection with our camera, microphone and
// screen share; muting (the track stops locally, and "mute" tells the server
// to stop forwarding it and the others to show it); switching devices in
// the call without renegotiating (replaceTrack); and the layers the server
// asks us to encode (publish-layers).
import { addCamera, cameraConstraints, mediaProblem, preferCodec, setLayers } from './media.js';
import { $, addError, current, emit, options, prefs, sb } from './state.js';
import { local, localScreen, refresh, refreshAll, applySink } from './tiles.js';

// makePeer is set by call.js: it makes a PeerConnection wired to the session.
let makePeer = null;
export function setPeerMaker(fn) {
  makePeer = fn;
}

// publisher returns the publisher PeerConnection, made on first use: the
// camera's or a viewer's first screen share.
export function publisher(s) {
  if (!s.pub) {
    s.pub = makePeer(s, 'publisher');
    s.pub.sources = new Map(); // transceiver -> 'microphone' | 'camera' | 'screen'
    sb.publisher = s.pub.pc;
  }
  return s.pub;
}

// publishAll publishes the camera, microphone and screen share of the call
// on a new publisher connection.
export function publishAll(s) {
  if (!s.stream && !s.screen) return; // a viewer has nothing to offer
  const pub = publisher(s);
  const stream = s.stream;
  for (const track of stream?.getTracks() || []) {
    try {
      if (track.kind === 'video') {
        const transceiver = addCamera(pub.pc, track, stream, { simulcast: options.simulcast, codec: options.codec });
        preferCodec(transceiver, options.codec, addError);
        pub.sources.set(transceiver, 'camera');
      } else {
        pub.sources.set(pub.pc.addTransceiver(track, { direction: 'sendonly', streams: [stream] }), 'microphone');
      }
    } catch (err) {
      addError(`Your ${track.kind === 'video' ? 'camera' : 'microphone'} could not be sent (${err.name}: ${err.message}).`);
    }
  }
  if (s.screen && !pub.sources.has(s.screen.transceiver)) s.screen.transceiver = addScreen(pub, s.screen.stream);
  negotiate(s);
  // A camera or microphone that was off before this session stays off for the others.
  pub.run(() => {
    for (const source of ['microphone', 'camera']) if (!trackOf(s, source)?.enabled && transceiverOf(s, source)) sendMute(s, source);
  });
  emit('render');
}

// negotiate sends a publisher offer (with new ICE credentials for
// iceRestart) telling the server which mid is which source.
export function negotiate(s, iceRestart = false) {
  const pub = s.pub;
  const sources = () => Object.fromEntries([...pub.sources].filter(([t]) => t.mid !== null).map(([t, source]) => [t.mid, source]));
  pub.negotiate(() => ({ sources: sources() }), iceRestart);
}

// onPublishLayers turns the simulcast layers of one of our senders on or off
// (dynacast), in the publisher's chain so that it never meets a renegotiation.
export function onPublishLayers(s, m) {
  const pub = s.pub;
  if (!pub || m.mid == null || !Array.isArray(m.active)) return;
  pub.run(async () => {
    const transceiver = pub.pc.getTransceivers().find((t) => t.mid === String(m.mid));
    if (!transceiver) return console.warn('switchboard: publish-layers for an unknown mid', m.mid);
    sb.publishLayers[transceiver.mid] = await setLayers(transceiver.sender, m.active);
  });
}

// ---- mute ----

const kindOf = (source) => (source === 'microphone' ? 'audio' : 'video');

function trackOf(s, source) {
  return (kindOf(source) === 'audio' ? s?.stream?.getAudioTracks() : s?.stream?.getVideoTracks())?.[0];
}

function transceiverOf(s, source) {
  return [...(s?.pub?.sources || [])].find(([t, src]) => src === source && t.mid !== null)?.[0];
}

// sendMute tells the server whether source is muted, once it has a mid.
function sendMute(s, source) {
  const transceiver = transceiverOf(s, source);
  const track = trackOf(s, source);
  if (transceiver && track) s.send({ type: 'mute', mid: transceiver.mid, muted: !track.enabled });
}

// toggle turns the microphone ('microphone') or the camera ('camera') off or on.
export function toggle(source) {
  const s = current.session;
  const track = trackOf(s, source);
  if (!track) return;
  track.enabled = !track.enabled;
  // In the publisher's chain: after an offer that gives the track its mid.
  if (s.pub) s.pub.run(() => sendMute(s, source));
  refresh(local);
  emit('controls');
  emit('participants');
}

// muteBy turns source off because a moderator did at the server (its
// "muted"): the track stops here too, and our usual mute keeps the server's
// state and ours the same. The user may turn it on again as usual.
export function muteBy(s, source) {
  if (isOn(source)) toggle(source);
  else if (s.pub) s.pub.run(() => sendMute(s, source));
}

export function isOn(source) {
  const track = trackOf(current.session, source);
  return !!track && track.enabled;
}

export function has(source) {
  return !!trackOf(current.session, source);
}

// ---- devices ----

// switchDevice uses another camera ('camera') or microphone ('microphone')
// in the call: the new track replaces the old one in our stream and in the
// sender, with the same on/off state.
export async function switchDevice(source, deviceId) {
  prefs.set(source, deviceId);
  const s = current.session;
  const old = trackOf(s, source);
  if (!s || !old) return;
  const constraints = source === 'camera' ? { video: cameraConstraints(deviceId) } : { audio: { deviceId: { exact: deviceId } } };
  let track;
  try {
    old.stop(); // some devices cannot be opened twice
    [track] = (await navigator.mediaDevices.getUserMedia(constraints)).getTracks();
  } catch (err) {
    return addError(mediaProblem(err));
  }
  if (current.session !== s) return track.stop();
  track.enabled = old.enabled;
  s.stream.removeTrack(old);
  s.stream.addTrack(track);
  const transceiver = [...(s.pub?.sources || [])].find(([, src]) => src === source)?.[0];
  if (transceiver) await transceiver.sender.replaceTrack(track);
  refresh(local);
}

export function switchSpeaker(deviceId) {
  prefs.set('speaker', deviceId);
  for (const video of document.querySelectorAll('#grid .tile[data-participant] video')) applySink(video);
}

// ---- screen share ----

export async function toggleScreen() {
  const s = current.session;
  if (!s || !sb.you) return;
  if (s.screen) return stopScreen(s);
  let stream;
  try {
    stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
  } catch (err) {
    // NotAllowedError: the user closed the picker, which needs no message.
    if (err.name !== 'NotAllowedError') addError(`Your screen could not be shared (${err.name}: ${err.message}).`);
    return;
  }
  const track = stream.getVideoTracks()[0];
  if (current.session !== s || s.screen || !track) return stream.getTracks().forEach((t) => t.stop());
  track.contentHint = 'detail'; // keep text sharp; the frame rate gives way first
  s.screen = { stream, transceiver: null };
  // The browser's own "stop sharing" ends the track.
  track.addEventListener('ended', () => s.screen?.stream === stream && stopScreen(s));
  showLocalScreen(stream);
  // Between a lost session and the next one, that one publishes it (publishAll).
  if (!s.pub && s.conn.state !== 'up') return;
  s.screen.transceiver = addScreen(publisher(s), stream);
  negotiate(s);
}

function addScreen(pub, stream) {
  const transceiver = pub.pc.addTransceiver(stream.getVideoTracks()[0], { direction: 'sendonly', streams: [stream] });
  preferCodec(transceiver, options.codec, addError);
  pub.sources.set(transceiver, 'screen');
  return transceiver;
}

export function stopScreen(s) {
  const { stream, transceiver } = s.screen;
  s.screen = null;
  stream.getTracks().forEach((t) => t.stop());
  showLocalScreen(null);
  const pub = s.pub;
  if (!pub?.sources.has(transceiver)) return; // not published yet
  pub.run(() => {
    pub.sources.delete(transceiver);
    transceiver.stop(); // the next offer ends the track at the server
  });
  negotiate(s);
}

export function showLocalScreen(stream) {
  $('local-screen').srcObject = stream;
  localScreen.active = !!stream;
  refreshAll();
  emit('layout');
  emit('controls');
  emit('participants');
}
