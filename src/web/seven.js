// pushlab: seven EventSources to /sse from one page (see seven.html). Each stream's box
// shows `pending` until its `connect` event arrives, then `live`, the comments it received
// and the last id. Comments are shown as text only.
'use strict';

const STREAMS = 7;

function protocol() {
  const entry = performance.getEntriesByType('navigation')[0];
  return entry && entry.nextHopProtocol ? entry.nextHopProtocol : 'unknown';
}

function stream(index, parent) {
  const box = document.createElement('section');
  box.className = 'pane';
  box.dataset.technique = 'sse';
  box.dataset.stream = String(index);
  box.dataset.status = 'pending';
  box.dataset.count = '0';
  const header = document.createElement('header');
  const title = document.createElement('h2');
  title.textContent = `stream ${index}`;
  const status = document.createElement('span');
  status.className = 'status';
  status.textContent = 'pending';
  header.append(title, status);
  const detail = document.createElement('p');
  detail.className = 'hint';
  detail.textContent = 'waiting for a connection';
  const close = document.createElement('button');
  close.type = 'button';
  close.className = 'close';
  close.textContent = 'Close this stream';
  box.append(header, detail, close);
  parent.append(box);

  const source = new EventSource('/sse');
  // Closing a stream frees its HTTP/1.1 connection: a waiting stream then gets it.
  close.addEventListener('click', () => {
    source.close();
    box.dataset.status = 'closed';
    status.textContent = 'closed';
    close.disabled = true;
  });
  source.addEventListener('connect', () => {
    box.dataset.status = 'live';
    status.textContent = 'live';
    detail.textContent = 'connected, no comment yet';
  });
  source.addEventListener('comment', (event) => {
    const count = Number(box.dataset.count) + 1;
    box.dataset.count = String(count);
    box.dataset.lastId = event.lastEventId;
    detail.textContent = `${count} comment(s), last id ${event.lastEventId}`;
  });
  source.addEventListener('error', () => {
    if (source.readyState !== EventSource.OPEN && box.dataset.status !== 'closed') {
      box.dataset.status = 'pending';
      status.textContent = 'pending';
    }
  });
}

document.getElementById('protocol').textContent = protocol();
const parent = document.getElementById('streams');
for (let i = 1; i <= STREAMS; i += 1) {
  stream(i, parent);
}
