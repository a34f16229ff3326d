"""Every Dagster definition of the project, and nothing else: one folder per concern, each owning its assets,
checks, jobs, schedules and sensors in files named for them.

The root module, `music_feedback.definitions`, loads this tree the way `dg.load_from_defs_folder` does:
module-level definitions here (the events relay, the run-failure alert, the resources, the warehouse
tables) are found without being listed. A program's definitions come from its YAML, so each folder whose
definitions belong to a program exports `program_defs(program, daily)`, and the root calls it once per
program found. Code outside this package (transforms, filters, scoring, the ports and their adapters, the
service) never imports it; the CLI and the runner, which sit on top, may.
"""
