"""The local server (the ``server`` extra: FastAPI on uvicorn): the REST API over
`workflow_cli.api`, with tokens and roles (`workflow_cli.store.tokens`).

`app` builds the application (`build_app`), `errors` maps the CLI's errors to HTTP
statuses, `stream` turns a journal into Server-Sent Events, `access` keeps the access
log, and `serve` binds a socket and runs uvicorn on it.
"""
