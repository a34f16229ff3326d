"""The email channel: rendering, the sender port and its adapters (Maildir/SMTP embedded, SES v2 on AWS)."""
