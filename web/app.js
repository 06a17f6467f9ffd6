// Switchboard browser client: the page's entry point. The modules, by concern:
// state.js (what they share, window.switchboard), call.js (the session and
// the server's messages), publish.js (what we send), tiles.js (what each
// tile shows), layout.js (where the tiles go), stats.js (speaking, quality,
// the Stats panel), chat.js (the Chat panel, over a data channel), controls.js (buttons, panels, keys, status), prejoin.js
// (the pre-join screen and devices); connection.js and peer.js keep the
// signaling and media connections alive. The protocol is docs/protocol.md.
import { current, params } from './state.js';
import { join } from './call.js';
import { initLayout } from './layout.js';
import { initControls } from './controls.js';
import { initChat } from './chat.js';
import { enterCall, initPrejoin, showPrejoin } from './prejoin.js';

initLayout();
initControls();
initChat();
initPrejoin();
// A closed tab leaves at once, instead of being waited for as reconnecting.
addEventListener('pagehide', () => current.session?.conn.leave());
// A page restored from the back-forward cache has lost its call: start anew.
addEventListener('pageshow', (e) => e.persisted && location.reload());

// ?room=R&name=N joins at once; ?room=R alone, or with &prejoin=1, shows the
// pre-join screen first.
const room = params.get('room');
const name = params.get('name');
if (room && name && params.get('prejoin') !== '1') {
  enterCall();
  join(room, name);
} else showPrejoin();
