// pushlab page: subscribes four panes to the same comment feed, each with the browser's own
// API, and shows what each one receives and costs. Comments are written with textContent
// only: a comment is data, never markup.
'use strict';

const TECHNIQUES = ['short-polling', 'long-polling', 'websocket', 'sse'];
// Rows kept per pane: enough for a session, bounded so a long demo cannot slow the page.
const MAX_ROWS = 200;
const LONG_POLL_TIMEOUT_MS = 25000;
// Wait before a retry that the page (not the browser) schedules: the first step of a
// back-off that doubles while attempts keep failing, up to RETRY_MAX_MS.
const RETRY_MS = 1000;
const RETRY_MAX_MS = 30000;
const STATS_EVERY_MS = 1000;

const utf8 = new TextEncoder();
const byteLength = (text) => utf8.encode(text).length;
// Microseconds since the epoch on this machine's clock, sub-millisecond where the browser
// allows; the server stamps published_at_us with the same clock.
const nowUs = () => (performance.timeOrigin + performance.now()) * 1000;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const formatInt = (n) => Math.round(n).toLocaleString('en-US');
// Short enough for a counter cell: "11.7 ms", "1.78 s".
const formatDelay = (ms) => (ms < 1000 ? `${ms.toFixed(1)} ms` : `${(ms / 1000).toFixed(2)} s`);

// Waits between failed attempts: the step doubles from RETRY_MS up to RETRY_MAX_MS, half of
// it fixed and half at random, so pages do not all retry a restarted server at once.
function backoff() {
  let failures = 0;
  return {
    next() {
      const step = Math.min(RETRY_MAX_MS, RETRY_MS * 2 ** failures);
      failures += 1;
      return step / 2 + (Math.random() * step) / 2;
    },
    reset() { failures = 0; },
  };
}

// A 410 answer names why the cursor is gone and the oldest id kept: the pane notes the loss
// with its cause and returns the cursor to resume after. A restarted server's feed is a new
// incarnation whose ids start above the old ones, so an old cursor is never taken for its own.
function resumeFromGone(pane, body) {
  if (typeof body.oldest !== 'number') return null;
  const cause = body.cause === 'restart'
    ? 'the server restarted: what it held after this pane\'s last comment is lost to the restart'
    : 'comments after this pane\'s last one left the history and are lost';
  pane.notice(`${cause}; resuming from id ${body.oldest}, the oldest kept`);
  return body.oldest - 1;
}

// WebSocket and EventSource hide the status of a refused handshake, so the page asks /poll
// with the same cursor, which gets the same verdict: the cursor to resume after, or null.
async function probeCursor(pane, sub, after) {
  if (after === null || after === undefined) return null;
  try {
    const response = await fetch(query('/poll', { user: sub.user, after }), {
      signal: sub.abort.signal, cache: 'no-store',
    });
    if (response.status !== 410) return null;
    return resumeFromGone(pane, await response.json());
  } catch {
    return null;
  }
}

function query(path, params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== '') search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `${path}?${text}` : path;
}

// What each pane's counters mean, per technique: the page says what it counts.
const REQUESTS_TIP = {
  'short-polling': 'fetch() calls to /poll',
  'long-polling': 'fetch() calls to /long-poll (the first, with a 1 ms timeout, learns the cursor)',
  websocket: 'upgrade requests: one per connection',
  sse: 'GET requests that opened the stream, plus attempts that failed',
};
const RECONNECTS_TIP = {
  'short-polling': 'requests that succeeded after a failed one',
  'long-polling': 'requests that succeeded after a failed one',
  websocket: 'connections re-opened by this page after one was lost',
  sse: 'streams re-opened after one was lost (by EventSource itself)',
};
const PAYLOAD = {
  'short-polling': ['payload: response bodies', 'Resource Timing encodedBodySize of each completed /poll response: bodies as received, no headers'],
  'long-polling': ['payload: response bodies', 'Resource Timing encodedBodySize of each completed /long-poll response: bodies as received, no headers'],
  websocket: ['payload: message text', 'UTF-8 size of the text of each message; the browser does not expose frame or handshake bytes'],
  sse: ['payload: event data', 'UTF-8 size of the data field of each event; the browser does not expose field names, ids, heartbeats or HTTP framing'],
};
const PUSHED = new Set(['websocket', 'sse']);
// Delays kept for the median: recent enough to follow a change of interval.
const DELAYS_KEPT = 1000;

function counterCell(name, label, tip, className = '') {
  const cell = document.createElement('div');
  cell.className = className;
  cell.title = tip;
  const dt = document.createElement('dt');
  dt.textContent = label;
  cell.append(dt);
  for (const part of [].concat(name)) {
    const dd = document.createElement('dd');
    dd.dataset.counter = part;
    cell.append(dd);
  }
  return cell;
}

// One technique's pane: counters, status and the list of received comments.
class Pane {
  constructor(root) {
    this.root = root;
    this.technique = root.dataset.technique;
    this.list = root.querySelector('ol.comments');
    this.statusText = root.querySelector('.status');
    const t = this.technique;
    const [payloadLabel, payloadTip] = PAYLOAD[t];
    root.querySelector('dl.counters').replaceChildren(
      counterCell('requests', 'requests', REQUESTS_TIP[t]),
      counterCell('comments', 'comments', 'comments received, each counted once'),
      counterCell('empty', 'empty answers', PUSHED.has(t)
        ? 'a push technique sends only when there is a comment'
        : 'responses with no comment: the "meaningless" answers of polling'),
      counterCell('reconnects', 'reconnects', RECONNECTS_TIP[t]),
      counterCell('duplicates', 'duplicates', 'comments received more than once (shown in red)'),
      counterCell('median-delay', 'median delay', 'median of the delays listed below'),
      counterCell('bytes', payloadLabel, `${payloadTip}. Not a wire count.`, 'wide'),
      counterCell(['server-bytes-out', 'server-bytes-in'], 'wire out / in (server)',
        "counted at the server's socket: every byte of every connection of this technique since this page subscribed, headers and framing included", 'wide wire'),
    );
    this.outputs = {};
    for (const dd of root.querySelectorAll('[data-counter]')) this.outputs[dd.dataset.counter] = dd;
    this.reset();
  }

  reset() {
    this.counters = {
      requests: 0, comments: 0, empty: PUSHED.has(this.technique) ? null : 0, reconnects: 0,
      duplicates: 0, 'median-delay': null, bytes: 0, 'server-bytes-out': 0, 'server-bytes-in': 0,
    };
    this.delays = [];
    this.seen = new Set();
    this.list.replaceChildren();
    this.setStatus('connecting');
    this.render();
  }

  count(name, by = 1) {
    this.counters[name] += by;
    this.render();
  }

  set(name, value) {
    this.counters[name] = value;
    this.render();
  }

  setStatus(status, detail = '') {
    this.root.dataset.status = status;
    this.statusText.textContent = detail ? `${status}: ${detail}` : status;
  }

  // Shows one received comment with its delay; a repeat is shown and counted, not hidden,
  // so a technique that delivers twice is seen doing it.
  deliver(comment, receivedUs) {
    const duplicate = this.seen.has(comment.id);
    this.seen.add(comment.id);
    this.count(duplicate ? 'duplicates' : 'comments');

    const row = document.createElement('li');
    row.className = duplicate ? 'comment duplicate' : 'comment';
    row.dataset.id = String(comment.id);

    const meta = document.createElement('span');
    meta.className = 'meta';
    const id = document.createElement('span');
    id.className = 'id';
    id.textContent = `#${comment.id}`;
    const who = document.createElement('span');
    who.className = 'who';
    who.textContent = comment.to ? `${comment.from} \u2192 ${comment.to}` : `${comment.from} \u2192 everyone`;
    const delay = document.createElement('span');
    delay.className = 'delay';
    const delayMs = (receivedUs - comment.published_at_us) / 1000;
    delay.textContent = `${delayMs.toFixed(1)} ms`;
    delay.title = 'arrival on this page minus published_at_us';
    row.dataset.delayMs = delayMs.toFixed(3);
    if (!duplicate) {
      this.delays.push(delayMs);
      if (this.delays.length > DELAYS_KEPT) this.delays.shift();
      const sorted = [...this.delays].sort((a, b) => a - b);
      const mid = sorted.length >> 1;
      this.set('median-delay', sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2);
    }
    meta.append(id, who, delay);

    const text = document.createElement('span');
    text.className = 'text';
    text.textContent = comment.text;
    row.append(meta, text);

    this.list.prepend(row);
    while (this.list.childElementCount > MAX_ROWS) this.list.lastElementChild.remove();
  }

  // A line in the list that is not a comment: a loss and its cause, never silent.
  notice(text) {
    const row = document.createElement('li');
    row.className = 'notice';
    row.textContent = text;
    this.list.prepend(row);
  }

  // Rendered at every change, so the counters never lag the list they count.
  render() {
    for (const [name, dd] of Object.entries(this.outputs)) {
      const value = this.counters[name];
      dd.dataset.value = value === null ? '' : String(value);
      if (value === null) dd.textContent = '\u2014';
      else if (name === 'median-delay') dd.textContent = formatDelay(value);
      else if (name.includes('bytes')) dd.textContent = `${formatInt(value)} B`;
      else dd.textContent = formatInt(value);
    }
  }
}

const panes = Object.fromEntries(
  [...document.querySelectorAll('section.pane')].map((root) => [root.dataset.technique, new Pane(root)]),
);

// One subscription of all four panes as one user; stopping it aborts every request and
// closes every socket, so a resubscription starts clean.
class Subscription {
  constructor(user) {
    this.user = user;
    this.stopped = false;
    this.abort = new AbortController();
    this.closers = [];
    this.since = performance.now();
  }

  stop() {
    this.stopped = true;
    this.abort.abort();
    for (const close of this.closers) close();
  }
}

// Short polling: ask at once, whatever there is, every `interval` ms (start to start, as
// setInterval would, but never two at a time). The first request has no cursor: the server
// answers "nothing" with the newest id, and the page starts from there.
async function shortPolling(pane, sub) {
  const intervalInput = document.getElementById('interval');
  let after = null;
  let failing = false;
  const retry = backoff();
  while (!sub.stopped) {
    const started = performance.now();
    let wait = 0;
    pane.count('requests');
    try {
      const response = await fetch(query('/poll', { user: sub.user, after }), {
        signal: sub.abort.signal, cache: 'no-store',
      });
      const body = await response.json();
      const resumeAfter = response.status === 410 ? resumeFromGone(pane, body) : null;
      if (resumeAfter !== null) {
        after = resumeAfter;
        continue;
      }
      if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
      retry.reset();
      const receivedUs = nowUs();
      if (failing) pane.count('reconnects');
      failing = false;
      pane.setStatus('live');
      if (body.comments.length === 0) pane.count('empty');
      for (const comment of body.comments) pane.deliver(comment, receivedUs);
      after = body.next;
    } catch (error) {
      if (sub.stopped) return;
      failing = true;
      pane.setStatus('retrying', error.message);
      wait = retry.next();
    }
    const interval = Math.max(100, Number(intervalInput.value) || 2000);
    await sleep(Math.max(wait, interval - (performance.now() - started)));
  }
}

// Long polling: the server holds each request until a comment or the timeout; ask again at
// once. The first request has no cursor and a 1 ms timeout, so the page learns where "now"
// is before it reports being live (and a comment posted after that is never missed).
async function longPolling(pane, sub) {
  let after = null;
  let failing = false;
  const retry = backoff();
  while (!sub.stopped) {
    pane.count('requests');
    try {
      const timeout = after === null ? 1 : LONG_POLL_TIMEOUT_MS;
      const url = query('/long-poll', { user: sub.user, after, timeout_ms: timeout });
      const response = await fetch(url, { signal: sub.abort.signal, cache: 'no-store' });
      const body = await response.json();
      const resumeAfter = response.status === 410 ? resumeFromGone(pane, body) : null;
      if (resumeAfter !== null) {
        after = resumeAfter;
        continue;
      }
      if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
      retry.reset();
      const receivedUs = nowUs();
      if (failing) pane.count('reconnects');
      failing = false;
      pane.setStatus('live');
      if (body.comments.length === 0) pane.count('empty');
      for (const comment of body.comments) pane.deliver(comment, receivedUs);
      after = body.next;
    } catch (error) {
      if (sub.stopped) return;
      failing = true;
      pane.setStatus('retrying', error.message);
      await sleep(retry.next());
    }
  }
}

// WebSocket: one frame per comment. The browser does not reconnect a WebSocket by itself, so
// the page does, resuming after the last id it saw.
function websocket(pane, sub) {
  let after = null;
  let opened = false;
  let socket = null;
  const retry = backoff();
  const connect = () => {
    if (sub.stopped) return;
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    socket = new WebSocket(`${scheme}//${location.host}${query('/ws', { user: sub.user, after })}`);
    pane.count('requests');
    let thisOpened = false;
    socket.onopen = () => {
      if (opened) pane.count('reconnects');
      opened = true;
      thisOpened = true;
      retry.reset();
      pane.setStatus('live');
    };
    socket.onmessage = (event) => {
      const receivedUs = nowUs();
      pane.count('bytes', byteLength(event.data));
      const message = JSON.parse(event.data);
      if (typeof message.id !== 'number') return;
      after = message.id;
      pane.deliver(message, receivedUs);
    };
    socket.onclose = async (event) => {
      if (sub.stopped) return;
      pane.setStatus('reconnecting', `closed (${event.code})`);
      // A refused handshake may be a 410 for a cursor from before a restart.
      const resumeAfter = thisOpened ? null : await probeCursor(pane, sub, after);
      if (resumeAfter !== null) {
        after = resumeAfter;
        connect();
      } else {
        setTimeout(connect, retry.next());
      }
    };
  };
  sub.closers.push(() => socket && socket.close(1000, 'resubscribing'));
  connect();
}

// Server-Sent Events: EventSource reconnects by itself after the server's `retry:` delay and
// sends Last-Event-ID, the id of the last comment it saw, so the server resumes after it.
function sse(pane, sub) {
  let source = null;
  let open = false;
  let opened = false;
  let cursor = null; // the server's cursor from the `connect` event
  let lastId = null;
  const retry = backoff();
  const connect = (after) => {
    if (sub.stopped) return;
    source = new EventSource(query('/sse', { user: sub.user, after }));
    source.onopen = () => {
      pane.count('requests');
      if (opened) pane.count('reconnects');
      open = true;
      opened = true;
      retry.reset();
    };
    source.addEventListener('connect', (event) => {
      pane.count('bytes', byteLength(event.data));
      cursor = JSON.parse(event.data).after;
      pane.setStatus('live');
    });
    source.addEventListener('comment', (event) => {
      const receivedUs = nowUs();
      pane.count('bytes', byteLength(event.data));
      lastId = event.lastEventId;
      pane.deliver(JSON.parse(event.data), receivedUs);
    });
    source.addEventListener('dropped', (event) => {
      pane.count('bytes', byteLength(event.data));
      pane.setStatus('reconnecting', 'dropped for being too slow');
    });
    source.onerror = async () => {
      if (sub.stopped) return;
      if (!open) pane.count('requests'); // an attempt that never opened
      open = false;
      if (source.readyState === EventSource.CLOSED) {
        // EventSource gives up for good on an HTTP error status: a 410 (a cursor from before
        // a restart) resumes from the oldest id kept at once; anything else backs off.
        pane.setStatus('reconnecting', 'stream refused');
        const resumeAfter = await probeCursor(pane, sub, lastId ?? cursor);
        if (resumeAfter !== null) {
          lastId = null;
          cursor = resumeAfter;
          connect(resumeAfter);
        } else {
          setTimeout(() => connect(lastId ?? cursor), retry.next());
        }
      } else if (lastId === null && cursor !== null) {
        // No comment yet, so no id for Last-Event-ID: the browser's own retry would start
        // "from now on" and lose what is published meanwhile. Reopen from the cursor.
        source.close();
        pane.setStatus('reconnecting');
        setTimeout(() => connect(cursor), retry.next());
      } else {
        pane.setStatus('reconnecting', 'by EventSource');
      }
    };
  };
  sub.closers.push(() => source && source.close());
  connect(null);
}

// Payload received by the two fetch panes, from Resource Timing: one entry per completed
// response. encodedBodySize is the body as it came (before any content decoding). The
// entry's transferSize is not used: the Resource Timing spec has it add a fixed 300 bytes
// per response in place of the real header size (Chromium does), so it is neither the wire
// count nor the payload.
let subscription = null;
const FETCH_PANES = { '/poll': 'short-polling', '/long-poll': 'long-polling' };
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    const technique = FETCH_PANES[new URL(entry.name).pathname];
    if (!technique || !subscription || entry.startTime < subscription.since) continue;
    panes[technique].count('bytes', entry.encodedBodySize);
  }
  // The page reads entries here only; an unbounded buffer would grow with every poll.
  performance.clearResourceTimings();
}).observe({ type: 'resource' });

// The server's own socket counts, per technique, as differences from a baseline taken when
// the panes subscribed.
let statsBaseline = null;
async function readStats() {
  const response = await fetch('/stats', { cache: 'no-store' });
  if (!response.ok) throw new Error(`/stats: HTTP ${response.status}`);
  return (await response.json()).accounts;
}

async function refreshStats() {
  const error = document.getElementById('stats-error');
  try {
    const accounts = await readStats();
    if (statsBaseline) {
      for (const technique of TECHNIQUES) {
        const now = accounts[technique];
        const base = statsBaseline[technique];
        panes[technique].set('server-bytes-out', now.bytes_out - base.bytes_out);
        panes[technique].set('server-bytes-in', now.bytes_in - base.bytes_in);
      }
    }
    error.textContent = '';
  } catch (e) {
    error.textContent = `(server stats unavailable: ${e.message})`;
  }
  setTimeout(refreshStats, STATS_EVERY_MS);
}

async function subscribe(user) {
  if (subscription) subscription.stop();
  const sub = new Subscription(user);
  subscription = sub;
  for (const pane of Object.values(panes)) pane.reset();
  document.getElementById('subscribed-as').textContent = user
    ? `subscribed as ${user}: comments to ${user} and to everyone`
    : 'subscribed anonymously: comments to everyone only';
  try {
    statsBaseline = await readStats();
  } catch {
    statsBaseline = null;
  }
  if (sub.stopped) return;
  shortPolling(panes['short-polling'], sub);
  longPolling(panes['long-polling'], sub);
  websocket(panes.websocket, sub);
  sse(panes.sse, sub);
}

document.getElementById('subscribe').addEventListener('submit', (event) => {
  event.preventDefault();
  subscribe(document.getElementById('user').value.trim());
});

document.getElementById('post').addEventListener('submit', async (event) => {
  event.preventDefault();
  const result = document.getElementById('post-result');
  const textInput = document.getElementById('post-text');
  const to = document.getElementById('post-to').value.trim();
  const body = { from: document.getElementById('post-from').value.trim(), text: textInput.value };
  if (to) body.to = to;
  result.className = '';
  result.textContent = 'posting\u2026';
  try {
    const response = await fetch('/comments', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const answer = await response.json();
    if (!response.ok) throw new Error(answer.error || `HTTP ${response.status}`);
    result.textContent = `posted #${answer.id}`;
    result.dataset.id = String(answer.id);
    textInput.value = '';
    textInput.focus();
  } catch (error) {
    result.className = 'error';
    result.textContent = error.message;
  }
});

const initialUser = new URLSearchParams(location.search).get('user');
if (initialUser !== null) document.getElementById('user').value = initialUser;
subscribe(document.getElementById('user').value.trim());
refreshStats();
