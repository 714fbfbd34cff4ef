"""Flags: triage results a clinician must see, the on-call pages and their escalation, the review queue.

    intake.request_triage(...)     the hook: a stored answer or free-text message asks to be triaged
    service.triage_requests(...)   the body of the `triage-response` flow (and the ticker's safety net)
    actions                        what each tier does (pages, patient texts, tasks, the flag itself)
    paging / escalation / oncall   who is paged, when the page escalates, the rota in config/oncall.yaml
    handling / permissions         what staff do with a flag, and who may
    queue / chart                  the review queue and the flag page as view-models, the trajectory chart
    ticker.flags_tick              the scheduler job: stragglers, escalation timers, page retries
"""
