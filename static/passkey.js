// Passkeys and security keys (WebAuthn) on Tessera's pages: autofill and the passkey button on
// the sign-in page, adding a key on the passkeys page, a key as the second step. The server
// keeps every ceremony's state; this script only carries options and answers across.
'use strict';
(function () {
  const supported = typeof window.PublicKeyCredential === 'function' && !!navigator.credentials;

  function fromB64url(text) {
    const b64 = text.replace(/-/g, '+').replace(/_/g, '/');
    const raw = atob(b64 + '==='.slice((b64.length + 3) % 4));
    const bytes = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    return bytes.buffer;
  }

  function toB64url(buffer) {
    const bytes = new Uint8Array(buffer);
    let raw = '';
    for (let i = 0; i < bytes.length; i++) raw += String.fromCharCode(bytes[i]);
    return btoa(raw).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }

  function withIds(list) {
    return (list || []).map((c) => Object.assign({}, c, { id: fromB64url(c.id) }));
  }

  function creationOptions(options) {
    const pk = Object.assign({}, options.publicKey);
    pk.challenge = fromB64url(pk.challenge);
    pk.user = Object.assign({}, pk.user, { id: fromB64url(pk.user.id) });
    if (pk.excludeCredentials) pk.excludeCredentials = withIds(pk.excludeCredentials);
    return { publicKey: pk };
  }

  function requestOptions(options) {
    const pk = Object.assign({}, options.publicKey);
    pk.challenge = fromB64url(pk.challenge);
    if (pk.allowCredentials) pk.allowCredentials = withIds(pk.allowCredentials);
    return { publicKey: pk };
  }

  function registrationJson(cred) {
    const r = cred.response;
    return {
      id: cred.id,
      rawId: toB64url(cred.rawId),
      type: cred.type,
      response: {
        attestationObject: toB64url(r.attestationObject),
        clientDataJSON: toB64url(r.clientDataJSON),
        transports: typeof r.getTransports === 'function' ? r.getTransports() : undefined,
      },
      extensions: cred.getClientExtensionResults(),
    };
  }

  function assertionJson(cred) {
    const r = cred.response;
    return {
      id: cred.id,
      rawId: toB64url(cred.rawId),
      type: cred.type,
      response: {
        authenticatorData: toB64url(r.authenticatorData),
        clientDataJSON: toB64url(r.clientDataJSON),
        signature: toB64url(r.signature),
        userHandle: r.userHandle ? toB64url(r.userHandle) : null,
      },
      extensions: cred.getClientExtensionResults(),
    };
  }

  async function postJson(url, body) {
    const res = await fetch(url, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    const data = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(data.message || 'Something went wrong. Try again.');
    return data;
  }

  function say(el, text) {
    if (!el) return;
    el.textContent = text;
    el.hidden = !text;
  }

  // Sign-in page: autofill (conditional mediation) on the email field, and the button.
  function signInPage(form) {
    const csrf = form.querySelector('input[name=csrf_token]').value;
    const button = document.getElementById('passkey-sign-in');
    const status = document.getElementById('passkey-status');
    let pending = null;

    async function run(conditional) {
      if (pending) pending.abort();
      const controller = new AbortController();
      pending = controller;
      const { options } = await postJson('/login/passkey/begin', { csrf_token: csrf });
      const request = requestOptions(options);
      request.signal = controller.signal;
      if (conditional) request.mediation = 'conditional';
      const cred = await navigator.credentials.get(request);
      if (!cred) return;
      form.querySelector('input[name=credential]').value = JSON.stringify(assertionJson(cred));
      form.submit();
    }

    if (!supported) {
      if (button) button.hidden = true;
      return;
    }
    if (button) {
      button.hidden = false;
      button.addEventListener('click', () => {
        say(status, '');
        run(false).catch((e) => {
          if (e.name !== 'AbortError') say(status, e.name === 'NotAllowedError' ? 'The passkey sign-in was cancelled.' : e.message);
        });
      });
    }
    if (typeof PublicKeyCredential.isConditionalMediationAvailable === 'function') {
      PublicKeyCredential.isConditionalMediationAvailable().then((available) => {
        if (available) run(true).catch(() => {});
      });
    }
  }

  // Passkeys page: add a passkey or a security key.
  function addKeyForm(form) {
    const csrf = form.querySelector('input[name=csrf_token]').value;
    const status = document.getElementById('passkey-add-status');
    if (!supported) {
      say(status, 'This browser cannot use passkeys.');
      return;
    }
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const style = event.submitter && event.submitter.value === 'security_key' ? 'security_key' : 'passkey';
      const name = form.querySelector('input[name=name]').value;
      say(status, '');
      try {
        const { options } = await postJson('/account/passkeys/begin', { csrf_token: csrf, style });
        const cred = await navigator.credentials.create(creationOptions(options));
        await postJson('/account/passkeys/finish', { csrf_token: csrf, name, credential: registrationJson(cred) });
        window.location.assign('/account/passkeys');
      } catch (e) {
        say(status, e.name === 'NotAllowedError' ? 'Adding the key was cancelled.' : e.message);
      }
    });
  }

  // Second step after a password: a passkey or security key instead of a code. The page gives
  // the begin URL and the form the answer is posted with.
  function secondStep(form) {
    const csrf = form.querySelector('input[name=csrf_token]').value;
    const button = document.getElementById('webauthn-second-step');
    const status = document.getElementById('webauthn-second-step-status');
    if (!supported || !button) {
      if (button) button.hidden = true;
      return;
    }
    button.hidden = false;
    button.addEventListener('click', async () => {
      say(status, '');
      try {
        const { options } = await postJson(form.dataset.begin, { csrf_token: csrf });
        const cred = await navigator.credentials.get(requestOptions(options));
        form.querySelector('input[name=credential]').value = JSON.stringify(assertionJson(cred));
        form.submit();
      } catch (e) {
        say(status, e.name === 'NotAllowedError' ? 'The security key was not used.' : e.message);
      }
    });
  }

  const signIn = document.getElementById('passkey-form');
  if (signIn) signInPage(signIn);
  const add = document.getElementById('passkey-add');
  if (add) addKeyForm(add);
  const second = document.getElementById('webauthn-second-step-form');
  if (second) secondStep(second);
})();
