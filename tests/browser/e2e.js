// Starts Converse.js for the browser end-to-end test (tests/browser/upload.mjs).
//
// Everything comes from the page's URL, e.g.
//   /files/index.html?jid=alice@example.test&password=...&peer=bob@example.test
// The WebSocket endpoint is Prosody's mod_websocket on the origin that served this
// page. Settings that would reach outside the loopback test setup are turned off.

import converse from './node_modules/converse.js/dist/converse.min.js';

const params = new URLSearchParams(window.location.search);
const jid = params.get('jid');
const password = params.get('password');
const peer = params.get('peer');
const scheme = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
const websocket_url = params.get('ws') || `${scheme}//${window.location.host}/xmpp-websocket`;
const assets_path = new URL('node_modules/converse.js/dist/', window.location.href).pathname;

// What the test reads back besides the DOM: the connection, and each upload's outcome as
// Converse's message model records it (14.0.0 keeps showing "Uploading file" after a
// failed PUT, so the page alone would not tell a failure from a slow upload).
const state = { connected: false, disconnected: 0, uploads: [] };
window.e2eState = state;

// Converse registers its custom elements only where the name is still free: an empty
// footer keeps the login screen from loading sponsor logos from conversejs.org.
customElements.define('converse-footer', class extends HTMLElement {});

converse.plugins.add('e2e-observer', {
    initialize() {
        const { api } = this._converse;
        api.listen.on('connected', () => { state.connected = true; });
        api.listen.on('disconnected', () => { state.connected = false; state.disconnected += 1; });
        api.listen.on('chatBoxInitialized', (chatbox) => {
            chatbox.messages?.on('change:upload', (message) => {
                state.uploads.push({
                    chat: chatbox.get('jid'),
                    upload: message.get('upload'),       // "success" or "failure"
                    text: message.get('message'),        // the GET URL, or Converse's error text
                    oob_url: message.get('oob_url') ?? null,
                });
            });
        });
    },
});

converse.initialize({
    whitelisted_plugins: ['e2e-observer'],
    // no OMEMO (device lists, libsignal), no registration form (provider list fetch)
    blacklisted_plugins: ['converse-omemo', 'converse-omemo-views', 'converse-register', 'converse-push'],
    websocket_url,
    discover_connection_methods: false,   // no /.well-known/host-meta lookup on the JID's domain
    authentication: 'login',
    auto_login: true,
    jid,
    password,
    auto_reconnect: false,
    auto_join_private_chats: peer ? [peer] : [],
    allow_non_roster_messaging: true,
    view_mode: 'fullscreen',
    show_background: false,
    assets_path,
    i18n: 'en',
    loglevel: 'info',
    // no requests to third parties
    use_system_emojis: true,
    autocomplete_providers_url: null,
    fetch_url_headers: false,
    play_sounds: false,
    show_desktop_notifications: false,
    show_tab_notifications: false,
    // show what the test uploads
    render_media: true,
    show_controlbox_by_default: false,
});
