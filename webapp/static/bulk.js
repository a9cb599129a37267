// The principal's queue: approve the ticked requests with one passkey prompt. The prompt signs
// the list of the decisions' hashes; each request is then recorded on its own.
import { postJSON, say, signAndPost, supported, vnd } from "./webauthn.js";

const form = document.querySelector("[data-bulk]");
if (form && form.querySelector("[data-check]")) {
  const text = form.dataset;
  const check = form.querySelector("[data-check]");
  const review = form.querySelector("[data-review]");
  const list = review.querySelector("[data-list]");
  const signButton = review.querySelector("[data-sign]");
  const status = form.querySelector("[data-status]");
  const messages = { cancelled: text.msgCancelled, failed: text.msgFailed };
  let prepared = null;

  form.querySelector("[data-unsupported]").hidden = supported();
  check.hidden = !supported();

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const numbers = Array.from(form.querySelectorAll("input[name=numbers]:checked"), (i) => i.value);
    if (!numbers.length) return say(status, text.msgChoose, "error");
    const comment = form.elements.comment.value;
    say(status, "", "info");
    const answer = await postJSON(text.decisionsUrl, { numbers, comment }, text.msgFailed);
    if (!answer.ok) return say(status, answer.message, "error");
    prepared = answer;
    list.replaceChildren();
    let total = 0;
    answer.decisions.forEach((decision, i) => {
      const content = decision.data.content;
      total += content.amount_vnd || 0;
      const li = document.createElement("li");
      li.textContent = `${decision.request} · ${content.title} · ${vnd(content.amount_vnd)} · ${answer.summaries[i].line}`;
      list.appendChild(li);
    });
    for (const item of answer.refused) {
      const li = document.createElement("li");
      li.className = "error";
      li.textContent = `${item.number}: ${item.message}`;
      list.appendChild(li);
    }
    review.querySelector("[data-total]").textContent = `${text.lTotal}: ${vnd(total)}`;
    const signedComment = answer.decisions[0].comment;
    review.querySelector("[data-comment]").textContent = `${text.lComment}: ${signedComment || text.lNone}`;
    check.hidden = true;
    review.hidden = false;
    signButton.focus();
  });

  review.querySelector("[data-back]").addEventListener("click", () => {
    prepared = null;
    review.hidden = true;
    check.hidden = false;
  });

  signButton.addEventListener("click", async () => {
    if (!prepared) return;
    signButton.disabled = true;
    try {
      const answer = await signAndPost(prepared.publicKey, text.signUrl, { decisions: prepared.decisions }, {
        status, messages, working: text.msgWorking, failed: text.msgFailed,
      });
      if (!answer) return;
      if (answer.redirect) {
        window.location.assign(answer.redirect);
        return;
      }
      say(status, answer.message, "error");
    } finally {
      signButton.disabled = false;
    }
  });
}
