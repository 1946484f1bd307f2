#!/usr/bin/env node
// Headless Chromium (Debian's package) drives Converse.js through one file upload.
//
//   node tests/browser/upload.mjs --page URL --peer JID --file PATH --s3 ORIGIN
//        --expect success|failure [--screenshot PATH] [--timeout SECONDS]
//
// URL is tests/browser/index.html as served by the test's Prosody, with jid, password
// and peer in its query. The page logs in and opens the chat with JID; this script
// picks FILE through Converse's own "Choose a file to send" button and waits until
// Converse has recorded the upload's outcome: on success, until the uploaded image is
// shown in the chat; on failure, it takes Converse's error text. It prints one JSON
// object on stdout (what it saw, the network requests by origin, console errors, CORS
// errors from the DevTools protocol, timings) and exits 0 when the outcome matches
// --expect, 1 when it does not, 2 on bad arguments. Every wait is bounded; the whole
// run by --timeout. ORIGIN is the S3 endpoint's: requests anywhere but there and the
// page's origin count as outside requests, and fail the run.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { parseArgs } from 'node:util';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

function usage(message) {
    process.stderr.write(`upload.mjs: ${message}\n`);
    process.exit(2);
}

let args;
try {
    args = parseArgs({
        options: {
            page: { type: 'string' },
            peer: { type: 'string' },
            file: { type: 'string' },
            s3: { type: 'string' },
            expect: { type: 'string', default: 'success' },
            screenshot: { type: 'string' },
            timeout: { type: 'string', default: '90' },
        },
    }).values;
} catch (e) {
    usage(e.message);
}
for (const name of ['page', 'peer', 'file', 's3']) {
    if (!args[name]) usage(`--${name} is required`);
}
if (!['success', 'failure'].includes(args.expect)) usage('--expect is success or failure');
const totalSeconds = Number(args.timeout);
if (!(totalSeconds > 0)) usage('--timeout must be a positive number of seconds');
let fileSize;
try {
    fileSize = statSync(args.file).size;
} catch (e) {
    usage(`--file: ${e.message}`);
}
const pageOrigin = new URL(args.page).origin;
const s3Origin = new URL(args.s3).origin;

const started = performance.now();
const since = () => Math.round(performance.now() - started) / 1000;
const result = {
    expect: args.expect,
    outcome: null,          // "uploaded" or "upload-error"
    ok: false,
    get_url: null,          // the GET URL in the sent message
    model_oob_url: null,    // the same, as the message's OOB URL in Converse's model
    image: null,            // the <img> Converse rendered for it
    error_text: null,       // Converse's message when the upload failed
    upload: null,           // the upload's outcome in Converse's message model
    shown_text: null,       // the text of the newest message in the chat
    screenshot: null,
    console_errors: [],
    page_errors: [],
    requests: { page: 0, s3: [], outside: [] },
    cors_errors: [],
    timings: {},
    failure: null,
};

// The DevTools protocol tells what Playwright's request events do not: why the browser
// blocked a request (for CORS: which check of the preflight failed).
function watchNetwork(cdp) {
    const byId = new Map();
    cdp.on('Network.requestWillBeSent', (e) => {
        byId.set(e.requestId, { url: e.request.url, method: e.request.method, type: e.type });
    });
    cdp.on('Network.loadingFailed', (e) => {
        const r = byId.get(e.requestId) || {};
        if (e.corsErrorStatus) {
            result.cors_errors.push({
                method: r.method, url: (r.url || '').split('?')[0], type: r.type,
                error: e.corsErrorStatus.corsError, parameter: e.corsErrorStatus.failedParameter,
            });
        }
    });
}

function watchPage(page) {
    page.on('console', (msg) => {
        // without the presigned query: the report is kept as an artifact
        if (msg.type() === 'error') result.console_errors.push(msg.text().replace(/\?X-Amz-[^'"\s]*/g, '?…').slice(0, 500));
    });
    page.on('pageerror', (err) => result.page_errors.push(String(err).slice(0, 500)));
    page.on('request', (req) => {
        const url = req.url();
        if (url.startsWith('data:') || url.startsWith('blob:')) return;
        const origin = new URL(url).origin;
        if (origin === pageOrigin) {
            result.requests.page += 1;
        } else if (origin === s3Origin) {
            result.requests.s3.push({ method: req.method(), url: url.split('?')[0] });
        } else {
            result.requests.outside.push(`${req.method()} ${url}`);
        }
    });
    page.on('websocket', (ws) => {
        if (new URL(ws.url()).origin.replace(/^ws/, 'http') !== pageOrigin) {
            result.requests.outside.push(`WEBSOCKET ${ws.url()}`);
        }
    });
}

async function run(page) {
    const deadline = started + totalSeconds * 1000;
    const left = () => Math.max(1000, deadline - performance.now());

    await page.goto(args.page, { waitUntil: 'load', timeout: left() });
    await page.waitForFunction(() => window.e2eState && window.e2eState.connected, null, { timeout: left() });
    result.timings.logged_in = since();

    // The chat with the peer, opened by the page (auto_join_private_chats), and its
    // upload button, shown once Converse has found the upload service through disco.
    const chat = page.locator(`converse-chat[jid="${args.peer}"]`);
    await chat.waitFor({ state: 'attached', timeout: left() });
    const button = chat.locator('converse-chat-toolbar button[title="Choose a file to send"]');
    await button.waitFor({ state: 'visible', timeout: left() });
    result.timings.chat_open = since();

    const chooser = page.waitForEvent('filechooser', { timeout: Math.min(10000, left()) });
    await button.click({ timeout: left() });
    await (await chooser).setFiles(args.file);
    result.timings.file_chosen = since();

    // Converse's message model ends in upload "success" (the PUT got a 2xx and the message
    // became the GET URL) or "failure" (any error, CORS included).
    await page.waitForFunction(() => window.e2eState.uploads.length > 0, null, { timeout: left() });
    result.timings.upload_done = since();
    const upload = (await page.evaluate(() => window.e2eState.uploads))[0];
    result.upload = upload;
    // the newest message in the chat, as the user sees it
    const shown = chat.locator('converse-chat-message').last();
    if (upload.upload === 'success') {
        result.outcome = 'uploaded';
        // rendered: loaded and decoded, not just an <img> element
        const image = chat.locator('img.chat-image').first();
        await image.waitFor({ state: 'attached', timeout: left() });
        await page.waitForFunction((peer) => {
            const img = document.querySelector(`converse-chat[jid="${peer}"] img.chat-image`);
            return img && img.complete && img.naturalWidth > 0;
        }, args.peer, { timeout: left() });
        result.image = await image.evaluate((img) => ({
            src: img.currentSrc || img.src, natural_width: img.naturalWidth, natural_height: img.naturalHeight,
            shown_width: img.getBoundingClientRect().width, shown_height: img.getBoundingClientRect().height,
        }));
        const link = chat.locator('a.chat-image__link').first();
        result.get_url = (await link.count()) ? await link.getAttribute('href') : result.image.src;
        result.timings.image_shown = since();
    } else {
        result.outcome = 'upload-error';
        result.error_text = upload.text;
    }
    result.model_oob_url = upload.oob_url;
    result.shown_text = (await shown.count()) ? (await shown.innerText({ timeout: left() })).replace(/\s+/g, ' ').trim() : null;
    await page.waitForTimeout(300); // let the chat finish scrolling to the new message
    if (args.screenshot) {
        await page.screenshot({ path: args.screenshot, timeout: left() });
        result.screenshot = args.screenshot;
    }
}

async function main() {
    const profile = mkdtempSync(join(tmpdir(), 'upload-e2e-chromium-'));
    let context = null;
    const watchdog = setTimeout(() => {
        result.failure = `watchdog: no result after ${totalSeconds + 30} s`;
        process.stdout.write(JSON.stringify(result) + '\n');
        process.exit(1);
    }, (totalSeconds + 30) * 1000);
    try {
        context = await chromium.launchPersistentContext(profile, {
            executablePath: CHROMIUM,
            headless: true,
            timeout: 30000,
            viewport: { width: 1100, height: 760 },
            args: [
                '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                '--disable-background-networking', '--disable-component-update', '--disable-sync',
                // no name resolves: anything but the loopback IPs the test uses cannot leave the machine
                '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
            ],
        });
        result.timings.launched = since();
        const page = context.pages()[0] || await context.newPage();
        watchPage(page);
        const cdp = await context.newCDPSession(page);
        watchNetwork(cdp);
        await cdp.send('Network.enable');
        await run(page);
    } catch (e) {
        result.failure = String(e && e.message || e).split('\n')[0];
        // what the page showed when it went wrong
        const page = context && context.pages()[0];
        if (page && args.screenshot) {
            await page.screenshot({ path: args.screenshot, timeout: 5000 }).catch(() => {});
            result.screenshot = args.screenshot;
        }
    } finally {
        result.timings.total = since();
        if (context) await context.close().catch(() => {});
        rmSync(profile, { recursive: true, force: true });
        clearTimeout(watchdog);
    }
    const expected = args.expect === 'success' ? 'uploaded' : 'upload-error';
    result.ok = !result.failure && result.outcome === expected && result.requests.outside.length === 0;
    if (!result.ok && !result.failure) {
        result.failure = result.outcome !== expected
            ? `expected ${expected}, got ${result.outcome}`
            : `requests outside the test setup: ${result.requests.outside.join(', ')}`;
    }
    result.file = { name: basename(args.file), size: fileSize };
    process.stdout.write(JSON.stringify(result) + '\n');
    process.exit(result.ok ? 0 : 1);
}

main();
