-- The embedded feedback store: one SQLite file beside the candidate store.
CREATE TABLE IF NOT EXISTS delivery_ledger (
  program_id TEXT NOT NULL, batch_date TEXT NOT NULL, listener_id INTEGER NOT NULL,
  track_id INTEGER NOT NULL, channel TEXT NOT NULL,
  state TEXT NOT NULL, campaign TEXT, marketplace TEXT, genre TEXT, track_name TEXT, artist_id INTEGER,
  score REAL, send_at REAL, send_before REAL,
  attempts INTEGER NOT NULL DEFAULT 0, reason TEXT, message_id TEXT,
  updated_at REAL, contacted_at REAL, answered_at REAL,
  PRIMARY KEY (program_id, batch_date, channel, listener_id, track_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ledger_contacts ON delivery_ledger (program_id, contacted_at, listener_id);
CREATE INDEX IF NOT EXISTS ledger_listener ON delivery_ledger (listener_id, track_id, program_id);
CREATE INDEX IF NOT EXISTS ledger_due ON delivery_ledger (program_id, batch_date, channel, state);

CREATE TABLE IF NOT EXISTS feedback (
  program_id TEXT NOT NULL, listener_id INTEGER NOT NULL, track_id INTEGER NOT NULL,
  rating INTEGER NOT NULL, comment TEXT NOT NULL, tags TEXT NOT NULL, channel TEXT NOT NULL,
  batch_date TEXT NOT NULL, submission_id TEXT NOT NULL, delivered_at REAL,
  first_submitted_at REAL NOT NULL, submitted_at REAL NOT NULL, revisions INTEGER NOT NULL DEFAULT 1,
  PRIMARY KEY (program_id, listener_id, track_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS feedback_time ON feedback (program_id, submitted_at);

-- A submission id is the client's: unique per (program, listener), so another listener's id is never theirs.
-- (A store made before this key had submission_id alone as its key: _scope_submissions moves it over.)
CREATE TABLE IF NOT EXISTS submissions (
  program_id TEXT NOT NULL, listener_id INTEGER NOT NULL, submission_id TEXT NOT NULL,
  track_id INTEGER NOT NULL, fingerprint TEXT NOT NULL,
  PRIMARY KEY (program_id, listener_id, submission_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS track_metrics (
  program_id TEXT NOT NULL, track_id INTEGER NOT NULL, thumbs_up INTEGER NOT NULL DEFAULT 0,
  thumbs_down INTEGER NOT NULL DEFAULT 0, responses INTEGER NOT NULL DEFAULT 0, updated_at REAL,
  PRIMARY KEY (program_id, track_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS suppressions (
  listener_id INTEGER PRIMARY KEY, reason TEXT NOT NULL, created_at REAL NOT NULL
);

CREATE TABLE IF NOT EXISTS event_outbox (
  id INTEGER PRIMARY KEY AUTOINCREMENT, program_id TEXT NOT NULL, kind TEXT NOT NULL,
  detail TEXT NOT NULL, created_at REAL NOT NULL, published_at REAL
);
CREATE INDEX IF NOT EXISTS outbox_unpublished ON event_outbox (published_at, id);
CREATE INDEX IF NOT EXISTS outbox_program ON event_outbox (program_id, kind, id);
