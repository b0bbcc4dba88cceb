"""One router per resource; `edge.api.app.create_app` includes them all."""
