"""The live dashboard at ``/dashboard``: one page polling ``/dashboard/data`` every second.

``data`` builds the page's figures as a plain dict from the stores (bounded work per
refresh); ``views`` serves the page and the JSON; the page itself is a template with
a small vanilla script and stylesheet under the app's ``static/`` (no build, no CDN:
it works offline).
"""
