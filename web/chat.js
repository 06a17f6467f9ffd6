// Chat: the Chat panel, over the room's "data" channel that the server
// opens on our subscriber connection (docs/protocol.md, "Room data").
// Everything others send is shown as text (textContent), never as markup;
// http(s) links become anchors built element by element. The server sends
// a newcomer the room's recent history; after a rejoin it comes again, and
// messages already shown are dropped by id.
import { $, current, emit, on, sb } from './state.js';
import { initFiles, onFile } from './files.js';

const MAX_TEXT = 4000; // characters; the server's limit is in bytes (data.message-size)

const chat = (sb.chat = {
  messages: [], // what the panel shows, oldest first: {id, from: {id, name}, ts, text, to}
  unread: 0,
  channel: null, // the open "data" channel, or null
  send, // send(text, to): to is a participant id, or '' for everyone
});
const seen = new Set(); // message ids shown

// attachChat listens for the server's data channels on pc (a subscriber
// connection: every session of the call has its own).
export function attachChat(pc) {
  pc.addEventListener('datachannel', (e) => {
    const dc = e.channel;
    if (dc.label !== 'data') return;
    dc.onopen = () => {
      if (current.session?.sub?.pc === pc) chat.channel = dc;
      emit('chat-state');
    };
    dc.onclose = () => {
      if (chat.channel === dc) chat.channel = null;
      emit('chat-state');
    };
    dc.onmessage = (m) => {
      if (current.session?.sub?.pc !== pc || typeof m.data !== 'string') return;
      let msg;
      try {
        msg = JSON.parse(m.data);
      } catch {
        return console.warn('switchboard: a data message that is not JSON');
      }
      onData(msg);
    };
  });
}

function onData(m) {
  if (m?.type === 'chat') return receive(m);
  if (typeof m?.type === 'string' && (m.type.startsWith('file-') || m.type === 'error') && onFile(m)) return;
  if (m?.type === 'error') return note(errorNote(m));
  dispatchEvent(new CustomEvent('switchboard-data', { detail: m })); // app messages, for whoever wants them
}

function errorNote(m) {
  switch (m.code) {
    case 'too-large': return 'That message is too long to send.';
    case 'rate-limited': return 'You are sending messages too fast; one was not sent.';
    case 'overflow': return m.participant ? `${sb.participants[m.participant] ?? 'Someone'} did not get a message: their connection is too slow.` : 'Some messages to you were lost: your connection is too slow.';
    default: return `A message was refused (${m.message || m.code}).`;
  }
}

function receive(m) {
  if (typeof m.id !== 'string' || typeof m.text !== 'string' || seen.has(m.id)) return;
  seen.add(m.id);
  const msg = { id: m.id, from: { id: String(m.from?.id ?? ''), name: String(m.from?.name ?? '') }, ts: Number(m.ts) || Date.now(), text: m.text, to: Array.isArray(m.to) ? m.to.map(String) : null };
  // In time order: a rejoin's history may bring what was missed during the outage.
  let i = chat.messages.length;
  while (i > 0 && chat.messages[i - 1].ts > msg.ts) i--;
  chat.messages.splice(i, 0, msg);
  const el = render(msg);
  const log = $('chat-log');
  log.insertBefore(el, log.children[i] ?? null);
  el.scrollIntoView?.({ block: 'nearest' });
  if ($('panel-chat').hidden && msg.from.id !== sb.you?.id) {
    chat.unread++;
    updateBadge();
  }
  dispatchEvent(new CustomEvent('switchboard-chat', { detail: msg }));
}

function render(msg) {
  const li = document.createElement('li');
  li.dataset.id = msg.id;
  const meta = document.createElement('div');
  meta.className = 'meta';
  const who = document.createElement('span');
  who.className = 'who';
  const mine = msg.from.id === sb.you?.id;
  who.textContent = mine ? `${msg.from.name} (you)` : msg.from.name;
  const when = document.createElement('time');
  const date = new Date(msg.ts);
  when.dateTime = date.toISOString();
  when.textContent = date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  meta.append(who, ' ', when);
  if (msg.to) {
    const priv = document.createElement('span');
    priv.className = 'private';
    priv.textContent = mine ? ` to ${msg.to.map((id) => sb.participants[id] ?? 'someone').join(', ')} (private)` : ' (private)';
    meta.append(priv);
  }
  const text = document.createElement('p');
  text.className = 'text';
  linkify(text, msg.text);
  li.append(meta, text);
  return li;
}

// linkify appends text to el, with each http(s) URL as a link.
export function linkify(el, text) {
  let last = 0;
  for (const match of text.matchAll(/\bhttps?:\/\/[^\s<>"']+/gi)) {
    const url = match[0].replace(/[.,;:!?)\]}]+$/, ''); // sentence punctuation after a link
    let href;
    try {
      href = new URL(url);
    } catch {
      continue;
    }
    if (href.protocol !== 'http:' && href.protocol !== 'https:') continue;
    el.append(text.slice(last, match.index));
    const a = document.createElement('a');
    a.href = href.href;
    a.textContent = url;
    a.target = '_blank';
    a.rel = 'noopener noreferrer';
    el.append(a);
    last = match.index + url.length;
  }
  el.append(text.slice(last));
}

function note(text) {
  const li = document.createElement('li');
  li.className = 'note';
  li.textContent = text;
  $('chat-log').append(li);
}

function send(text, to = '') {
  text = String(text).slice(0, MAX_TEXT);
  if (!text.trim()) return false;
  if (chat.channel?.readyState !== 'open') {
    note('Chat is not connected yet; try again in a moment.');
    return false;
  }
  chat.channel.send(JSON.stringify({ type: 'chat', text, ...(to ? { to: [to] } : {}) }));
  return true;
}

function updateBadge() {
  const badge = $('chat-unread');
  badge.textContent = String(chat.unread);
  badge.hidden = chat.unread === 0;
  $('open-chat').setAttribute('aria-label', chat.unread ? `Chat, ${chat.unread} unread` : 'Chat');
}

// The recipient picker: everyone, or one of the others.
function updateRecipients() {
  const select = $('chat-to');
  const chosen = select.value;
  const options = [new Option('Everyone', '')];
  for (const [id, name] of Object.entries(sb.participants)) options.push(new Option(name, id));
  select.replaceChildren(...options);
  select.value = options.some((o) => o.value === chosen) ? chosen : '';
}

export function initChat() {
  $('chat-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const input = $('chat-input');
    if (send(input.value, $('chat-to').value)) input.value = '';
    input.focus();
  });
  on('participants', updateRecipients);
  on('panel', (name) => {
    if (name !== 'chat' || $('panel-chat').hidden) return;
    chat.unread = 0;
    updateBadge();
    $('chat-input').focus();
  });
  // A new call starts with an empty chat; a rejoin keeps it.
  on('joining', () => {
    chat.messages.length = 0;
    seen.clear();
    chat.unread = 0;
    chat.channel = null;
    $('chat-log').replaceChildren();
    updateBadge();
  });
  initFiles();
  updateRecipients();
  updateBadge();
}
