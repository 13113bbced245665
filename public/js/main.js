// Entry point: the key prompt, then the live board, the event stream and the user drawer.
import { ApiError, getJson, pages, session, setUnauthorizedHandler } from './api.js';
import { Board } from './board.js';
import { Detail } from './detail.js';
import { stateOrder } from './dom.js';
import { openStream } from './sse.js';
import { browserZone, zoneList } from './time.js';

const $ = (id) => document.getElementById(id);
const TZ_KEY = 'ck.tz';
let running = null;

function stop() {
  if (!running) return;
  running.stream?.close();
  running.detail.destroy();
  running.board.destroy();
  delete $('board').dataset.loaded;
  running = null;
}

function showLogin(message) {
  stop();
  session.key = null;
  $('app').hidden = true;
  $('login').hidden = false;
  $('login-error').hidden = !message;
  $('login-error').textContent = message ?? '';
  $('api-key').value = '';
  $('api-key').focus();
}

setUnauthorizedHandler(() => showLogin('The server no longer accepts this key. Enter another one.'));

function loginMessage(err) {
  if (err instanceof ApiError && err.status === 401) return 'That key is unknown, revoked or expired.';
  if (err instanceof ApiError && err.status === 403) return 'That key lacks the "read" scope.';
  return `Could not reach the server: ${err.message}`;
}

$('login-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const key = $('api-key').value.trim();
  const button = ev.target.querySelector('button');
  button.disabled = true;
  try {
    const { states } = await getJson('/states', {}, { key });
    session.key = key;
    $('login-error').hidden = true;
    start(states);
  } catch (err) {
    $('login-error').textContent = loginMessage(err);
    $('login-error').hidden = false;
  } finally {
    button.disabled = false;
  }
});

$('logout').addEventListener('click', () => showLogin());

// Time zone: the browser's unless chosen in this tab.
const tzSelect = $('tz');
tzSelect.append(...zoneList().map((z) => new Option(z.replaceAll('_', ' '), z)));
tzSelect.value = sessionStorage.getItem(TZ_KEY) || browserZone();
tzSelect.addEventListener('change', () => {
  sessionStorage.setItem(TZ_KEY, tzSelect.value);
  running?.detail.load();
});

let filterTimer;
$('filter').addEventListener('input', (ev) => {
  clearTimeout(filterTimer);
  filterTimer = setTimeout(() => running?.board.setFilter(ev.target.value), 150);
});

const CONN_LABEL = { connecting: 'Connecting…', live: 'Live', reconnecting: 'Reconnecting…', failed: 'Disconnected' };
function setConn(status, message) {
  $('conn').dataset.status = status;
  $('conn').querySelector('.label').textContent = message ? `${CONN_LABEL[status]}: ${message}` : CONN_LABEL[status];
}

async function start(stateList) {
  stop();
  $('login').hidden = true;
  $('app').hidden = false;
  $('board-error').hidden = true;
  $('filter').value = '';
  const states = new Map(stateList.map((st) => [st.name, st]));
  const order = stateOrder(stateList);
  const tz = () => tzSelect.value;
  const board = new Board({
    root: $('board'), totals: $('totals'), states, order, tz,
    onSelect: (id) => detail.open(id),
    onChange: (user) => detail.userChanged(user),
  });
  const detail = new Detail({ states, order, tz, board });
  const run = (running = { board, detail, stream: null });
  board.renderTotals();

  let refreshing = false;
  const refreshStates = async () => {
    if (refreshing) return;
    refreshing = true;
    try {
      for (const st of (await getJson('/states')).states) states.set(st.name, st);
      board.recolor();
    } finally {
      refreshing = false;
    }
  };

  // Subscribe first, then load: a change made while the board loads arrives as an event (newest wins).
  let connected;
  const ready = new Promise((resolve) => (connected = resolve));
  run.stream = openStream({
    onEvent: (event) => {
      if (!states.has(event.state)) refreshStates().catch(() => {});
      board.push(event);
    },
    onStatus: (status, message) => {
      setConn(status, message);
      if (status !== 'connecting') connected();
    },
    onUnauthorized: () => showLogin('The server no longer accepts this key. Enter another one.'),
  });
  await Promise.race([ready, new Promise((resolve) => setTimeout(resolve, 5000))]);
  if (running !== run) return;

  const failures = await Promise.allSettled(order.map(async (state) => {
    for await (const page of pages('/status', { state, limit: 1000 })) {
      if (running !== run) return;
      board.addRows(page.users);
    }
  }));
  const failed = failures.find((f) => f.status === 'rejected');
  if (failed && running === run) {
    $('board-error').textContent = `Some users could not be loaded: ${failed.reason.message}`;
    $('board-error').hidden = false;
  }
  if (running === run) $('board').dataset.loaded = 'true';
}

if (session.key) {
  getJson('/states').then(({ states }) => start(states), (err) => showLogin(loginMessage(err)));
} else {
  showLogin();
}
