// Passkeys in the browser: base64url <-> bytes, the two WebAuthn calls, JSON posts with CSRF.
// Written by hand (no framework, no build step); PublicKeyCredential.toJSON() is not on every
// phone yet, so the answer is put into the same JSON shape here.

export function supported() {
  return Boolean(window.PublicKeyCredential && navigator.credentials && window.isSecureContext);
}

export function fromB64url(text) {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4);
  const raw = atob(b64);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i += 1) bytes[i] = raw.charCodeAt(i);
  return bytes.buffer;
}

export function toB64url(buffer) {
  const bytes = new Uint8Array(buffer);
  let raw = "";
  for (let i = 0; i < bytes.length; i += 1) raw += String.fromCharCode(bytes[i]);
  return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function descriptors(list) {
  return (list || []).map((c) => ({ type: c.type, id: fromB64url(c.id), transports: c.transports }));
}

// navigator.credentials.create() from the server's options JSON; the answer as JSON.
export async function createCredential(options) {
  const publicKey = {
    ...options,
    challenge: fromB64url(options.challenge),
    user: { ...options.user, id: fromB64url(options.user.id) },
    excludeCredentials: descriptors(options.excludeCredentials),
  };
  const credential = await navigator.credentials.create({ publicKey });
  const response = credential.response;
  return {
    id: credential.id,
    rawId: toB64url(credential.rawId),
    type: credential.type,
    response: {
      clientDataJSON: toB64url(response.clientDataJSON),
      attestationObject: toB64url(response.attestationObject),
      transports: response.getTransports ? response.getTransports() : [],
    },
    authenticatorAttachment: credential.authenticatorAttachment || null,
    clientExtensionResults: credential.getClientExtensionResults(),
  };
}

// navigator.credentials.get() for one challenge (a decision's, or a batch's); the answer as JSON.
export async function getAssertion(options) {
  const publicKey = {
    challenge: fromB64url(options.challenge),
    rpId: options.rpId,
    allowCredentials: descriptors(options.allowCredentials),
    userVerification: options.userVerification || "required",
    timeout: options.timeout,
  };
  const credential = await navigator.credentials.get({ publicKey });
  const response = credential.response;
  return {
    id: credential.id,
    rawId: toB64url(credential.rawId),
    type: credential.type,
    response: {
      clientDataJSON: toB64url(response.clientDataJSON),
      authenticatorData: toB64url(response.authenticatorData),
      signature: toB64url(response.signature),
      userHandle: response.userHandle ? toB64url(response.userHandle) : null,
    },
    authenticatorAttachment: credential.authenticatorAttachment || null,
    clientExtensionResults: credential.getClientExtensionResults(),
  };
}

// POST a JSON body with the page's CSRF token; always resolves to {ok, message, ...}.
export async function postJSON(url, body, fallbackMessage) {
  const token = document.querySelector("meta[name=csrf-token]");
  try {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": token ? token.content : "" },
      body: JSON.stringify(body),
    });
    const type = response.headers.get("Content-Type") || "";
    if (type.startsWith("application/json")) return await response.json();
    return { ok: false, message: fallbackMessage };
  } catch (error) {
    return { ok: false, message: fallbackMessage };
  }
}

// The prompt was dismissed, timed out, or the device has no passkey for this site.
export function promptMessage(error, messages) {
  if (error && error.name === "NotAllowedError") return messages.cancelled;
  if (error && error.name === "InvalidStateError") return messages.exists || messages.failed;
  return messages.failed;
}

// Ask the phone to sign (the fingerprint or face prompt), then post the signature with ``payload``.
// Returns the server's answer, or null when the prompt did not sign (the reason is already said).
export async function signAndPost(publicKey, url, payload, { status, messages, working, failed }) {
  say(status, working, "info");
  let credential;
  try {
    credential = await getAssertion(publicKey);
  } catch (error) {
    say(status, promptMessage(error, messages), "error");
    return null;
  }
  return postJSON(url, { ...payload, credential }, failed);
}

// Amounts the Vietnamese way: 1.800.000 ₫ (VND has no minor unit).
export function vnd(amount) {
  if (typeof amount !== "number") return "—";
  return String(amount).replace(/\B(?=(\d{3})+(?!\d))/g, ".") + " ₫";
}

export function say(element, text, kind) {
  element.textContent = text;
  element.className = "flash " + (kind || "info");
  element.hidden = !text;
}
