// The pre-join screen: the room's name, a preview of the camera, a meter of
// the microphone, the pickers of camera, microphone and speaker, and the
// name remembered from the last visit. Its Join button is the click that
// lets the call's sound play at once, and the call goes on with the camera
// and microphone the preview opened. In the call, the same pickers (in the
// Devices panel) switch devices without rejoining.
import { $, current, on, options, params, prefs } from './state.js';
import { cameraConstraints, getMedia, mediaProblem } from './media.js';
import { join } from './call.js';
import { switchDevice, switchSpeaker } from './publish.js';

const form = () => $('join-form');
let preview = null; // the stream the preview shows, handed to the call on Join
let opening = null; // its getUserMedia, while it runs
let meter = null; // {ctx, timer}

const PICKERS = { camera: 'videoinput', microphone: 'audioinput', speaker: 'audiooutput' };

// showPrejoin shows the form, for room (may be empty: then it asks for it).
export function showPrejoin() {
  const f = form();
  const room = f.elements.namedItem('room').value || params.get('room') || '';
  f.elements.namedItem('room').value = room;
  $('room-field').hidden = !!room;
  $('join-title').textContent = room ? `Join ${room}` : 'Join a call';
  f.elements.namedItem('name').value ||= params.get('name') ?? prefs.get('name');
  $('speaker-field').hidden = !('setSinkId' in HTMLMediaElement.prototype);
  $('call').hidden = true;
  f.hidden = false;
  f.querySelector('button[type=submit]').before($('device-pickers'));
  startPreview();
  f.elements.namedItem(room ? 'name' : 'room').focus();
}

function startPreview() {
  if (!options.publish || preview || opening) return;
  const errors = [];
  opening = getMedia((msg) => errors.push(msg), { camera: prefs.get('camera'), microphone: prefs.get('microphone') });
  opening.then((stream) => {
    opening = null;
    if (form().hidden) return; // joined meanwhile: the call took the promise
    preview = stream;
    $('prejoin-error').textContent = errors.join(' ');
    showPreview();
    fillDevices();
  });
}

function showPreview() {
  const video = $('preview');
  video.srcObject = preview;
  const camera = preview?.getVideoTracks()[0];
  $('preview-off').hidden = !!camera;
  startMeter();
}

// startMeter shows the microphone's level; the audio context may wait for
// the first click or key before it runs (autoplay policy).
function startMeter() {
  stopMeter();
  const mic = preview?.getAudioTracks()[0];
  if (!mic || !window.AudioContext) return;
  const ctx = new AudioContext();
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 512;
  ctx.createMediaStreamSource(new MediaStream([mic])).connect(analyser);
  const data = new Float32Array(analyser.fftSize);
  const timer = setInterval(() => {
    if (ctx.state === 'suspended') ctx.resume().catch(() => {});
    analyser.getFloatTimeDomainData(data);
    let sum = 0;
    for (const v of data) sum += v * v;
    // RMS to a 0..1 scale that speech fills: -60 dBFS .. 0.
    const db = 10 * Math.log10(sum / data.length + 1e-10);
    $('mic-level').value = Math.max(0, Math.min(1, (db + 60) / 60));
  }, 100);
  meter = { ctx, timer };
}

function stopMeter() {
  if (!meter) return;
  clearInterval(meter.timer);
  meter.ctx.close().catch(() => {});
  meter = null;
}

// fillDevices lists the devices in the pickers, the one in use selected.
export async function fillDevices() {
  let devices = [];
  try {
    devices = await navigator.mediaDevices.enumerateDevices();
  } catch {
    return;
  }
  const stream = current.session?.stream ?? preview;
  const inUse = {
    camera: stream?.getVideoTracks()[0]?.getSettings().deviceId,
    microphone: stream?.getAudioTracks()[0]?.getSettings().deviceId,
    speaker: prefs.get('speaker') || 'default',
  };
  for (const [name, kind] of Object.entries(PICKERS)) {
    const select = $(`pick-${name}`);
    const list = devices.filter((d) => d.kind === kind && d.deviceId);
    select.replaceChildren(
      ...list.map((d, i) => {
        const o = new Option(d.label || `${name[0].toUpperCase()}${name.slice(1)} ${i + 1}`, d.deviceId);
        o.selected = d.deviceId === inUse[name];
        return o;
      }),
    );
    select.disabled = !list.length;
  }
}

// pick uses the chosen device: in the call, at once; before it, in the preview.
async function pick(name, deviceId) {
  if (name === 'speaker') return switchSpeaker(deviceId);
  if (current.session) return switchDevice(name, deviceId);
  prefs.set(name, deviceId);
  if (!preview) return;
  const kind = name === 'camera' ? 'video' : 'audio';
  for (const t of kind === 'video' ? preview.getVideoTracks() : preview.getAudioTracks()) {
    t.stop();
    preview.removeTrack(t);
  }
  try {
    const constraints = kind === 'video' ? { video: cameraConstraints(deviceId) } : { audio: { deviceId: { exact: deviceId } } };
    for (const t of (await navigator.mediaDevices.getUserMedia(constraints)).getTracks()) preview.addTrack(t);
    $('prejoin-error').textContent = '';
  } catch (err) {
    $('prejoin-error').textContent = mediaProblem(err);
  }
  showPreview();
}

function submit(e) {
  e.preventDefault();
  const f = form();
  const room = f.elements.namedItem('room').value.trim();
  const name = f.elements.namedItem('name').value.trim();
  if (!room || !name) return;
  stopMeter();
  // The call takes over the preview's camera and microphone, or the request still running.
  const media = preview ? Promise.resolve(preview) : (opening ?? undefined);
  preview = opening = null;
  $('preview').srcObject = null;
  enterCall();
  join(room, name, media);
}

export function enterCall() {
  form().hidden = true;
  $('call').hidden = false;
  $('panel-devices').append($('device-pickers'));
}

export function initPrejoin() {
  form().addEventListener('submit', submit);
  for (const name of Object.keys(PICKERS)) $(`pick-${name}`).addEventListener('change', (e) => pick(name, e.target.value));
  $('open-devices').addEventListener('click', fillDevices);
  navigator.mediaDevices?.addEventListener?.('devicechange', fillDevices);
  // After the call: the form again, for the same room.
  on('ended', () => showPrejoin());
  on('controls', () => current.session?.stream && fillDevices());
}
