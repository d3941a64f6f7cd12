"""The data layer: dataset adapters turn raw sources into `datasets.DatasetDict`s with standard columns.

Shared intake lives here once: the split vocabulary (`splits`), where splits come from (`sources`),
the table reader (`tables`), the bad-row policy (`bad_rows`) and the preprocessing cache (`cache`).
Each dataset format the toolkit knows is one adapter module beside them. Only the basics (`hf_tasks.errors`,
`files`) and the command-line parser (`hf_tasks.parsing`, for `fetch`) sit below; text, audio, metrics,
modeling, tasks and the runner build on top.
"""
