// Media helpers of the Switchboard client that need no session state: local
// capture, how the camera is encoded (simulcast, docs/protocol.md "Simulcast,
// layers and bandwidth"), the layers the server asks us to encode, and the
// size at which each received video is shown.

// The camera's simulcast layers, lowest first, as the protocol names them.
// Chrome sends only the layers whose scaled size is large enough, which is
// why the camera is captured at 1280x720: at 640x480 there would be two.
const LAYERS = [
  { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150_000 },
  { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500_000 },
  { rid: 'f', scaleResolutionDownBy: 1, maxBitrate: 1_700_000 },
];
const TEMPORAL = 'L1T3';

// getMedia asks for the microphone and camera (the devices ids name, when
// given and still there), and settles for either one alone; null means the
// user joins as a viewer. Failures are told in plain words.
export async function getMedia(addError, devices = {}) {
  if (!navigator.mediaDevices?.getUserMedia) {
    addError('This page cannot use your camera or microphone here (it needs https). You joined without them.');
    return null;
  }
  const video = cameraConstraints(devices.camera);
  const audio = devices.microphone ? { deviceId: { ideal: devices.microphone } } : true;
  let firstError = null;
  for (const constraints of [{ audio, video }, { audio }, { video }]) {
    try {
      const stream = await navigator.mediaDevices.getUserMedia(constraints);
      if (firstError) addError(`${mediaProblem(firstError)} You joined with your ${constraints.audio ? 'microphone' : 'camera'} only.`);
      return stream;
    } catch (err) {
      firstError ??= err;
    }
  }
  addError(`${mediaProblem(firstError)} You joined without camera and microphone.`);
  return null;
}

// cameraConstraints: 1280x720 (three simulcast layers), from deviceId if given.
export function cameraConstraints(deviceId) {
  const video = { width: { ideal: 1280 }, height: { ideal: 720 } };
  if (deviceId) video.deviceId = { ideal: deviceId };
  return video;
}

// mediaProblem says what a getUserMedia error means for the user.
export function mediaProblem(err) {
  switch (err?.name) {
    case 'NotAllowedError':
    case 'SecurityError':
      return 'Your browser blocked the camera and microphone: allow them for this site (the icon in the address bar), then reload the page.';
    case 'NotFoundError':
    case 'OverconstrainedError':
      return 'No camera or microphone was found: plug one in, then reload the page.';
    case 'NotReadableError':
    case 'AbortError':
      return 'The camera or microphone is in use by another application: close it, then reload the page.';
    default:
      return `The camera or microphone could not be started (${err?.name}: ${err?.message}).`;
  }
}

// addCamera adds the camera track as a sendonly transceiver, with three
// simulcast encodings unless simulcast is false. A browser that rejects the
// temporal layers, or simulcast itself, gets the next simpler setup: the
// camera is always published.
export function addCamera(pc, track, stream, { simulcast, codec }) {
  const attempts = [];
  if (simulcast) {
    if (supportsMode(codec, TEMPORAL) !== false) {
      attempts.push(LAYERS.map((l) => ({ ...l, scalabilityMode: TEMPORAL })));
    }
    attempts.push(LAYERS.map((l) => ({ ...l })));
  }
  attempts.push(undefined); // the browser's single encoding
  let lastError;
  for (const sendEncodings of attempts) {
    try {
      const init = { direction: 'sendonly', streams: [stream] };
      if (sendEncodings) init.sendEncodings = sendEncodings;
      return pc.addTransceiver(track, init);
    } catch (err) {
      lastError = err;
      console.warn('switchboard: camera encodings rejected, trying simpler ones:', sendEncodings, err);
    }
  }
  throw lastError;
}

// supportsMode says whether the browser's encoder for codec lists mode among
// its scalability modes, or undefined where it does not tell (Chromium lists
// them only behind a flag, Firefox not at all).
function supportsMode(codec, mode) {
  const caps = RTCRtpSender.getCapabilities?.('video')?.codecs || [];
  const modes = caps.filter((c) => c.mimeType.toLowerCase() === codec.toLowerCase()).flatMap((c) => c.scalabilityModes || []);
  return modes.length ? modes.includes(mode) : undefined;
}

// preferCodec puts codec first in the transceiver's list, so the server
// picks it when it can.
export function preferCodec(transceiver, codec, addError) {
  if (!('setCodecPreferences' in RTCRtpTransceiver.prototype)) return;
  // Browsers check the list against the receive capabilities (newer ones also accept send ones).
  const codecs = (RTCRtpReceiver.getCapabilities?.('video') || RTCRtpSender.getCapabilities?.('video'))?.codecs;
  if (!codecs) return;
  const wanted = codecs.filter((c) => c.mimeType.toLowerCase() === codec.toLowerCase());
  if (!wanted.length) return addError(`${codec} is not supported here; using the browser's default codec`);
  try {
    // The others stay in the list so the server can still pick one of them.
    transceiver.setCodecPreferences([...wanted, ...codecs.filter((c) => !wanted.includes(c))]);
  } catch (err) {
    console.warn('switchboard: setCodecPreferences failed:', err);
  }
}

// setLayers turns the sender's encodings on and off as publish-layers asks:
// an encoding with a rid is active when its rid is listed; a single encoding
// without one is active when anything is. It returns what is now active (for
// a single encoding, the list as asked).
export async function setLayers(sender, active) {
  const params = sender.getParameters();
  const encodings = params.encodings || [];
  if (!encodings.length) throw new Error('the sender has no encodings yet');
  for (const e of encodings) e.active = e.rid ? active.includes(e.rid) : active.length > 0;
  await sender.setParameters(params);
  return encodings.some((e) => e.rid) ? encodings.filter((e) => e.active).map((e) => e.rid) : [...active];
}

// msid returns the a=msid stream and track ids of the m-line mid in sdp.
export function msid(sdp, mid) {
  if (!sdp || mid == null) return null;
  for (const section of sdp.split(/\r?\nm=/).slice(1)) {
    if (!section.split(/\r?\n/).includes(`a=mid:${mid}`)) continue;
    const m = /^a=msid:(\S+) (\S+?)\r?$/m.exec(section);
    return m && m[1] !== '-' ? { stream: m[1], track: m[2] } : null;
  }
  return null;
}

// ---- tile sizes (track-settings) ----

const MIN_INTERVAL = 500; // ms between two reports of one track
const THRESHOLD = 0.1; // a change smaller than this fraction is not reported

// SizeReporter tells the server the size in device pixels at which each
// received video is shown: send(trackId, width, height), with 0x0 while the
// page is hidden or the video scrolled out of view. It reports a video once
// it is laid out, then every change of more than 10%, at most every 500 ms
// per track; a change inside the 500 ms goes out when they are over.
export class SizeReporter {
  constructor(send) {
    this.send = send;
    this.watched = new Map(); // element -> {el, trackId: () => id, size, visible}
    this.sent = new Map(); // track id -> {width, height, at, timer}
    this.resize = new ResizeObserver((entries) => {
      for (const e of entries) {
        const w = this.watched.get(e.target);
        if (!w) continue;
        const box = e.devicePixelContentBoxSize?.[0];
        w.size = box
          ? { width: Math.round(box.inlineSize), height: Math.round(box.blockSize) }
          : { width: Math.round(e.contentRect.width * devicePixelRatio), height: Math.round(e.contentRect.height * devicePixelRatio) };
        this.evaluate(w);
      }
    });
    this.intersect = new IntersectionObserver((entries) => {
      for (const e of entries) {
        const w = this.watched.get(e.target);
        if (!w) continue;
        w.visible = e.isIntersecting;
        this.evaluate(w);
      }
    });
    this.onVisibility = () => this.checkAll();
    document.addEventListener('visibilitychange', this.onVisibility);
  }

  // watch reports the size of el for the track trackId() returns, which may
  // change over time (then call check) or be null (nothing is reported).
  watch(el, trackId) {
    if (this.watched.has(el)) return;
    this.watched.set(el, { el, trackId, size: null, visible: true });
    try {
      // Exact device pixels, and a callback when only the zoom changes.
      this.resize.observe(el, { box: 'device-pixel-content-box' });
    } catch {
      this.resize.observe(el);
    }
    this.intersect.observe(el);
  }

  unwatch(el) {
    this.watched.delete(el);
    this.resize.unobserve(el);
    this.intersect.unobserve(el);
  }

  // forget drops what was sent for a track that is gone.
  forget(id) {
    clearTimeout(this.sent.get(id)?.timer);
    this.sent.delete(id);
  }

  // reset forgets every track, for a new session.
  reset() {
    for (const id of [...this.sent.keys()]) this.forget(id);
  }

  // check reports el again, e.g. because it shows another track now.
  check(el) {
    const w = this.watched.get(el);
    if (w) this.evaluate(w);
  }

  checkAll() {
    for (const w of this.watched.values()) this.evaluate(w);
  }

  evaluate(w) {
    const id = w.trackId();
    if (!id || !w.size) return; // not laid out yet
    const shown = w.visible && document.visibilityState !== 'hidden';
    const width = shown ? w.size.width : 0;
    const height = shown ? w.size.height : 0;
    const last = this.sent.get(id);
    if (last && !changed(last, width, height)) {
      clearTimeout(last.timer); // a pending report is no longer needed
      last.timer = null;
      return;
    }
    const wait = last ? last.at + MIN_INTERVAL - performance.now() : 0;
    if (wait > 0) {
      last.timer ??= setTimeout(() => {
        last.timer = null;
        if (this.watched.get(w.el) === w) this.evaluate(w);
      }, wait);
      return;
    }
    clearTimeout(last?.timer);
    this.sent.set(id, { width, height, at: performance.now(), timer: null });
    this.send(id, width, height);
  }
}

function changed(last, width, height) {
  if (!last.width !== !width) return true; // shown <-> hidden
  return Math.abs(width - last.width) > THRESHOLD * last.width || Math.abs(height - last.height) > THRESHOLD * last.height;
}
