"""The dashboard (`kbox up` on a terminal, `kbox ui`): a Textual app over the API client.

Only this package imports Textual; the CLI imports it lazily when it opens a
dashboard, so headless kbox never loads it. `app.KboxApp` is the app,
`launch` opens it from the CLI, `theme` loads the themes in `themes/`.
"""
