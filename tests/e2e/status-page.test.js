'use strict';
// The status page (SPEC 4.4) in headless Chromium: Debian's chromium package
// driven by playwright-core. The page must list the registered pods with
// their state and the totals, and its Drain button must drain a pod (asking
// for the bearer token when --token-file is set). A full-page screenshot is
// saved as test-output/e2e/status-page.png.
//
// Without /usr/bin/chromium the tests fail under CI (CI set) and are skipped
// otherwise (apt-get install -y chromium).

const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Cluster, OUT_DIR, waitFor } = require('./lib/cluster');

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const haveChromium = fs.existsSync(CHROMIUM);
const inCI = Boolean(process.env.CI);
const skip = !haveChromium && !inCI
  ? `${CHROMIUM} not found (apt-get install -y chromium); skipped outside CI`
  : false;

// Starts headless Chromium with a fresh profile; closed (and the profile
// removed) when test t ends.
async function launch(t) {
  assert.ok(haveChromium, `${CHROMIUM} must exist (apt-get install -y chromium)`);
  const { chromium } = require('playwright-core');
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'podrouter-chromium-'));
  // launchPersistentContext is playwright's way to pass --user-data-dir.
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport: { width: 1280, height: 720 },
    timeout: 30000,
  });
  t.after(async () => {
    await context.close().catch(() => {});
    fs.rmSync(profile, { recursive: true, force: true });
  });
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(10000);
  const problems = [];
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const where = (msg.location() && msg.location().url) || '';
    // The browser's own favicon probe is not the page's doing.
    if (/\/favicon\.ico$/.test(where)) return;
    problems.push(`console error: ${msg.text()} ${where}`);
  });
  page.on('requestfailed', (req) => problems.push(`request failed: ${req.url()} ${req.failure() && req.failure().errorText}`));
  return { page, problems };
}

async function startCluster(t, name, opts) {
  const cluster = new Cluster(name, opts);
  t.after(() => cluster.stop());
  await cluster.start();
  return cluster;
}

const stateOf = (page, pod) => page.locator(`#pods tr[data-pod="${pod}"] .state`).innerText().then((s) => s.trim());
const textOf = (page, sel) => page.locator(sel).innerText().then((s) => s.trim());

async function waitText(page, sel, want, what) {
  await waitFor(async () => (await textOf(page, sel)) === want, { timeoutMs: 8000, what: `${what}: ${sel} = ${want}` })
    .catch(async (err) => {
      throw new Error(`${err.message} (shows ${JSON.stringify(await textOf(page, sel).catch(() => '?'))})`);
    });
}

describe('status page in headless Chromium', { timeout: 120000, skip }, () => {
  it('lists the pods and totals; Drain drains a pod; screenshot saved', async (t) => {
    const cluster = await startCluster(t, 'status-page', { pods: 3 });
    // Give the page something to show: a room (and its participants) on some pod.
    for (const who of ['p1', 'p2']) {
      const res = await cluster.get(`/api/headers?roomId=room_status&participantId=${who}`);
      assert.equal(res.status, 200);
    }
    const { page, problems } = await launch(t);
    const res = await page.goto(`${cluster.adminUrl}/status`, { waitUntil: 'load' });
    assert.equal(res.status(), 200);
    assert.match(res.headers()['content-type'] || '', /^text\/html/);
    assert.equal(await page.title(), 'pod-router status');
    await page.waitForSelector('#pods tr[data-pod="backend-0"]');

    const pods = ['backend-0', 'backend-1', 'backend-2'];
    for (const pod of pods) {
      await page.waitForSelector(`#pods tr[data-pod="${pod}"]`);
      assert.equal(await stateOf(page, pod), 'ready', `${pod} shows ready`);
      assert.equal(await page.locator(`button.drain[data-pod="${pod}"]`).count(), 1, `${pod} has a Drain button`);
    }
    assert.equal(await page.locator('#pods tbody tr').count(), 3, 'one row per pod');
    const api = await cluster.podsByName();
    for (const pod of pods) {
      const row = page.locator(`#pods tr[data-pod="${pod}"]`);
      assert.ok((await row.innerText()).includes(api.get(pod).address), `${pod} row shows its address`);
    }
    const cl = (await cluster.admin('GET', '/v1/cluster')).json;
    await waitText(page, '#ready', '3', 'ready total');
    await waitText(page, '#draining', '0', 'draining total');
    await waitText(page, '#down', '0', 'down total');
    await waitText(page, '#rooms', String(cl.rooms), 'rooms total');
    await waitText(page, '#participants', String(cl.participants), 'participants total');
    await waitText(page, '#store', 'up', 'store');
    await waitText(page, '#active-rooms', String(cl.activeRooms), 'active rooms total');
    await waitText(page, '#desired', String(cl.desiredReplicas), 'desired replicas');
    assert.ok(cl.rooms >= 1, 'the room is counted');

    await page.click('button.drain[data-pod="backend-1"]');
    await waitFor(async () => (await stateOf(page, 'backend-1')) === 'draining',
      { timeoutMs: 8000, what: 'backend-1 state cell shows draining' });
    const after = await cluster.podsByName();
    assert.equal(after.get('backend-1').state, 'draining', 'the API agrees: backend-1 is draining');
    assert.equal(after.get('backend-0').state, 'ready');
    assert.equal(after.get('backend-2').state, 'ready');
    assert.equal(await stateOf(page, 'backend-0'), 'ready');
    assert.equal(await stateOf(page, 'backend-2'), 'ready');
    await waitText(page, '#ready', '2', 'ready total after the drain');
    await waitText(page, '#draining', '1', 'draining total after the drain');
    assert.equal(await page.locator('button.drain[data-pod="backend-1"]').count(), 0, 'no Drain button on a draining pod');
    assert.equal(await page.locator('#banner.show').count(), 0, `no error banner (${await textOf(page, '#banner')})`);

    // "/" serves the same page.
    const root = await page.request.get(`${cluster.adminUrl}/`);
    assert.equal(root.status(), 200);
    assert.match(await root.text(), /<table id="pods"/);

    fs.mkdirSync(OUT_DIR, { recursive: true });
    const shot = path.join(OUT_DIR, 'status-page.png');
    await page.screenshot({ path: shot, fullPage: true });
    assert.ok(fs.statSync(shot).size > 1000, 'screenshot written');
    assert.deepEqual(problems, [], 'no page errors, console errors or failed requests');
  });

  it('with --token-file, Drain prompts for the token and succeeds', async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'podrouter-status-'));
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    const token = `tok-${crypto.randomBytes(12).toString('hex')}`;
    const tokenFile = path.join(dir, 'token');
    fs.writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
    const cluster = await startCluster(t, 'status-page-token', { pods: 2, tokenFile, routerArgs: ['--token-file', tokenFile] });
    const { page, problems } = await launch(t);
    const dialogs = [];
    page.on('dialog', async (dialog) => {
      dialogs.push({ type: dialog.type(), message: dialog.message() });
      if (dialog.type() === 'prompt') await dialog.accept(token);
      else await dialog.dismiss();
    });
    await page.goto(`${cluster.adminUrl}/status`);
    await page.waitForSelector('#pods tr[data-pod="backend-1"]');
    assert.equal(await stateOf(page, 'backend-1'), 'ready');
    await page.click('button.drain[data-pod="backend-1"]');
    await waitFor(async () => (await stateOf(page, 'backend-1')) === 'draining',
      { timeoutMs: 8000, what: 'backend-1 state cell shows draining' });
    assert.equal(dialogs.length, 1, `one prompt (${JSON.stringify(dialogs)})`);
    assert.equal(dialogs[0].type, 'prompt');
    assert.match(dialogs[0].message, /token/i);
    const api = await cluster.podsByName();
    assert.equal(api.get('backend-1').state, 'draining', 'the API agrees');
    assert.equal(api.get('backend-0').state, 'ready');
    // The page keeps the token: a second drain needs no second prompt.
    await page.click('button.drain[data-pod="backend-0"]');
    await waitFor(async () => (await stateOf(page, 'backend-0')) === 'draining',
      { timeoutMs: 8000, what: 'backend-0 state cell shows draining' });
    assert.equal(dialogs.length, 1, 'no second prompt');
    await waitText(page, '#draining', '2', 'draining total');
    await page.screenshot({ path: path.join(OUT_DIR, 'status-page-token.png'), fullPage: true });
    // The first, token-less POST is a 401 the page handles; nothing else may fail.
    const unexpected = problems.filter((p) => !/401/.test(p));
    assert.deepEqual(unexpected, [], 'no page errors or failed requests');
  });
});
