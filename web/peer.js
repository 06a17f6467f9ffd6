// One PeerConnection of the Switchboard client and its signaling: the steps
// that must not interleave (an offer and its answer, a renegotiation and
// publish-layers) run one at a time, ICE candidates wait for the
// description they belong to, and a path that died is restarted.

const RESTART_AFTER = 2000; // ms 'disconnected' before an ICE restart (it may recover by itself)
const RESTART_AGAIN = 5000; // ms after a restart that left it not connected
const ANSWER_TIMEOUT = 15_000; // ms an offer waits for the server's answer while signaling works

// Peer wraps the PeerConnection that target ('publisher' or 'subscriber')
// names. hooks: send(msg) → false when the socket is down; error(msg);
// state() on each connection state change; restart() restarts ICE and
// ready() says whether it can now (the signaling connection is healthy).
export class Peer {
  constructor(target, config, hooks) {
    this.target = target;
    this.hooks = hooks;
    this.pc = new RTCPeerConnection(config);
    this.closed = false;
    // chain serializes the work on this pc; remoteQueue holds candidates
    // that arrived before the remote description; localQueue holds ours
    // until the server has our offer/answer, which they must not overtake,
    // or while the socket is down.
    this.chain = Promise.resolve();
    this.remoteQueue = [];
    this.localQueue = [];
    this.signaled = false;
    this.answered = null; // resolves the answer that negotiate waits for
    this.offer = null; // the offer awaiting it, to send again after a resume
    this.pc.onicecandidate = (e) => {
      if (!e.candidate || !e.candidate.candidate) return; // end of candidates: the server needs nothing
      const candidate = e.candidate.toJSON();
      if (!this.signaled || !this.sendCandidate(candidate)) this.localQueue.push(candidate);
    };
    const event = 'onconnectionstatechange' in this.pc ? 'connectionstatechange' : 'iceconnectionstatechange';
    this.pc.addEventListener(event, () => hooks.state());
    this.timer = null;
    this.eagerUntil = 0; // performance.now() until which 'disconnected' restarts at once
    this.pc.addEventListener('iceconnectionstatechange', () => this.watch());
  }

  // run queues fn on the chain; its errors are reported unless the pc closed.
  run(fn) {
    this.chain = this.chain.then(fn).catch((err) => {
      if (!this.closed) this.hooks.error(`${this.target}: ${err.name}: ${err.message}`);
    });
  }

  // markSignaled: the server has our description (or the socket is back):
  // the candidates we held go out.
  markSignaled() {
    this.signaled = true;
    const queued = this.localQueue.splice(0);
    for (let i = 0; i < queued.length; i++) {
      if (!this.sendCandidate(queued[i])) return this.localQueue.push(...queued.slice(i));
    }
  }

  sendCandidate(candidate) {
    return this.hooks.send({ type: 'candidate', target: this.target, candidate });
  }

  async setRemote(desc) {
    await this.pc.setRemoteDescription(desc);
    for (const c of this.remoteQueue.splice(0)) await this.addCandidate(c);
  }

  addRemoteCandidate(candidate) {
    this.run(async () => {
      if (this.pc.remoteDescription) await this.addCandidate(candidate);
      else this.remoteQueue.push(candidate);
    });
  }

  async addCandidate(candidate) {
    // One unusable candidate (e.g. an address family we lack) must not stop the chain.
    try {
      await this.pc.addIceCandidate(candidate);
    } catch (err) {
      console.warn(`switchboard: ${this.target} candidate rejected:`, err);
    }
  }

  // negotiate sends an offer and applies its answer as one step of the
  // chain, so that nothing else (another offer, publish-layers) runs between
  // the two. fields() adds to the offer message once the mids exist.
  // iceRestart: with new ICE credentials, one at a time.
  negotiate(fields, iceRestart = false) {
    if (iceRestart && this.restarting) return;
    this.restarting ||= iceRestart;
    this.run(async () => {
      // New credentials bring new candidates, which must not reach the
      // server before the offer they belong to.
      if (iceRestart) this.signaled = false;
      try {
        await this.pc.setLocalDescription(await this.pc.createOffer({ iceRestart }));
      } finally {
        if (iceRestart) this.restarting = false;
      }
      const answer = new Promise((resolve, reject) => {
        // The clock stops while the server cannot answer: we are away.
        const expire = () => {
          if (this.closed) return;
          if (!this.hooks.ready()) this.answerTimer = setTimeout(expire, ANSWER_TIMEOUT);
          else reject(new Error(`no answer to the offer within ${ANSWER_TIMEOUT / 1000} s`));
        };
        this.answerTimer = setTimeout(expire, ANSWER_TIMEOUT);
        this.answered = (sdp) => {
          clearTimeout(this.answerTimer);
          this.offer = null;
          resolve(sdp);
        };
      });
      this.offer = { type: 'offer', target: this.target, sdp: this.pc.localDescription.sdp, ...fields() };
      this.hooks.send(this.offer);
      this.markSignaled();
      try {
        await this.setRemote({ type: 'answer', sdp: await answer });
      } finally {
        this.answered = this.offer = null;
      }
    });
  }

  onAnswer(sdp) {
    if (this.answered) return this.answered(sdp);
    this.run(() => {
      // Unasked for: the pc decides what it means; in "stable" it is a
      // second answer to an offer that a resume sent again.
      if (this.pc.signalingState === 'have-local-offer') return this.setRemote({ type: 'answer', sdp });
      console.warn(`switchboard: a ${this.target} answer to no offer; ignored`);
    });
  }

  // watch restarts ICE when it is 'failed', or 'disconnected' for over 2 s,
  // and again every 5 s while it is not connected.
  watch() {
    const state = this.pc.iceConnectionState;
    if (state === 'connected' || state === 'completed' || state === 'closed') return this.unwatch();
    if (state === 'failed' || (state === 'disconnected' && performance.now() < this.eagerUntil)) {
      this.unwatch();
      this.restartIce();
    } else if (state === 'disconnected' && !this.timer) {
      this.timer = setTimeout(() => this.restartIce(), RESTART_AFTER);
    }
  }

  unwatch() {
    clearTimeout(this.timer);
    this.timer = null;
  }

  restartIce() {
    this.timer = null;
    if (!['disconnected', 'failed', 'checking'].includes(this.pc.iceConnectionState) || this.closed) return;
    // Without signaling the restart would be lost: try again in a second.
    const ready = this.hooks.ready();
    if (ready) {
      console.info(`switchboard: ${this.target} ICE ${this.pc.iceConnectionState}; restarting it`);
      this.hooks.restart();
    }
    this.timer = setTimeout(() => this.restartIce(), ready ? RESTART_AGAIN : 1000);
  }

  // afterOutage is called when the signaling connection came back: ICE is
  // restarted at once if its state is one of states, or if it turns
  // 'disconnected' within 10 s (the browser may notice the same break only
  // now; it will not pass by itself).
  afterOutage(states) {
    this.eagerUntil = performance.now() + 10_000;
    if (!states.includes(this.pc.iceConnectionState)) return;
    this.unwatch();
    this.restartIce();
  }

  close() {
    this.closed = true;
    this.unwatch();
    clearTimeout(this.answerTimer);
    this.pc.close();
  }
}
