"""Surveys: responses to check-in/survey touchpoints, answered by SMS (one question at a time) or on a
signed web form, with reminders, windows, misses and scores.

Modules: `items` (which questions), `responses` (creation, opening, one conversation at a time),
`conversation` (the SMS state machine, `handle_free_text`), `router` (which conversation a text answers),
`state` (the per-patient conversation pointer), `store` (answers, scores, ending), `misses`,
`windows` (reminders, closing), `tokens` (signed links), `form` (the web form), `service` (the tick).
"""
