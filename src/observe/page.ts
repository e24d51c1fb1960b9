// The --ui page: one self-contained HTML document (inline CSS and JS, no CDN: the machine
// showing it may be offline). Each binding is drawn as clients -> host port -> target, fed by
// the /events stream; connections fade in, fade out when closed, and UDP flows show as expired.
// data-* attributes carry the raw numbers so a browser test can read what the page shows.

const STYLE = `
:root { color-scheme: light; --ink:#1d2430; --mute:#6b7686; --tcp:#2f6fdb; --udp:#c2571a;
  --live:#1f9d55; --line:#c9d2de; --card:#ffffff; --bg:#eef2f7; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.4 system-ui, sans-serif; color:var(--ink); background:var(--bg); }
header { display:flex; align-items:baseline; gap:16px; padding:14px 24px; background:#1d2430; color:#fff; }
header h1 { margin:0; font-size:18px; font-weight:600; }
header .sub { color:#aab4c3; }
#status { margin-left:auto; font-size:13px; }
#status::before { content:''; display:inline-block; width:9px; height:9px; border-radius:50%;
  margin-right:6px; background:#d64545; }
#status.live::before { background:var(--live); }
main { padding:16px 24px; display:grid; gap:16px; }
.card { background:var(--card); border-radius:10px; box-shadow:0 1px 3px #0002; padding:12px 16px; }
.card h2 { margin:0 0 4px; font-size:15px; display:flex; gap:12px; align-items:baseline; flex-wrap:wrap; }
.proto { font-size:12px; padding:1px 7px; border-radius:9px; color:#fff; background:var(--tcp); }
.udp .proto { background:var(--udp); }
.nums { color:var(--mute); font-weight:400; font-variant-numeric:tabular-nums; }
.nums b { color:var(--ink); font-weight:600; }
svg { width:100%; display:block; }
svg text { font:12px ui-monospace, monospace; fill:var(--ink); }
svg .small { font-size:11px; fill:var(--mute); }
.box rect { fill:#f6f8fb; stroke:var(--tcp); stroke-width:2; }
.udp .box rect { stroke:var(--udp); }
.box .big { font-size:15px; font-weight:700; }
.conn { transition: opacity 1.2s, transform .4s; }
.conn.enter { opacity:0; }
.conn.leave { opacity:.25; }
.conn rect { fill:#fff; stroke:var(--line); stroke-width:1.5; }
.conn.active rect { stroke:var(--live); }
.conn.leave rect { stroke-dasharray:4 3; }
path.link { fill:none; stroke:var(--line); stroke-width:2; }
.conn.active path.link { stroke:var(--live); stroke-dasharray:6 6; animation:flow .6s linear infinite; }
@keyframes flow { to { stroke-dashoffset:-12; } }
.empty { fill:var(--mute); font-style:italic; }
#error { color:#b42318; padding:0 24px; }
`;

const SCRIPT = `
const W = 960, ROW = 40, TOP = 30, CLIENT_W = 250, HOST_X = 330, HOST_W = 200, TARGET_X = 720, TARGET_W = 220;
const NS = 'http://www.w3.org/2000/svg';
// Rows drawn per binding, oldest first; the rest are counted. A demo page, not a load monitor.
const MAX_ROWS = 40;
const cards = new Map();
let previous = new Map();
const $ = (tag, attrs = {}, parent) => {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (parent) parent.appendChild(el);
  return el;
};
function bytes(n) {
  const u = ['B','kB','MB','GB','TB']; let i = 0;
  while (n >= 999.5 && i < u.length - 1) { n /= 1000; i++; }
  return i === 0 ? Math.round(n) + 'B' : Number(n.toPrecision(3)) + u[i];
}
function age(ms) {
  const s = Math.floor(ms / 1000);
  if (s < 60) return s + 's';
  const m = Math.floor(s / 60);
  return m < 60 ? m + 'm' + (s % 60) + 's' : Math.floor(m / 60) + 'h' + (m % 60) + 'm';
}
function hostPort(h, p) { return (h.includes(':') ? '[' + h + ']' : h) + ':' + p; }
function counters(b) {
  if (b.tcp) return { active: b.tcp.connectionsActive, total: b.tcp.connectionsTotal,
    c2t: b.tcp.bytesClientToTarget, t2c: b.tcp.bytesTargetToClient, drops: b.tcp.connectionsRejected };
  const d = Object.values(b.udp.drops).reduce((a, n) => a + n, 0);
  return { active: b.udp.flowsActive, total: b.udp.flowsTotal,
    c2t: b.udp.bytesClientToTarget, t2c: b.udp.bytesTargetToClient, drops: d };
}
function card(id, snap, b) {
  let c = cards.get(id);
  if (c) return c;
  const el = document.createElement('section');
  el.className = 'card ' + b.protocol;
  el.dataset.binding = b.key;
  el.dataset.pid = snap.pid;
  const h2 = document.createElement('h2');
  const title = document.createElement('span');
  title.textContent = (b.service || snap.name || 'pid ' + snap.pid);
  const proto = document.createElement('span');
  proto.className = 'proto';
  proto.textContent = b.protocol;
  const nums = document.createElement('span');
  nums.className = 'nums';
  h2.append(title, proto, nums);
  const svg = $('svg', { viewBox: '0 0 ' + W + ' 120' });
  el.append(h2, svg);
  document.querySelector('main').appendChild(el);
  const host = $('g', { class: 'box host' }, svg);
  const hostRect = $('rect', { x: HOST_X, y: TOP, width: HOST_W, height: 60, rx: 8 }, host);
  $('text', { x: HOST_X + 12, y: TOP + 24, class: 'big' }, host).textContent = hostPort(b.hostIp, b.hostPort);
  $('text', { x: HOST_X + 12, y: TOP + 44, class: 'small' }, host).textContent = 'host port (portpub)';
  const target = $('g', { class: 'box target' }, svg);
  const targetRect = $('rect', { x: TARGET_X, y: TOP, width: TARGET_W, height: 60, rx: 8 }, target);
  $('text', { x: TARGET_X + 12, y: TOP + 24, class: 'big' }, target).textContent = hostPort(b.targetHost, b.targetPort);
  $('text', { x: TARGET_X + 12, y: TOP + 44, class: 'small' }, target).textContent = 'target';
  $('text', { x: 20, y: TOP - 10, class: 'small' }, svg).textContent = 'clients';
  const empty = $('text', { x: 20, y: TOP + 30, class: 'empty' }, svg);
  empty.textContent = 'no open ' + (b.protocol === 'udp' ? 'flows' : 'connections');
  const more = $('text', { x: 20, y: 0, class: 'small more' }, svg);
  c = { el, svg, nums, hostRect, targetRect, empty, more, extra: 0, conns: new Map(), order: [] };
  cards.set(id, c);
  return c;
}
function connNode(c, id, conn) {
  const g = $('g', { class: 'conn enter' });
  g.dataset.client = conn.client;
  g.dataset.protocol = conn.protocol;
  $('path', { class: 'link in' }, g);
  $('path', { class: 'link out' }, g);
  $('rect', { x: 20, y: 0, width: CLIENT_W, height: ROW - 8, rx: 6 }, g);
  const t1 = $('text', { x: 30, y: 14 }, g);
  const t2 = $('text', { x: 30, y: 27, class: 'small' }, g);
  const t3 = $('text', { x: HOST_X + HOST_W + 8, y: 0, class: 'small' }, g);
  c.svg.appendChild(g);
  requestAnimationFrame(() => requestAnimationFrame(() => g.classList.remove('enter')));
  const n = { g, t1, t2, t3, leaving: false };
  c.conns.set(id, n);
  c.order.push(id);
  return n;
}
function layout(c) {
  const n = c.order.length;
  const height = Math.max(120, TOP + n * ROW + (c.extra > 0 ? 40 : 20));
  c.more.textContent = c.extra > 0 ? '+ ' + c.extra + ' more' : '';
  c.more.setAttribute('y', TOP + n * ROW + 12);
  c.svg.setAttribute('viewBox', '0 0 ' + W + ' ' + height);
  // The host and target boxes span every row: each connection runs straight across its own row.
  const boxH = Math.max(60, n * ROW - 8);
  for (const r of [c.hostRect, c.targetRect]) r.setAttribute('height', boxH);
  c.empty.style.display = n === 0 ? '' : 'none';
  c.order.forEach((id, i) => {
    const k = c.conns.get(id);
    const y = TOP + i * ROW;
    k.g.setAttribute('transform', 'translate(0,' + y + ')');
    const cy = (ROW - 8) / 2;
    k.g.querySelector('.in').setAttribute('d', 'M' + (20 + CLIENT_W) + ' ' + cy + ' L ' + HOST_X + ' ' + cy);
    k.g.querySelector('.out').setAttribute('d', 'M' + (HOST_X + HOST_W) + ' ' + cy + ' L ' + TARGET_X + ' ' + cy);
    k.t3.setAttribute('y', cy - 5);
  });
}
function render(ev) {
  const err = document.getElementById('error');
  err.textContent = ev.error || '';
  const seen = new Set();
  const rates = new Map();
  for (const snap of ev.snapshots) {
    for (const b of snap.bindings) {
      const id = snap.pid + ' ' + b.key;
      seen.add(id);
      const c = card(id, snap, b);
      const k = counters(b);
      const p = previous.get(id);
      const dt = p ? (snap.at - p.at) / 1000 : 0;
      const r = (x, y) => (dt > 0 ? bytes(Math.max(0, (x - y) / dt)) + '/s' : '--');
      c.nums.innerHTML = '';
      const unit = b.protocol === 'udp' ? 'flows' : 'conns';
      for (const [field, label, value] of [
        ['active', unit + ' open', k.active], ['total', 'total', k.total],
        ['c2t', 'to target', k.c2t], ['t2c', 'to client', k.t2c], ['drops', 'drops', k.drops]]) {
        const s = document.createElement('span');
        s.dataset.field = field;
        s.dataset.value = value;
        const v = document.createElement('b');
        v.textContent = field === 'c2t' || field === 't2c' ? bytes(value) : String(value);
        s.append(v, ' ' + label + (field === 'c2t' ? ' (' + r(k.c2t, p ? p.k.c2t : 0) + ')' : '')
          + (field === 't2c' ? ' (' + r(k.t2c, p ? p.k.t2c : 0) + ')' : '') + '  ');
        c.nums.appendChild(s);
      }
      rates.set(id, { at: snap.at, k });
      const live = new Set();
      const mine = (snap.connections || []).filter((x) => x.key === b.key);
      mine.sort((x, y) => x.openedAt - y.openedAt);
      c.extra = Math.max(0, mine.length - MAX_ROWS);
      for (const conn of mine.slice(0, MAX_ROWS)) {
        const cid = conn.client + ' ' + conn.openedAt;
        live.add(cid);
        const n = c.conns.get(cid) || connNode(c, cid, conn);
        n.g.dataset.state = conn.state;
        n.g.dataset.c2t = conn.bytesClientToTarget;
        n.g.dataset.t2c = conn.bytesTargetToClient;
        n.g.classList.toggle('active', snap.at - conn.lastActivityAt < 1500);
        n.t1.textContent = conn.client;
        n.t2.textContent = '\\u2192 ' + bytes(conn.bytesClientToTarget) + '  \\u2190 ' + bytes(conn.bytesTargetToClient)
          + '  ' + age(snap.at - conn.openedAt) + '  ' + conn.state;
        n.t3.textContent = conn.targetLocal ? 'via ' + conn.targetLocal : '';
      }
      for (const [cid, n] of c.conns) {
        if (live.has(cid) || n.leaving) continue;
        n.leaving = true;
        n.g.classList.add('leave');
        n.g.classList.remove('active');
        n.g.dataset.state = n.g.dataset.protocol === 'udp' ? 'expired' : 'closed';
        n.t2.textContent = n.g.dataset.state;
        setTimeout(() => {
          n.g.remove();
          c.conns.delete(cid);
          c.order = c.order.filter((x) => x !== cid);
          layout(c);
        }, 2500);
      }
      layout(c);
    }
  }
  for (const [id, c] of cards) {
    if (!seen.has(id)) { c.el.remove(); cards.delete(id); }
  }
  previous = rates;
  document.getElementById('updated').textContent = new Date(ev.at).toLocaleTimeString();
}
const status = document.getElementById('status');
const es = new EventSource('events');
es.onopen = () => { status.className = 'live'; status.textContent = 'live'; };
es.onerror = () => { status.className = ''; status.textContent = 'reconnecting'; };
es.onmessage = (m) => render(JSON.parse(m.data));
`;

/** PAGE is the whole document served at `/`. */
export const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>portpub: see it flow</title>
<style>${STYLE}</style>
</head>
<body>
<header><h1>portpub</h1><span class="sub">clients &rarr; host port &rarr; target, live</span>
<span class="sub">updated <span id="updated">-</span></span><span id="status">connecting</span></header>
<div id="error"></div>
<main></main>
<script>${SCRIPT}</script>
</body>
</html>
`;
