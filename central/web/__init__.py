"""The centre's web app (FastAPI): staff API and dashboard, workers' pages, the public directory.

`app.create_app(ctx)` is the factory; `context.WebContext` holds what routes need; `auth` the staff
logins (the shared pieces from `common`); `middleware` the gate that makes every `/api/v1/` request
without credentials a 401 before anything else runs; `deps` the `Annotated` dependencies
(`DbSession`, `CurrentStaff`, `Actor`, `Admin`) and the district scoping helpers; one router per
resource in `routers/`.
"""
