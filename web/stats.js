// What getStats tells the user: who is speaking (the audio level of each
// received microphone and of ours, every 250 ms, smoothed), the quality of
// each participant's connection (loss and jitter of what we receive from
// them, and the layer the server sends), and the engineering details
// (connection states, layers, bitrates, codecs, round-trip time) in the
// Stats panel.
import { $, current, emit, received, sb } from './state.js';
import { setQuality, setSpeaking, videoTrackId } from './tiles.js';
import { setSpeaker } from './layout.js';
import { tiles } from './state.js';

const EVERY = 250; // ms between two polls
const QUALITY_EVERY = 4; // polls between two quality updates (1 s)
const SPEAK_ON = 0.04; // smoothed audioLevel above which someone speaks
const SPEAK_OFF = 0.02; // and below which they stopped

let tick = 0;
let last = new Map(); // inbound-rtp id -> its previous report, for rates
let lastAt = 0;
let panelOpen = false;

async function poll() {
  const s = current.session;
  if (!s) return;
  tick++;
  const [sub, pub] = await Promise.all([s.sub?.pc.getStats().catch(() => null), s.pub?.pc.getStats().catch(() => null)]);
  if (current.session !== s) return;
  const byTrack = new Map([...received].map(([track, r]) => [track.id, r]));
  const levels = {};
  sub?.forEach((r) => {
    if (r.type !== 'inbound-rtp' || r.kind !== 'audio') return;
    const who = byTrack.get(r.trackIdentifier)?.participant;
    if (who) levels[who] = Math.max(levels[who] ?? 0, r.audioLevel ?? 0);
  });
  const mic = s.stream?.getAudioTracks()[0];
  pub?.forEach((r) => {
    if (r.type === 'media-source' && r.kind === 'audio') levels[''] = mic?.enabled ? (r.audioLevel ?? 0) : 0;
  });
  for (const id of new Set([...Object.keys(levels), ...Object.keys(sb.levels)])) {
    const prev = sb.levels[id] ?? { level: 0, speaking: false };
    const level = 0.6 * prev.level + 0.4 * (levels[id] ?? 0);
    const speaking = prev.speaking ? level > SPEAK_OFF : level > SPEAK_ON;
    // Once the server ranks speakers (speakers messages), its word decides
    // the highlight; these levels remain for the meters.
    if (speaking !== prev.speaking && !sb.speakers) {
      setSpeaking(id, speaking);
      if (speaking && id) setSpeaker(id);
    }
    sb.levels[id] = { level, speaking };
  }
  if (tick % QUALITY_EVERY === 0 && sub) quality(sub, byTrack);
  if (panelOpen && tick % QUALITY_EVERY === 0) renderPanel(sub, pub);
}

// onSpeakers takes the server's ranking of active speakers (loudest first)
// and highlights exactly those tiles, the loudest on the stage in speaker
// view.
export function onSpeakers(list) {
  if (!Array.isArray(list)) return;
  const ids = list.map((x) => x?.participant).filter((id) => typeof id === 'string');
  sb.speakers = ids;
  for (const id of tiles.keys()) setSpeaking(id, ids.includes(id));
  setSpeaking('', !!sb.you && ids.includes(sb.you.id));
  if (ids[0] && ids[0] !== sb.you?.id) setSpeaker(ids[0]);
}

// quality rates each participant's connection from what we receive from
// them over the last second.
function quality(stats, byTrack) {
  const now = performance.now();
  const per = {};
  const next = new Map();
  stats.forEach((r) => {
    if (r.type !== 'inbound-rtp') return;
    next.set(r.id, r);
    const who = byTrack.get(r.trackIdentifier)?.participant;
    if (!who) return;
    const p = (per[who] ??= { received: 0, lost: 0, jitter: 0 });
    const before = last.get(r.id);
    if (before) {
      p.received += Math.max(0, r.packetsReceived - before.packetsReceived);
      p.lost += Math.max(0, r.packetsLost - before.packetsLost);
    }
    p.jitter = Math.max(p.jitter, r.jitter ?? 0);
  });
  last = next;
  lastAt = now;
  for (const [id, tile] of tiles) {
    const p = per[id];
    if (!p) {
      setQuality(id, '');
      sb.quality[id] = '';
      continue;
    }
    const loss = p.received + p.lost ? p.lost / (p.received + p.lost) : 0;
    const state = sb.streams[videoTrackId(tile)];
    // The server sends a small layer on a large tile when bandwidth is short.
    const squeezed = state?.paused || (state?.layer === 'q' && tile.video.clientWidth > 480);
    const q = loss > 0.08 || p.jitter > 0.1 || state?.paused ? 'poor' : loss > 0.02 || p.jitter > 0.03 || squeezed ? 'fair' : 'good';
    sb.quality[id] = q;
    setQuality(id, q);
  }
}

// ---- the Stats panel ----

export function setStatsOpen(open) {
  panelOpen = open;
  if (open) renderPanel(null, null, true);
}

function connState(pc) {
  return pc ? pc.connectionState || pc.iceConnectionState : '-';
}

const kbps = (bytes, before, ms) => (before && ms > 0 ? Math.round(((bytes - before) * 8) / ms) : null);
let prevBytes = new Map();
let prevAt = 0;

async function renderPanel(sub, pub, fetch = false) {
  const s = current.session;
  if (fetch && s) [sub, pub] = await Promise.all([s.sub?.pc.getStats(), s.pub?.pc.getStats()]);
  const now = performance.now();
  const ms = now - prevAt;
  const bytes = new Map();
  const rows = [];
  let rtt = null;
  const byTrack = new Map([...received].map(([track, r]) => [track.id, r]));
  const row = (cells) => rows.push(cells.map((c) => c ?? '–'));
  for (const [stats, dir] of [[pub, 'sent'], [sub, 'received']]) {
    stats?.forEach((r) => {
      if (r.type === 'candidate-pair' && r.nominated && r.currentRoundTripTime != null) rtt = Math.max(rtt ?? 0, r.currentRoundTripTime);
      if (r.type !== 'inbound-rtp' && r.type !== 'outbound-rtp') return;
      const total = r.bytesReceived ?? r.bytesSent ?? 0;
      bytes.set(r.id, total);
      const codec = stats.get(r.codecId)?.mimeType?.replace(/^\w+\//, '');
      const info = dir === 'received' ? byTrack.get(r.trackIdentifier) : null;
      const who = dir === 'sent' ? 'You' : (sb.participants[info?.participant] ?? '?');
      const layer = dir === 'sent' ? r.rid : sb.streams[info?.id]?.layer;
      const size = r.frameWidth ? `${r.frameWidth}x${r.frameHeight}` : null;
      const fps = r.framesPerSecond != null ? Math.round(r.framesPerSecond) : null;
      const loss = r.packetsLost != null && r.packetsReceived ? `${((100 * r.packetsLost) / (r.packetsLost + r.packetsReceived)).toFixed(1)}%` : null;
      row([who, `${r.kind} ${dir}`, codec, layer, size, fps, kbps(total, prevBytes.get(r.id), ms), loss, r.qualityLimitationReason]);
    });
  }
  prevBytes = bytes;
  prevAt = now;
  const table = $('stats-table');
  const head = ['Who', 'Stream', 'Codec', 'Layer', 'Size', 'fps', 'kbit/s', 'Loss', 'Limited by'];
  const thead = `<tr>${head.map((h) => `<th scope="col">${h}</th>`).join('')}</tr>`;
  table.innerHTML = thead;
  for (const cells of rows) {
    const tr = document.createElement('tr');
    for (const c of cells) tr.append(Object.assign(document.createElement('td'), { textContent: String(c) }));
    table.append(tr);
  }
  $('stats-summary').textContent =
    `Publisher: ${connState(sb.publisher)} · Subscriber: ${connState(sb.subscriber)} · ` + `Round trip: ${rtt == null ? '–' : `${Math.round(rtt * 1000)} ms`}`;
}

let timer = null;
export function startStats() {
  clearInterval(timer);
  last = new Map();
  timer = setInterval(() => poll().catch((err) => console.warn('switchboard: stats:', err)), EVERY);
}

export function stopStats() {
  clearInterval(timer);
  timer = null;
  for (const id of Object.keys(sb.levels)) setSpeaking(id, false);
  sb.levels = {};
  sb.speakers = null;
  sb.quality = {};
  emit('participants');
}
