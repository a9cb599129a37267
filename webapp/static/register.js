// /signing-key: register a passkey on this device, then its first signature (key.confirm).
import { createCredential, getAssertion, postJSON, promptMessage, say, supported } from "./webauthn.js";

const section = document.querySelector("[data-passkey-register]");
if (section) {
  const text = section.dataset;
  const status = section.querySelector("[data-status]");
  const form = section.querySelector("form");
  const confirmBox = section.querySelector("[data-confirm]");
  const confirmButton = confirmBox.querySelector("button");
  const messages = { cancelled: text.msgCancelled, failed: text.msgFailed, exists: text.msgExists };
  let pending = null; // the key.confirm decision and its request options

  section.querySelector("[data-unsupported]").hidden = supported();
  form.hidden = !supported() || text.pending === "1";
  confirmBox.hidden = text.pending !== "1";

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button");
    const fields = {
      password: form.elements["pk-password"].value,
      code: form.elements["pk-code"] ? form.elements["pk-code"].value : "",
      old_secret: form.elements["pk-old_secret"] ? form.elements["pk-old_secret"].value : "",
    };
    button.disabled = true;
    say(status, text.msgWorking, "info");
    try {
      const options = await postJSON(text.optionsUrl, { password: fields.password }, text.msgFailed);
      if (!options.ok) return say(status, options.message, "error");
      let credential;
      try {
        credential = await createCredential(options.publicKey);
      } catch (error) {
        return say(status, promptMessage(error, messages), "error");
      }
      let answer = await postJSON(text.registerUrl, { ...fields, credential }, text.msgFailed);
      if (!answer.ok) return say(status, answer.message, "error");
      if (answer.rotate) {
        // A new phone: the current passkey (perhaps on the old phone, through the QR code the
        // browser shows) signs the hand-over to the key just made.
        say(status, text.msgRotate, "info");
        let assertion;
        try {
          assertion = await getAssertion(answer.rotate.publicKey);
        } catch (error) {
          return say(status, promptMessage(error, messages), "error");
        }
        const body = { decision: answer.rotate.decision, credential: assertion };
        answer = await postJSON(text.rotateUrl, body, text.msgFailed);
        if (!answer.ok) return say(status, answer.message, "error");
      }
      pending = answer;
      form.hidden = true;
      confirmBox.hidden = false;
      say(status, text.msgRegistered, "success");
      confirmButton.focus();
    } finally {
      button.disabled = false;
    }
  });

  confirmButton.addEventListener("click", async () => {
    confirmButton.disabled = true;
    try {
      if (!pending) {
        pending = await postJSON(text.confirmationUrl, {}, text.msgFailed);
        if (!pending.ok) {
          say(status, pending.message, "error");
          pending = null;
          return;
        }
      }
      let credential;
      try {
        credential = await getAssertion(pending.publicKey);
      } catch (error) {
        return say(status, promptMessage(error, messages), "error");
      }
      const answer = await postJSON(text.confirmUrl, { decision: pending.decision, credential }, text.msgFailed);
      if (!answer.ok) return say(status, answer.message, "error");
      window.location.assign(answer.redirect);
    } finally {
      confirmButton.disabled = false;
    }
  });
}
