// Files: send a file to the room or to one person from the Chat panel, over
// the same "data" channel as chat (docs/protocol.md, "Files"). The sender
// reads the file in 16 KiB chunks and sends each as base64 in JSON; it
// keeps its channel's buffer under 1 MiB (waiting for bufferedamountlow)
// and at most WINDOW chunks ahead of what the slowest receiver has
// acknowledged, so the server relays it without piling it up. The
// receiver keeps the chunks and, at the end, offers a link that saves the
// file under its name. Names are shown as text.
import { $, on, sb } from './state.js';

const CHUNK = 16 << 10; // raw bytes per chunk: the server's limit
const HIGH_WATER = 1 << 20; // the sender's channel buffer, at most
const LOW_WATER = 256 << 10;
const WINDOW = 64; // chunks (1 MiB) sent ahead of the receivers' acknowledgements
const ACK_EVERY = 8; // chunks

const outgoing = new Map(); // our id -> transfer
const incoming = new Map(); // the server's id -> transfer
sb.files = { outgoing, incoming, send: sendFile };

function toBase64(u8) {
  if (u8.toBase64) return u8.toBase64();
  let s = '';
  for (let i = 0; i < u8.length; i += 8192) s += String.fromCharCode.apply(null, u8.subarray(i, i + 8192));
  return btoa(s);
}

function fromBase64(s) {
  if (Uint8Array.fromBase64) return Uint8Array.fromBase64(s);
  const bin = atob(s);
  const u8 = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) u8[i] = bin.charCodeAt(i);
  return u8;
}

export function formatSize(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1 << 20) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / (1 << 20)).toFixed(1)} MB`;
}

// The entry of a transfer in the chat log: who and what (as text), a
// progress bar, a status and a Cancel button.
function entry(t, label) {
  const li = document.createElement('li');
  li.className = 'file';
  const meta = document.createElement('div');
  meta.className = 'meta';
  meta.textContent = label;
  const bar = document.createElement('div');
  bar.className = 'progress';
  bar.setAttribute('role', 'progressbar');
  bar.setAttribute('aria-label', t.name);
  bar.setAttribute('aria-valuemin', '0');
  bar.setAttribute('aria-valuemax', '100');
  bar.setAttribute('aria-valuenow', '0');
  const fill = document.createElement('div');
  fill.className = 'fill';
  bar.append(fill);
  const status = document.createElement('span');
  status.className = 'status';
  const cancel = document.createElement('button');
  cancel.type = 'button';
  cancel.textContent = 'Cancel';
  cancel.addEventListener('click', () => t.cancel('cancelled'));
  li.append(meta, bar, status, cancel);
  $('chat-log').append(li);
  li.scrollIntoView?.({ block: 'nearest' });
  t.ui = { li, bar, fill, status, cancel };
}

function progress(t, bytes) {
  const pct = t.size ? Math.min(100, Math.round((bytes * 100) / t.size)) : 100;
  if (t.ui.bar.getAttribute('aria-valuenow') !== String(pct)) {
    t.ui.bar.setAttribute('aria-valuenow', String(pct));
    t.ui.fill.style.width = `${pct}%`;
  }
  t.ui.status.textContent = `${formatSize(bytes)} of ${formatSize(t.size)}`;
}

function finish(t, text) {
  t.over = true;
  t.ui.status.textContent = text;
  t.ui.cancel.remove();
}

function channel() {
  const ch = sb.chat.channel;
  return ch?.readyState === 'open' ? ch : null;
}

function randomID() {
  const b = crypto.getRandomValues(new Uint8Array(8));
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
}

// sendFile sends file to one participant (to: an id) or everyone (''); it
// resolves when the receivers have it all, or the transfer is over.
export async function sendFile(file, to = '') {
  const ch = channel();
  if (!ch) return note('Chat is not connected yet; try again in a moment.');
  const t = { id: randomID(), name: file.name, size: file.size, acked: -1, over: false, wake: null, started: performance.now() };
  const kick = () => t.wake?.();
  t.cancel = (reason) => {
    if (t.over) return;
    if (channel() === ch) ch.send(JSON.stringify({ type: 'file-cancel', file: t.id, reason }));
    finish(t, 'Cancelled.');
    kick();
  };
  outgoing.set(t.id, t);
  const whom = to ? (sb.participants[to] ?? 'someone') : 'everyone';
  entry(t, `You send ${file.name} (${formatSize(file.size)}) to ${whom}`);
  t.ui.bar.setAttribute('aria-label', `Sending ${file.name}`);
  progress(t, 0);
  ch.bufferedAmountLowThreshold = LOW_WATER;
  ch.addEventListener('bufferedamountlow', kick);
  const wait = () => new Promise((resolve) => {
    t.wake = resolve;
    setTimeout(resolve, 250); // in case an event was missed
  });
  try {
    ch.send(JSON.stringify({ type: 'file-offer', file: t.id, name: file.name, size: file.size, mime: file.type || '', ...(to ? { to: [to] } : {}) }));
    let seq = 0;
    for (let off = 0; off < file.size && !t.over; ) {
      const block = new Uint8Array(await file.slice(off, off + 64 * CHUNK).arrayBuffer());
      for (let i = 0; i < block.length && !t.over; i += CHUNK, seq++) {
        while (!t.over && (ch.bufferedAmount > HIGH_WATER || seq - t.acked > WINDOW)) await wait();
        if (t.over) break;
        if (ch.readyState !== 'open') throw new Error('the connection closed');
        ch.send(JSON.stringify({ type: 'file-chunk', file: t.id, seq, data: toBase64(block.subarray(i, i + CHUNK)) }));
      }
      off += block.length;
    }
    if (!t.over) ch.send(JSON.stringify({ type: 'file-end', file: t.id }));
    t.last = seq - 1;
    while (!t.over) await wait();
  } catch (e) {
    if (!t.over) finish(t, `Not sent: ${e.message}.`);
  } finally {
    ch.removeEventListener('bufferedamountlow', kick);
  }
  return t;
}

function onSenderMessage(t, m) {
  switch (m.type) {
    case 'file-ack':
      t.acked = Math.max(t.acked, Number(m.seq));
      progress(t, Math.min(t.size, (t.acked + 1) * CHUNK));
      break;
    case 'file-end':
      progress(t, t.size);
      t.seconds = (performance.now() - t.started) / 1000;
      finish(t, `Sent ${formatSize(t.size)}.`);
      break;
    case 'file-cancel':
      if (m.participant) {
        const who = sb.participants[m.participant] ?? 'Someone';
        const why = m.reason === 'left' ? 'left' : m.reason === 'overflow' ? 'receives too slowly' : 'cancelled';
        t.ui.li.append(Object.assign(document.createElement('p'), { className: 'note', textContent: `${who} ${why}: they do not get it.` }));
      } else if (!t.over) {
        finish(t, m.reason === 'no-receivers' ? 'Nobody is receiving it any more.' : `Cancelled (${m.reason || 'by the server'}).`);
      }
      break;
    case 'error':
      if (!t.over) finish(t, `Not sent: ${m.message || m.code}.`);
      break;
  }
  t.wake?.();
}

function onReceiverMessage(m) {
  const ch = channel();
  if (m.type === 'file-offer') {
    if (typeof m.file !== 'string' || incoming.has(m.file)) return;
    const t = { id: m.file, name: String(m.name ?? 'file'), size: Number(m.size) || 0, mime: String(m.mime ?? ''), parts: [], got: 0, seq: -1, over: false };
    t.cancel = (reason) => {
      if (t.over) return;
      channel()?.send(JSON.stringify({ type: 'file-cancel', file: t.id, reason }));
      t.parts = [];
      finish(t, 'Cancelled.');
    };
    incoming.set(t.id, t);
    entry(t, `${String(m.from?.name ?? 'Someone')} sends ${t.name} (${formatSize(t.size)})${m.to ? ' (private)' : ''}`);
    t.ui.bar.setAttribute('aria-label', `Receiving ${t.name}`);
    progress(t, 0);
    return;
  }
  const t = incoming.get(m.file);
  if (!t || t.over) return;
  switch (m.type) {
    case 'file-chunk': {
      const part = fromBase64(String(m.data));
      t.parts.push(part);
      t.got += part.length;
      t.seq = Number(m.seq);
      if (t.seq % ACK_EVERY === ACK_EVERY - 1) ch?.send(JSON.stringify({ type: 'file-ack', file: t.id, seq: t.seq }));
      progress(t, t.got);
      break;
    }
    case 'file-end': {
      if (t.seq >= 0) ch?.send(JSON.stringify({ type: 'file-ack', file: t.id, seq: t.seq }));
      const blob = new Blob(t.parts, { type: t.mime });
      t.parts = [];
      t.blob = blob;
      progress(t, t.got);
      finish(t, '');
      const a = document.createElement('a');
      a.href = URL.createObjectURL(blob);
      a.download = t.name;
      a.textContent = `Save ${t.name}`;
      t.ui.status.replaceChildren(a);
      break;
    }
    case 'file-cancel':
      t.parts = [];
      finish(t, m.reason === 'left' ? 'The sender left.' : m.reason === 'overflow' ? 'Stopped: your connection is too slow.' : 'Cancelled by the sender.');
      break;
  }
}

// onFile takes a file-* message, or an error about one of our files; false
// if it is not about a file.
export function onFile(m) {
  if (m.type === 'error') {
    const t = outgoing.get(m.ref);
    if (!t) return false;
    onSenderMessage(t, m);
    return true;
  }
  const mine = outgoing.get(m.file);
  if (mine && m.type !== 'file-offer' && m.type !== 'file-chunk') onSenderMessage(mine, m);
  else onReceiverMessage(m);
  return true;
}

function note(text) {
  const li = document.createElement('li');
  li.className = 'note';
  li.textContent = text;
  $('chat-log').append(li);
}

export function initFiles() {
  const input = $('file-input');
  input.addEventListener('change', () => {
    for (const file of input.files) sendFile(file, $('chat-to').value);
    input.value = '';
  });
  on('joining', () => {
    for (const t of [...outgoing.values(), ...incoming.values()]) if (!t.over) t.cancel('left');
    outgoing.clear();
    incoming.clear();
  });
}
