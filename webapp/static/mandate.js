// The mandates page: granting or revoking a mandate is a decision the server prepares, shown
// here in full, then signed with the passkey (one prompt) and sent back, like a request's step.
import { postJSON, say, signAndPost, supported, vnd } from "./webauthn.js";

const root = document.querySelector("[data-passkey-mandates]");

function vnDate(iso) {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(iso || "");
  return m ? `${m[3]}/${m[2]}/${m[1]}` : iso;
}

function addFact(list, label, value) {
  if (value === null || value === undefined || value === "") return;
  const dt = document.createElement("dt");
  dt.textContent = label;
  const dd = document.createElement("dd");
  dd.textContent = String(value);
  list.append(dt, dd);
}

// Every fact comes from the decision the phone signs; the server adds the names of the
// delegate and of the role only.
function showDecision(list, decision, summary, text) {
  list.replaceChildren();
  const data = decision.data || {};
  addFact(list, text.lAction, summary.action);
  if ("delegate" in data) {
    addFact(list, text.lDelegate, `${summary.delegate} (${data.delegate})`);
    addFact(list, text.lRole, summary.role);
    addFact(list, text.lKind, `${data.kind}.`);
    addFact(list, text.lPeriod, `${vnDate(data.from)}–${vnDate(data.to)}`);
    addFact(list, text.lLines, data.lines && data.lines.length ? data.lines.join(", ") : text.lAll);
    if (data.max_amount_vnd) addFact(list, text.lCap, vnd(data.max_amount_vnd));
  } else {
    addFact(list, text.lMandate, `#${data.seq} · ${summary.delegate} · ${summary.role}`);
  }
  addFact(list, text.lComment, decision.comment || text.lNone);
}

if (root && supported()) {
  const text = root.dataset;
  const review = root.querySelector("[data-review]");
  const facts = review.querySelector("[data-facts]");
  const signButton = review.querySelector("[data-sign]");
  const status = root.querySelector("[data-status]");
  const messages = { cancelled: text.msgCancelled, failed: text.msgFailed };
  const unsupported = root.querySelector("[data-unsupported]");
  if (unsupported) unsupported.hidden = true;
  let prepared = null;
  let openForm = null;

  root.querySelectorAll("form[data-mandate-step]").forEach((form) => {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = Object.fromEntries(new FormData(form).entries());
      say(status, "", "info");
      const answer = await postJSON(form.dataset.url, body, text.msgFailed);
      if (!answer.ok) return say(status, answer.message, "error");
      prepared = answer;
      openForm = form;
      showDecision(facts, answer.decision, answer.summary, text);
      form.hidden = true;
      review.hidden = false;
      signButton.focus();
    });
  });

  review.querySelector("[data-back]").addEventListener("click", () => {
    prepared = null;
    review.hidden = true;
    if (openForm) openForm.hidden = false;
  });

  signButton.addEventListener("click", async () => {
    if (!prepared) return;
    signButton.disabled = true;
    try {
      const answer = await signAndPost(prepared.publicKey, text.signUrl, { decision: prepared.decision }, {
        status, messages, working: text.msgWorking, failed: text.msgFailed,
      });
      if (!answer) return;
      if (answer.ok) {
        window.location.assign(answer.redirect);
        return;
      }
      review.hidden = true;
      if (openForm) openForm.hidden = false;
      say(status, answer.message, "error");
    } finally {
      signButton.disabled = false;
    }
  });
}
