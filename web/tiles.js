// The tiles of the call: one per participant's camera and microphone, one
// per screen share, and our own. A tile shows the video, or the person's
// initials while their camera is off; their name with a muted microphone
// icon; whether they speak; their connection's quality; and whether the
// server paused their video or they are reconnecting. Which received track
// goes into which tile is decided here too (place, relocate, detach).
import { $, current, emit, initials, prefs, received, sb, screens, tiles, mark } from './state.js';
import { msid, SizeReporter } from './media.js';

// track-settings: the size each received video is shown at.
export const sizes = new SizeReporter((trackId, width, height) => current.session?.send({ type: 'track-settings', trackId, width, height }));

const MIC_OFF = '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M12 14a3 3 0 0 0 3-3V5a3 3 0 0 0-5.9-.8L15 10.1V11M9 9v2a3 3 0 0 0 4.5 2.6M19 11a7 7 0 0 1-1.2 3.9M5 11a7 7 0 0 0 11 5.7M12 18v3M3 3l18 18" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round"/></svg>';

// local is our own camera tile; localScreen our screen share, while we share.
export const local = makeTile('', 'camera', true);
export const localScreen = makeTile('', 'screen', true);
local.video.id = 'local';
localScreen.video.id = 'local-screen';
localScreen.el.hidden = true;

function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text) e.textContent = text;
  return e;
}

function makeTile(id, source, isLocal = false) {
  const root = el('div', `tile${source === 'screen' ? ' screen' : ''}${isLocal ? ' local' : ''}`);
  if (!isLocal) root.dataset.participant = id;
  root.dataset.source = source;
  root.setAttribute('role', 'group');
  const video = el('video');
  video.autoplay = true;
  video.muted = isLocal;
  video.setAttribute('playsinline', '');
  const placeholder = el('div', 'placeholder');
  const initialsEl = el('span', 'initials');
  placeholder.append(initialsEl);
  const pausedEl = el('div', 'paused-note', 'Paused: low bandwidth');
  pausedEl.hidden = true;
  const awayEl = el('div', 'reconnecting-note', 'Reconnecting…');
  awayEl.hidden = true;
  const qualityEl = el('div', 'quality');
  qualityEl.setAttribute('role', 'img');
  qualityEl.append(el('i'), el('i'), el('i'));
  qualityEl.hidden = true;
  const pin = el('button', 'pin');
  pin.type = 'button';
  pin.setAttribute('aria-pressed', 'false');
  pin.innerHTML = '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M9 3h6l-1 6 4 4H6l4-4zM12 13v8" fill="none" stroke="currentColor" stroke-width="2" stroke-linejoin="round"/></svg>';
  const nameEl = el('div', 'name');
  const micEl = el('span', 'mic-off');
  micEl.setAttribute('role', 'img');
  micEl.setAttribute('aria-label', 'Microphone muted');
  micEl.innerHTML = MIC_OFF;
  micEl.hidden = true;
  const label = el('span', 'label');
  nameEl.append(micEl, label);
  root.append(video, placeholder, pausedEl, awayEl, qualityEl, pin, nameEl);
  const stream = isLocal ? null : new MediaStream(); // one per participant: audio and video stay in sync
  if (stream) video.srcObject = stream;
  const tile = { el: root, video, stream, label, placeholder, initialsEl, micEl, qualityEl, pausedEl, awayEl, pin, participant: id, source, local: isLocal };
  root.addEventListener('click', (e) => {
    if (e.target.closest('button') && e.target.closest('button') !== pin) return;
    emit('pin', tile);
  });
  if (!isLocal) watchFirstFrame(video);
  $('grid').append(root);
  return tile;
}

export function allTiles() {
  return [local, localScreen, ...tiles.values(), ...screens.values()];
}

// ensureTile returns the participant's tile of source, made on first use.
export function ensureTile(id, source = 'camera') {
  const map = source === 'screen' ? screens : tiles;
  let tile = map.get(id);
  if (!tile) {
    tile = makeTile(id, source);
    map.set(id, tile);
    applySink(tile.video);
    sizes.watch(tile.video, () => videoTrackId(tile));
    emit('layout');
  }
  refresh(tile);
  return tile;
}

export function removeTile(id) {
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
  emit('layout');
}

// videoTrackId is the server id of the video a tile shows, or null.
export function videoTrackId(tile) {
  const track = tile.stream?.getVideoTracks()[0];
  return (track && received.get(track)?.id) ?? null;
}

// infoOf returns the server's info of a participant's track of kind (and
// source, for video).
function infoOf(participant, kind, source) {
  return Object.values(sb.tracks).find((t) => t.participant === participant && t.kind === kind && (kind === 'audio' || (t.source || 'camera') === source));
}

// refresh shows what a tile knows: name, muted microphone, camera off,
// paused, reconnecting.
export function refresh(tile) {
  const s = current.session;
  const name = tile.local ? (sb.you?.name ?? s?.name ?? 'You') : (sb.participants[tile.participant] ?? 'Someone');
  const shown = tile.local ? (tile.source === 'screen' ? 'Your screen' : `${name} (you)`) : tile.source === 'screen' ? `${name} (screen)` : name;
  tile.label.textContent = shown;
  tile.el.setAttribute('aria-label', shown);
  tile.initialsEl.textContent = initials(name);
  tile.pin.setAttribute('aria-label', `${tile.el.classList.contains('pinned') ? 'Unpin' : 'Pin'} ${shown}`);
  let micOff, camOff;
  if (tile.local) {
    const audio = s?.stream?.getAudioTracks()[0];
    const video = s?.stream?.getVideoTracks()[0];
    micOff = !audio || !audio.enabled;
    camOff = tile.source === 'camera' && (!video || !video.enabled);
  } else {
    micOff = !!infoOf(tile.participant, 'audio')?.muted;
    const id = videoTrackId(tile);
    camOff = !id || !!sb.tracks[id]?.muted || !!infoOf(tile.participant, 'video', tile.source)?.muted;
  }
  tile.micEl.hidden = tile.source === 'screen' || !micOff;
  tile.placeholder.hidden = !camOff;
  tile.el.classList.toggle('camera-off', camOff);
  const state = tile.local ? undefined : sb.streams[videoTrackId(tile)];
  // Paused by the server while we show it: a hidden page pauses on purpose.
  const paused = !!state?.paused && !camOff && document.visibilityState === 'visible' && !tile.el.hidden;
  tile.el.classList.toggle('paused', paused);
  tile.pausedEl.hidden = !paused;
}

export function refreshAll() {
  for (const tile of allTiles()) refresh(tile);
}
document.addEventListener('visibilitychange', refreshAll);

// setReconnecting marks a participant's tile while its client is away.
export function setReconnecting(id, away) {
  const tile = ensureTile(id);
  tile.el.classList.toggle('reconnecting', away);
  tile.awayEl.hidden = !away;
}

export function setSpeaking(id, speaking) {
  for (const tile of id ? [tiles.get(id)] : [local]) tile?.el.classList.toggle('speaking', speaking);
}

export function setQuality(id, quality) {
  const tile = tiles.get(id);
  if (!tile) return;
  tile.qualityEl.hidden = !quality;
  tile.qualityEl.dataset.quality = quality || '';
  tile.qualityEl.setAttribute('aria-label', `Connection: ${quality}`);
  tile.qualityEl.title = `Connection: ${quality}`;
}

// ---- received tracks ----

// place shows a received track in its participant's tile: the camera tile,
// or for a screen share a tile of its own (both have the participant's
// stream id, so the track info tells them apart).
export function place(track, participant, transceiver) {
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
  refresh(tile);
  sizes.check(tile.video);
}

// relocate places every received track again, after something that may
// change its server id or participant (a renegotiation) or its source (track
// info).
export function relocate() {
  const sdp = current.session?.sub?.pc.remoteDescription?.sdp;
  for (const [track, r] of [...received]) place(track, msid(sdp, r.transceiver?.mid)?.stream ?? r.participant, r.transceiver);
}

// serverTrackId is the server's id of a received track: the a=msid track id
// of its m-line, which the server sets to its id; Chrome's track ids are the
// same, other browsers make up their own; as a last resort the participant's
// track of this kind that no other tile shows, a camera before a screen.
function serverTrackId(track, participant, transceiver) {
  const fromSdp = msid(current.session?.sub?.pc.remoteDescription?.sdp, transceiver?.mid)?.track;
  if (fromSdp) return fromSdp;
  if (sb.tracks[track.id]) return track.id;
  const taken = new Set([...received].filter(([t]) => t !== track).map(([, r]) => r.id));
  const known = Object.values(sb.tracks).filter((t) => t.participant === participant && t.kind === track.kind && !taken.has(t.id));
  known.sort((a, b) => (a.source === 'screen') - (b.source === 'screen'));
  return known[0]?.id ?? track.id;
}

export function detach(track) {
  received.delete(track);
  for (const tile of [...tiles.values(), ...screens.values()]) {
    if (!tile.stream.getTracks().includes(track)) continue;
    tile.stream.removeTrack(track);
    if (tile.source === 'screen' && !tile.stream.getTracks().length) dropTile(screens, tile.participant);
    else refresh(tile);
  }
}

function watchFirstFrame(video) {
  const seen = () => {
    if (!video.videoWidth) return;
    sb.firstRemoteFrameAt ??= performance.now();
    mark('firstFrame');
  };
  if ('requestVideoFrameCallback' in video) video.requestVideoFrameCallback(seen);
  else {
    video.addEventListener('loadeddata', seen);
    video.addEventListener('resize', seen);
  }
}

export function play(video) {
  video.play().catch((err) => {
    if (err.name !== 'NotAllowedError') return; // AbortError: a newer load superseded this play
    // Autoplay policy: muted video may still play, so the picture shows while
    // the sound waits for a click.
    video.muted = true;
    video.play().catch(() => {});
    $('enable-audio').hidden = false;
  });
}

export function enableAudio() {
  $('enable-audio').hidden = true;
  for (const { video } of tiles.values()) {
    video.muted = false;
    play(video);
  }
}

// applySink plays a received video's sound on the chosen speaker.
export function applySink(video) {
  const id = prefs.get('speaker');
  if (id && video.setSinkId) video.setSinkId(id).catch((err) => console.warn('switchboard: setSinkId:', err));
}
