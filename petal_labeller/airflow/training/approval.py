"""A person's yes before a candidate the gate is unsure of becomes production.

`route` turns the gate's decision and the `approval` Param into the next task;
`approval_body` is what the approver reads in Required Actions (both models'
numbers with 95% intervals, churn, training data, the candidate's model card);
`PromotionApproval` is the standard provider's ApprovalOperator with its response
timeout taken from the run's Param. A timeout answers "Reject": production stays.
`DecisionWaiting` is its notifier: one e-mail to PETAL_ALERT_TO (through the
`petal_smtp` connection, like the failure alerts) saying a decision is waiting,
with the link to the task's Required Actions page.
"""

from __future__ import annotations

import html
import logging
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import Param
from airflow.sdk.bases.notifier import BaseNotifier

log = logging.getLogger(__name__)

#: auto: promote when the gate is sure, ask when it is unsure; required: always ask;
#: never: nobody is asked, only a sure gate promotes.
APPROVAL_MODES = ("auto", "required", "never")
#: The Variable a deployment sets the gate's margin with (the Param overrides it).
GATE_MARGIN_VARIABLE = "petal_gate_margin"
DEFAULT_TIMEOUT_HOURS = 72.0
DEFAULT_MAX_CHURN = 0.25
DEFAULT_STORE_SAMPLE = 200

#: The task ids `route` chooses between.
PROMOTE, APPROVE, KEEP = "auto_promote", "approve", "keep_production"


def approval_params() -> dict[str, Param]:
    """The Params of the gate and of the approval step."""
    return {
        "approval": Param(
            "auto",
            type="string",
            enum=list(APPROVAL_MODES),
            description="auto: a person approves only when the gate is unsure; "
            "required: always; never: only a clearly better candidate is promoted.",
        ),
        "gate_margin": Param(
            None,
            type=["null", "number"],
            description="Promote without asking only if the lower bound of the micro-F1 "
            f"gain's 95% interval is above this; empty = Variable '{GATE_MARGIN_VARIABLE}', "
            "else 0.",
        ),
        "max_churn": Param(
            DEFAULT_MAX_CHURN,
            type="number",
            minimum=0,
            maximum=1,
            description="Promote without asking only if at most this share of papers "
            "(held-out, and the sampled store papers) would change label set.",
        ),
        "store_churn_sample": Param(
            DEFAULT_STORE_SAMPLE,
            type="integer",
            minimum=0,
            description="Model-labelled store papers the candidate relabels (dry) to count "
            "churn; 0 = skip. Local backend only.",
        ),
        "approval_timeout_hours": Param(
            DEFAULT_TIMEOUT_HOURS,
            type="number",
            exclusiveMinimum=0,
            description="Hours to wait for a person; then production stays.",
        ),
    }


def route(promote: bool, ask: bool, mode: str, first: bool, dry_run: bool) -> str:
    """The task after the gate: promote, ask a person, or keep production."""
    if dry_run:
        return KEEP
    if mode == "required":
        return APPROVE
    if first or promote:
        return PROMOTE
    return APPROVE if ask and mode == "auto" else KEEP


def _row(name: str, gain: dict[str, float]) -> str:
    return (
        f"| {name} | {gain['candidate']:.4f} | {gain['production']:.4f} | "
        f"{gain['gain']:+.4f} | {gain['low']:+.4f} to {gain['high']:+.4f} |"
    )


def _churn_line(which: str, churn: dict[str, Any] | None) -> str:
    if not churn:
        return f"- {which}: not measured"
    sample = f", a sample of {churn['population']} papers" if churn["sample"] else ""
    return (
        f"- {which}: {churn['changed']} of {churn['papers']} papers change label set "
        f"({churn['fraction']:.1%}{sample}); +{churn['labels_added']} / "
        f"-{churn['labels_removed']} labels"
    )


def approval_body(
    evaluated: dict[str, Any], gate: dict[str, Any], card_link: str, card: dict[str, Any]
) -> str:
    """Markdown for the approver: the gate's reason, the numbers, churn, data, the card."""
    comparison = gate.get("comparison")
    lines = [
        f"**Candidate `{evaluated['version']}`** vs production "
        f"`{evaluated['production_version'] or 'none'}`",
        "",
        f"Gate: {gate['reason']}",
        "",
    ]
    if comparison:
        lines += [
            f"Held-out papers: {comparison['papers']}; paired bootstrap, "
            f"{comparison['resamples']} resamples (seed {comparison['seed']}), 95% intervals.",
            "",
            "| metric | candidate | production | gain | 95% interval of the gain |",
            "|---|---|---|---|---|",
            *(_row(name, gain) for name, gain in comparison["gains"].items()),
            "",
            "Label churn if promoted:",
            _churn_line("held-out papers", comparison["heldout_churn"]),
            _churn_line("model-labelled papers in the store", comparison["store_churn"]),
        ]
    else:
        lines.append(f"Candidate held-out metrics: {evaluated['candidate']}")
    lines += [
        "",
        f"Training data: {evaluated['train_papers']} curated papers, of which "
        f"{evaluated['reviewed_papers']} reviewed by curators; "
        f"{evaluated['heldout_papers']} held out.",
        "",
        f"Model card: [{card.get('recipe', 'model')} over {card.get('base_model', '?')}, "
        f"{card.get('preset', '?')} preset, trained {card.get('created', '?')}]({card_link})",
        "",
        "Approve promotes the candidate and relabels the papers; Reject (or no answer "
        "before the timeout) keeps production and keeps the candidate registered.",
    ]
    return "\n".join(lines)


def card_link(base_url: str, dag_id: str, run_id: str, task_id: str) -> str:
    """The gate task's XCom page in the Airflow UI, where the candidate's card is shown."""
    dag, run, task = (quote(part, safe="") for part in (dag_id, run_id, task_id))
    return f"{base_url.rstrip('/')}/dags/{dag}/runs/{run}/tasks/{task}/xcom"


#: The XCom key of the answer (a Reject skips downstream by raising, so no return value).
ANSWER_KEY = "answer"


class PromotionApproval(ApprovalOperator):
    """ApprovalOperator whose response timeout comes from the run's Params, and which
    keeps the answer (option, who, comment, timed out) in XCom whatever it was."""

    def execute(self, context: Any) -> Any:
        hours = float(context["params"]["approval_timeout_hours"])
        self.response_timeout = timedelta(hours=hours)
        return super().execute(context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        if "error" not in event:
            answer = {
                "chosen_options": list(event.get("chosen_options") or []),
                "params_input": dict(event.get("params_input") or {}),
                "responded_by_user": event.get("responded_by_user"),
                "timedout": bool(event.get("timedout")),
            }
            context["ti"].xcom_push(key=ANSWER_KEY, value=answer)
        return super().execute_complete(context, event)


def required_actions_link(base_url: str, dag_id: str, run_id: str, task_id: str) -> str:
    """The task's Required Actions page, where Approve and Reject are answered.

    Built here, not by `HITLOperator.generate_link_to_ui`, which drops the base URL's
    path (a UI behind a proxy prefix) and does not quote a run id's `+` and `:`."""
    dag, run, task = (quote(part, safe="") for part in (dag_id, run_id, task_id))
    return f"{base_url.rstrip('/')}/dags/{dag}/runs/{run}/tasks/{task}/required_actions"


def waiting_subject(version: str) -> str:
    return f"[PeTaL] decision waiting: promote model {version} to production?"


def waiting_body(version: str, production: str | None, reason: str, link: str, hours: float) -> str:
    """The e-mail's HTML: what is asked, why the gate asked, where to answer, the deadline."""
    e = html.escape
    return (
        f"<p>Model <b>{e(version)}</b> is waiting for a person's decision before it "
        f"replaces production model <b>{e(production or 'none')}</b>.</p>"
        f"<p>Why the gate asked: {e(reason)}</p>"
        f'<p>Approve or reject it in Airflow\'s Required Actions: <a href="{e(link)}">'
        f"{e(link)}</a> (the numbers, churn and the model card are there).</p>"
        f"<p>With no answer within {hours:g} hours production stays and the candidate stays "
        "registered (<code>petal model promote</code> can still promote it).</p>"
    )


class DecisionWaiting(BaseNotifier):
    """Tells PETAL_ALERT_TO that a promotion decision is waiting, with the link.

    Called by the approval task as it starts waiting. Never raises: a lost e-mail must
    not fail the approval (the request is in Required Actions either way); it is logged
    at ERROR with the reason."""

    def notify(self, context: Any) -> None:
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        from petal_labeller.airflow.notifier import ALERT_CONN_ID, alert_recipients, base_url
        from petal_labeller.store.runs import redact_error

        ti, dag_run = context["ti"], context["dag_run"]
        evaluated = ti.xcom_pull(task_ids="evaluate") or {}
        gate = ti.xcom_pull(task_ids="quality_gate", key="gate") or {}
        version = str(evaluated.get("version", "?"))
        link = required_actions_link(base_url(), dag_run.dag_id, dag_run.run_id, ti.task_id)
        hours = float(context["params"].get("approval_timeout_hours", DEFAULT_TIMEOUT_HOURS))
        notifier = SmtpNotifier(
            to=alert_recipients(),
            smtp_conn_id=ALERT_CONN_ID,
            subject=waiting_subject(version),
            html_content=waiting_body(
                version,
                evaluated.get("production_version"),
                str(gate.get("reason", "the gate was not sure")),
                link,
                hours,
            ),
        )
        try:
            # notify(), not __call__: subject and body are final, not Jinja templates.
            notifier.notify({"dag": None})
        except Exception as exc:
            log.error(
                "Decision-waiting e-mail for model %s NOT sent through connection %r: %s",
                version, ALERT_CONN_ID, redact_error(f"{type(exc).__name__}: {exc}"),
            )  # fmt: skip
            return
        log.info("Decision-waiting e-mail for model %s sent (%s)", version, link)
