// What the modules of the Switchboard client share: the page's options, the
// call's state as window.switchboard shows it (tests and the load tool read
// it), the tiles, and the user's remembered choices.

export const loadedAt = performance.now();
export const $ = (id) => document.getElementById(id);
export const params = new URLSearchParams(location.search);

const CODECS = { vp8: 'video/VP8', vp9: 'video/VP9', h264: 'video/H264' };
export const options = {
  codec: CODECS[(params.get('codec') || 'vp8').toLowerCase()] || CODECS.vp8,
  // ?simulcast=0 publishes the camera as a single encoding, for debugging.
  simulcast: params.get('simulcast') !== '0',
  // ?publish=0 joins as a viewer: no camera or microphone (a screen share still works).
  publish: params.get('publish') !== '0',
};

export const tiles = new Map(); // participant id -> its camera tile (camera and microphone)
export const screens = new Map(); // participant id -> the tile of their screen share
export const received = new Map(); // MediaStreamTrack shown in a tile -> {id: server track id, participant, transceiver}

// current.session is the call in progress, or null; callbacks of an older
// one compare against it and stop.
export const current = { session: null };

export const sb = (window.switchboard = {
  state: 'idle',
  you: null,
  publisher: null,
  subscriber: null,
  participants: {}, // id -> name
  errors: [],
  loadedAt,
  firstRemoteFrameAt: null,
  // performance.now() of each step of the last join, for the load tool and
  // for finding where a slow join spends its time.
  timings: {},
  // Server track id -> its info from joined, track-published, track-updated and track-muted.
  tracks: {},
  // Server track id -> {paused, layer}: the last stream-state of each received video.
  streams: {},
  // Publisher mid -> the rids that the last publish-layers left active.
  publishLayers: {},
  // How often the call came back after the signaling connection broke: the
  // same session (resumed) or a new one (rejoined).
  reconnects: { resumed: 0, rejoined: 0 },
  // Participant id ('' for us) -> smoothed audio level 0..1, and whether they speak.
  levels: {},
  // The server's active speakers, loudest first (participant ids); null
  // until its first speakers message.
  speakers: null,
  // Participant id -> 'good' | 'fair' | 'poor'.
  quality: {},
  // A participant with a screen share has two tiles; each id is listed once.
  tiles: () => [...new Set([...document.querySelectorAll('#grid .tile[data-participant]')].map((el) => el.dataset.participant))],
});
Object.defineProperties(sb, {
  // The last numbered server message handled.
  lastSeq: { enumerable: true, get: () => current.session?.conn?.lastSeq ?? 0 },
  // performance.now() when the signaling connection was lost; null while up.
  awaySince: { enumerable: true, get: () => current.session?.conn?.awaySince ?? null },
});

export function mark(step) {
  sb.timings[step] ??= performance.now();
}

// A tiny event bus, so that modules tell each other what changed without
// importing each other: 'render' (the header and banner), 'layout' (the
// tiles), 'controls' (the buttons), 'participants' (the list), 'toast'.
const listeners = {};
export function on(event, fn) {
  (listeners[event] ??= []).push(fn);
}
export function emit(event, ...args) {
  for (const fn of listeners[event] || []) fn(...args);
}

// addError records an error for the user (plain words) and the tests.
export function addError(msg) {
  sb.errors.push(msg);
  console.warn('switchboard:', msg);
  emit('error', msg);
}

// prefs are the user's choices remembered across visits: name and devices.
export const prefs = {
  get(key) {
    try {
      return localStorage.getItem(`switchboard.${key}`) || '';
    } catch {
      return '';
    }
  },
  set(key, value) {
    try {
      if (value) localStorage.setItem(`switchboard.${key}`, value);
      else localStorage.removeItem(`switchboard.${key}`);
    } catch {} // storage may be off; the choice is then not remembered
  },
};

// initials of a name, for a tile without video: "Ada Lovelace" -> "AL".
export function initials(name) {
  const words = String(name || '?').trim().split(/\s+/).filter(Boolean);
  const letters = words.length > 1 ? [words[0], words[words.length - 1]] : [words[0] || '?'];
  return letters.map((w) => [...w][0].toUpperCase()).join('').slice(0, 2);
}
