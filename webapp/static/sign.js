// A request's page: each step is a decision the server prepares, shown here in full, then
// signed with the passkey (one fingerprint / face / screen-lock prompt) and sent back.
import { postJSON, say, signAndPost, supported, vnd } from "./webauthn.js";

const section = document.querySelector("[data-passkey-steps]");

function addFact(list, label, value) {
  if (value === null || value === undefined || value === "") return;
  const dt = document.createElement("dt");
  dt.textContent = label;
  const dd = document.createElement("dd");
  if (value instanceof Node) dd.appendChild(value);
  else dd.textContent = String(value);
  list.append(dt, dd);
}

function vnDate(iso) {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(iso || "");
  return m ? `${m[3]}/${m[2]}/${m[1]}` : iso;
}

// What the decision says, in words: every field comes from the decision the phone will sign;
// the server adds only the names of the codes it holds (action, budget line, funding source).
function showDecision(list, decision, summary, label) {
  list.replaceChildren();
  const content = (decision.data && decision.data.content) || {};
  const payment = decision.data && decision.data.payment;
  addFact(list, label.lAction, summary.action);
  addFact(list, label.lRequest, decision.request);
  addFact(list, label.lTitle, content.title);
  addFact(list, label.lAmount, vnd(content.amount_vnd));
  addFact(list, label.lLine, summary.line);
  addFact(list, label.lSource, summary.source);
  addFact(list, label.lYear, content.budget_year);
  const files = content.attachments || [];
  if (files.length) {
    const ul = document.createElement("ul");
    for (const file of files) {
      const li = document.createElement("li");
      li.textContent = `${file.name} (sha256 ${String(file.sha256).slice(0, 12)}…)`;
      ul.appendChild(li);
    }
    addFact(list, label.lAttachments, ul);
  } else {
    addFact(list, label.lAttachments, label.lNone);
  }
  if (payment) {
    addFact(list, label.lVoucher, payment.voucher);
    addFact(list, label.lPaidOn, vnDate(payment.paid_on));
    addFact(list, label.lPaid, vnd(payment.amount_paid_vnd));
  }
  addFact(list, label.lComment, decision.comment || label.lNone);
  addFact(list, label.lTo, summary.to);
}

function wire(details, text) {
  const form = details.querySelector("[data-passkey-step]");
  const review = details.querySelector("[data-review]");
  const facts = review.querySelector("[data-facts]");
  const signButton = review.querySelector("[data-sign]");
  const status = details.querySelector("[data-status]");
  const messages = { cancelled: text.msgCancelled, failed: text.msgFailed };
  let prepared = null;
  form.hidden = false;

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const value = (name) => (form.elements[name] ? form.elements[name].value : "");
    const expected = text.expectedSeq === "" ? null : Number(text.expectedSeq);
    const body = {
      trigger: form.dataset.trigger,
      comment: form.querySelector("textarea").value,
      voucher: value("voucher"),
      paid_on: value("paid_on"),
      amount_paid: value("amount_paid"),
      expected_seq: expected,
    };
    say(status, "", "info");
    const answer = await postJSON(text.decisionUrl, body, text.msgFailed);
    if (!answer.ok) return say(status, answer.message, "error");
    prepared = answer;
    showDecision(facts, answer.decision, answer.summary, text);
    form.hidden = true;
    review.hidden = false;
    signButton.focus();
  });

  review.querySelector("[data-back]").addEventListener("click", () => {
    prepared = null;
    review.hidden = true;
    form.hidden = false;
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
      say(status, answer.message, answer.code === "concurrent_change" ? "warning" : "error");
    } finally {
      signButton.disabled = false;
    }
  });
}

if (section) {
  const text = section.dataset;
  const unsupported = section.querySelector("[data-unsupported]");
  if (unsupported) unsupported.hidden = supported();
  if (supported()) section.querySelectorAll("details.action").forEach((d) => wire(d, text));
}
