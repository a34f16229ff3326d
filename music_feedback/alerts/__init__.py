"""Run-failure alerts: what failed (the step and the user's error, read from the run's events), and where the
alert goes (the alert-sink port: a local file on the embedded set, SNS on AWS)."""
