// Where the tiles go. The grid view gives every tile the largest 16:9 box
// that lets all of them fit the window (pages of 16 beyond that); the
// speaker view, a pinned tile or a screen share puts one tile on a large
// stage and the others in a strip beside it (below it on a tall window).
// Tiles are positioned explicitly, so the size each video reports to the
// server (track-settings) is what the window allows; tiles off the page are
// hidden, which reports them as 0 so they are not received.
import { $, emit, on, screens, tiles } from './state.js';
import { local, localScreen, refresh } from './tiles.js';

const ASPECT = 16 / 9;
const GAP = 8; // px between tiles
const PAGE_SIZE = 16;

export const view = {
  mode: 'grid', // 'grid' | 'speaker'
  pinned: null, // the tile kept on the stage
  speaker: '', // participant id of the last active speaker
  page: 0,
  pages: 1,
};

// fit returns the columns, rows and tile size that give n tiles the most
// area in a W x H box. A narrow box (a phone) may use taller tiles, down to
// 3:4, since one or two columns of wide tiles would leave most of it empty.
export function fit(n, W, H, narrow = false) {
  let best = { cols: 1, rows: 1, w: 0, h: 0 };
  for (let cols = 1; cols <= Math.max(1, n); cols++) {
    const rows = Math.ceil(n / cols);
    const cellW = (W - (cols - 1) * GAP) / cols;
    const cellH = (H - (rows - 1) * GAP) / rows;
    if (cellW <= 0 || cellH <= 0) continue;
    const aspect = narrow ? Math.min(ASPECT, Math.max(3 / 4, cellW / cellH)) : ASPECT;
    const w = Math.min(cellW, cellH * aspect);
    const h = w / aspect;
    if (w * h > best.w * best.h + 1) best = { cols, rows, w, h };
  }
  best.w = Math.floor(best.w);
  best.h = Math.floor(best.h);
  return best;
}

// arrange places tiles in the box (x, y, W, H), centred, row by row.
function arrange(list, x, y, W, H, narrow) {
  if (!list.length) return;
  const { cols, rows, w, h } = fit(list.length, W, H, narrow);
  const top = y + (H - (rows * h + (rows - 1) * GAP)) / 2;
  list.forEach((tile, i) => {
    const row = Math.floor(i / cols);
    const inRow = Math.min(cols, list.length - row * cols);
    const left = x + (W - (inRow * w + (inRow - 1) * GAP)) / 2;
    place(tile, left + (i % cols) * (w + GAP), top + row * (h + GAP), w, h);
  });
}

function place(tile, x, y, w, h) {
  const s = tile.el.style;
  s.left = `${Math.round(x)}px`;
  s.top = `${Math.round(y)}px`;
  s.width = `${w}px`;
  s.height = `${h}px`;
  tile.el.classList.toggle('small', w < 240);
  if (tile.el.hidden) {
    tile.el.hidden = false;
    refresh(tile);
  }
}

function hide(tile) {
  if (tile.el.hidden) return;
  tile.el.hidden = true; // display: none: its video reports size 0
  refresh(tile);
}

// ordered lists the tiles that are in the call: screen shares first, then
// our camera, then everyone else's in the order they came.
function ordered() {
  return [...screens.values(), ...(localScreen.active ? [localScreen] : []), local, ...tiles.values()];
}

// stageTile is the tile on the stage, or null for the plain grid: a pinned
// tile, else a screen share, else in speaker view the active speaker.
function stageTile(list) {
  if (view.pinned && !list.includes(view.pinned)) view.pinned = null;
  if (view.pinned) return view.pinned;
  const screen = list.find((t) => t.source === 'screen');
  if (screen) return screen;
  if (view.mode !== 'speaker' || list.length < 2) return null;
  return tiles.get(view.speaker) ?? [...tiles.values()][0] ?? local;
}

export function layout() {
  const grid = $('grid');
  const W = grid.clientWidth - 2 * GAP;
  const H = grid.clientHeight - 2 * GAP;
  if (W <= 0 || H <= 0) return;
  const narrow = W < 600;
  const list = ordered();
  if (!localScreen.active) hide(localScreen);
  const stage = stageTile(list);
  for (const tile of list) {
    const pinned = tile === view.pinned;
    if (tile.el.classList.contains('pinned') !== pinned) {
      tile.el.classList.toggle('pinned', pinned);
      refresh(tile); // the pin button's name
    }
    tile.el.classList.toggle('on-stage', tile === stage);
  }
  let shown = list;
  if (stage) {
    view.pages = 1;
    const others = list.filter((t) => t !== stage);
    if (!others.length) arrange([stage], GAP, GAP, W, H, narrow);
    else if (W >= H) {
      // A strip on the right, a fifth of the width (at least one small tile wide).
      const stripW = Math.max(160, Math.min(360, Math.round(W * 0.2)));
      arrange([stage], GAP, GAP, W - stripW - GAP, H, narrow);
      arrange(others, W - stripW + 2 * GAP, GAP, stripW, H, false);
    } else {
      const stripH = Math.max(90, Math.min(220, Math.round(H * 0.25)));
      arrange([stage], GAP, GAP, W, H - stripH - GAP, narrow);
      arrange(others, GAP, H - stripH + 2 * GAP, W, stripH, false);
    }
  } else {
    view.pages = Math.max(1, Math.ceil(list.length / PAGE_SIZE));
    view.page = Math.min(view.page, view.pages - 1);
    shown = list.slice(view.page * PAGE_SIZE, (view.page + 1) * PAGE_SIZE);
    arrange(shown, GAP, GAP, W, H, narrow);
  }
  for (const tile of list) if (!shown.includes(tile)) hide(tile);
  emit('pages', view);
}

let pending = 0;
// schedule lays the tiles out before the next frame, once however often it is asked.
export function schedule() {
  pending ||= requestAnimationFrame(() => {
    pending = 0;
    layout();
  });
}

export function setMode(mode) {
  view.mode = mode;
  view.pinned = null;
  schedule();
  emit('controls');
}

export function togglePin(tile) {
  view.pinned = view.pinned === tile ? null : tile;
  schedule();
}

export function turnPage(delta) {
  view.page = Math.max(0, Math.min(view.pages - 1, view.page + delta));
  schedule();
}

// setSpeaker: id is speaking now; in speaker view their tile takes the stage.
export function setSpeaker(id) {
  if (view.speaker === id) return;
  view.speaker = id;
  if (view.mode === 'speaker' && !view.pinned) schedule();
}

export function initLayout() {
  new ResizeObserver(schedule).observe($('grid'));
  on('layout', schedule);
  on('pin', (tile) => togglePin(tile));
}
