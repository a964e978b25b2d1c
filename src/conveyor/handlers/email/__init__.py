"""The email workload: `send_email` and `email_campaign` (Jinja2 templates, SMTP or .eml files).

See docs/email.md for the template folder layout and the delivery guarantees.
"""
