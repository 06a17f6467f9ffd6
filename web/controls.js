// The parts of the page around the tiles: the header's plain status, the
// banner, errors and toasts; the control bar (each button named for what it
// does); the Participants, Chat (chat.js), Stats and Devices panels; the invite link; page
// turning; and the keys (m: microphone, v: camera, Escape: close a panel).
import { $, current, emit, on, params, sb, screens, tiles } from './state.js';
import { callState, leave, moderate, ui } from './call.js';
import { has, isOn, toggle, toggleScreen } from './publish.js';
import { enableAudio } from './tiles.js';
import { setMode, turnPage, view } from './layout.js';
import { setStatsOpen } from './stats.js';

const STATUS = {
  idle: 'Not in a call',
  connecting: 'Connecting…',
  joined: 'Connected',
  reconnecting: 'Reconnecting…',
  closed: 'Left the call',
  error: 'Not connected',
};

export function render() {
  const s = current.session;
  sb.state = callState();
  const status = $('status');
  status.dataset.state = sb.state;
  status.textContent = STATUS[sb.state] ?? sb.state;
  const n = Object.keys(sb.participants).length + (sb.you ? 1 : 0);
  $('room-info').textContent = s ? `${s.room} · ${n} ${n === 1 ? 'person' : 'people'}` : '';
  const banner = $('banner');
  banner.textContent =
    sb.state === 'reconnecting' ? 'Reconnecting…'
    : s?.draining ? 'The server is restarting; the call reconnects by itself.'
    : ui.notice;
  banner.hidden = !banner.textContent;
  $('participants-count').textContent = String(n);
}

function showError(msg) {
  const li = document.createElement('li');
  li.textContent = msg;
  $('errors').append(li);
}

export function toast(text) {
  const el = document.createElement('div');
  el.className = 'toast';
  el.textContent = text;
  $('toasts').append(el);
  setTimeout(() => el.remove(), 4000);
}

// ---- buttons ----

function setToggle(button, label, text, pressed, disabled = false) {
  button.setAttribute('aria-label', label);
  button.title = label;
  button.querySelector('.text').textContent = text;
  button.setAttribute('aria-pressed', String(pressed));
  button.disabled = disabled;
}

export function updateControls() {
  const mic = has('microphone');
  const micOn = isOn('microphone');
  setToggle($('mute'), micOn || !mic ? 'Mute microphone' : 'Unmute microphone', micOn || !mic ? 'Mute' : 'Unmute', mic && !micOn, !mic);
  $('mute').classList.toggle('off', mic && !micOn);
  const cam = has('camera');
  const camOn = isOn('camera');
  setToggle($('camera'), camOn || !cam ? 'Turn camera off' : 'Turn camera on', camOn || !cam ? 'Stop video' : 'Start video', cam && !camOn, !cam);
  $('camera').classList.toggle('off', cam && !camOn);
  const sharing = !!current.session?.screen;
  setToggle($('screen'), sharing ? 'Stop sharing' : 'Share screen', sharing ? 'Stop sharing' : 'Share screen', sharing, !sb.you || !navigator.mediaDevices?.getDisplayMedia);
  const speaker = view.mode === 'speaker';
  // The button offers the other view.
  $('view').setAttribute('aria-label', speaker ? 'Grid view' : 'Speaker view');
  $('view').querySelector('.text').textContent = speaker ? 'Grid' : 'Speaker';
  $('view').title = speaker ? 'Grid view' : 'Speaker view';
}

// ---- panels ----

const PANELS = { participants: 'panel-participants', chat: 'panel-chat', stats: 'panel-stats', devices: 'panel-devices' };

export function togglePanel(name, open) {
  for (const [n, id] of Object.entries(PANELS)) {
    const show = n === name ? (open ?? $(id).hidden) : false;
    $(id).hidden = !show;
    $(`open-${n}`).setAttribute('aria-expanded', String(show));
  }
  setStatsOpen(!$('panel-stats').hidden);
  if (name === 'participants') renderParticipants();
  emit('panel', name);
  emit('layout'); // the grid gives way to an open panel
}

function closePanels() {
  const open = Object.entries(PANELS).find(([, id]) => !$(id).hidden);
  if (!open) return false;
  togglePanel(open[0], false);
  $(`open-${open[0]}`).focus();
  return true;
}

function renderParticipants() {
  if ($('panel-participants').hidden) return;
  const admin = !!sb.you?.admin;
  $('end-call').hidden = !admin;
  const list = $('people');
  // The list is drawn anew on every change: the button that had the focus keeps it.
  const focused = list.contains(document.activeElement) ? document.activeElement.dataset.key : null;
  list.replaceChildren();
  const item = (name, { mic, camera, screen, away }, id) => {
    const li = document.createElement('li');
    const who = document.createElement('span');
    who.className = 'who';
    who.textContent = name;
    const notes = [];
    if (screen) notes.push('presenting');
    if (away) notes.push('reconnecting');
    if (!mic) notes.push('muted');
    if (!camera) notes.push('camera off');
    const what = document.createElement('span');
    what.className = 'what';
    what.textContent = notes.join(' · ');
    li.append(who, what);
    // A moderator's buttons, for each of the others.
    if (admin && id) {
      const actions = document.createElement('span');
      actions.className = 'moderate';
      const button = (key, label, text, disabled, fn) => {
        const b = document.createElement('button');
        b.type = 'button';
        b.dataset.key = `${key}:${id}`;
        b.setAttribute('aria-label', label);
        b.title = label;
        b.textContent = text;
        b.disabled = disabled;
        if (key === 'remove') b.className = 'danger';
        b.addEventListener('click', fn);
        actions.append(b);
      };
      button('mute', `Mute ${name}`, 'Mute', !mic, () => moderate('mute', { participant: id, kind: 'audio' }));
      button('camera', `Turn off ${name}'s camera`, 'Camera off', !camera, () => moderate('mute', { participant: id, kind: 'video' }));
      button('remove', `Remove ${name}`, 'Remove', false, () => moderate('remove', { participant: id, reason: 'removed by the host' }));
      li.append(actions);
    }
    list.append(li);
  };
  if (sb.you) item(`${sb.you.name} (you)`, { mic: isOn('microphone'), camera: isOn('camera'), screen: !!current.session?.screen });
  for (const [id, name] of Object.entries(sb.participants)) {
    const tracks = Object.values(sb.tracks).filter((t) => t.participant === id);
    const audio = tracks.find((t) => t.kind === 'audio');
    const video = tracks.find((t) => t.kind === 'video' && (t.source || 'camera') === 'camera');
    item(name, {
      mic: !!audio && !audio.muted,
      camera: !!video && !video.muted,
      screen: screens.has(id) || tracks.some((t) => t.source === 'screen'),
      away: tiles.get(id)?.el.classList.contains('reconnecting'),
    }, id);
  }
  if (focused) [...list.querySelectorAll('button')].find((b) => b.dataset.key === focused && !b.disabled)?.focus();
}

// ---- invite ----

// inviteLink is the room's link: no name (each person gives their own), no
// token (it is ours alone).
export function inviteLink() {
  const url = new URL(location.pathname, location.origin);
  url.searchParams.set('room', current.session?.room ?? params.get('room') ?? '');
  return url.href;
}

async function copyInvite() {
  const link = inviteLink();
  const note = params.get('token') ? ' Each person needs their own link from whoever set up this call: this one lets nobody in by itself.' : '';
  try {
    await navigator.clipboard.writeText(link);
    toast(`Invite link copied: ${link}.${note}`);
  } catch {
    toast(`Copy this invite link: ${link}.${note}`);
  }
}

// ---- keys ----

function onKey(e) {
  if (e.key === 'Escape' && closePanels()) return e.preventDefault();
  if (e.ctrlKey || e.metaKey || e.altKey || !current.session) return;
  const t = e.target;
  if (t.closest?.('input, textarea, select, [contenteditable]')) return; // typing
  if (e.key === 'm' || e.key === 'M') toggle('microphone');
  else if (e.key === 'v' || e.key === 'V') toggle('camera');
}

export function initControls() {
  on('render', render);
  on('error', showError);
  on('toast', toast);
  on('controls', updateControls);
  on('participants', renderParticipants);
  on('participants', render);
  on('joining', () => {
    $('errors').replaceChildren();
    updateControls();
  });
  on('pages', (v) => {
    $('pager').hidden = v.pages < 2;
    $('page-info').textContent = `Page ${v.page + 1} of ${v.pages}`;
    $('prev-page').disabled = v.page === 0;
    $('next-page').disabled = v.page >= v.pages - 1;
  });
  $('mute').addEventListener('click', () => toggle('microphone'));
  $('camera').addEventListener('click', () => toggle('camera'));
  $('screen').addEventListener('click', toggleScreen);
  $('view').addEventListener('click', () => setMode(view.mode === 'speaker' ? 'grid' : 'speaker'));
  $('invite').addEventListener('click', copyInvite);
  $('leave').addEventListener('click', leave);
  $('end-call').addEventListener('click', () => moderate('end-room'));
  $('enable-audio').addEventListener('click', enableAudio);
  $('prev-page').addEventListener('click', () => turnPage(-1));
  $('next-page').addEventListener('click', () => turnPage(1));
  for (const name of Object.keys(PANELS)) {
    $(`open-${name}`).addEventListener('click', () => togglePanel(name));
    $(PANELS[name]).querySelector('.close').addEventListener('click', () => closePanels());
  }
  addEventListener('keydown', onKey);
  updateControls();
  render();
}
