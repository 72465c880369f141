"""The web console (issue 11): server-rendered pages over the same data as the JSON API.

`routes.py` owns the pages and their JSON twins, `views.py` the pure shaping of rows and API
documents into what the templates show, `templates/` the Jinja2 templates and `static/` the
stylesheet and the one script (plain JavaScript, no build step, served by the daemon).
"""
