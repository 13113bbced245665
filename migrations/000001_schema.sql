-- ck schema: the state registry, checkpoints (state changes only), current sessions, API keys.
-- Every timestamp is timestamptz; ck writes millisecond precision.

CREATE TABLE state_types (
  name       text PRIMARY KEY CHECK (name ~ '^[A-Za-z][A-Za-z0-9_]{0,63}$'),
  online     boolean NOT NULL,
  builtin    boolean NOT NULL DEFAULT false,
  color      text CHECK (color ~ '^#[0-9a-fA-F]{6}$'),
  created_at timestamptz NOT NULL DEFAULT now()
);

INSERT INTO state_types (name, online, builtin, color) VALUES
  ('Online', true, true, '#22c55e'),
  ('Away', true, true, '#f59e0b'),
  ('Busy', true, true, '#ef4444'),
  ('DoNotDisturb', true, true, '#a855f7'),
  ('Offline', false, true, '#9ca3af');

CREATE TABLE checkpoints (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  user_id     text NOT NULL,
  state       text NOT NULL REFERENCES state_types (name) ON UPDATE CASCADE,
  ts          timestamptz NOT NULL,
  content     jsonb,
  source      text NOT NULL CHECK (source IN ('client', 'heartbeat', 'timeout')),
  received_at timestamptz NOT NULL DEFAULT now()
);
-- Per-user time-ordered reads (timeline, neighbours of a back-fill, LEAD()).
CREATE INDEX checkpoints_user_ts ON checkpoints (user_id, ts, id);

CREATE TABLE user_sessions (
  user_id        text PRIMARY KEY,
  current_state  text NOT NULL REFERENCES state_types (name) ON UPDATE CASCADE,
  state_since    timestamptz NOT NULL,
  last_heartbeat timestamptz NOT NULL,
  updated_at     timestamptz NOT NULL DEFAULT now()
);
-- The sweep scans only users who can expire, oldest heartbeat first.
CREATE INDEX user_sessions_expiry ON user_sessions (last_heartbeat) WHERE current_state <> 'Offline';
-- Listing users in a state, paged by user_id.
CREATE INDEX user_sessions_state ON user_sessions (current_state, user_id);

CREATE TABLE user_settings (
  user_id    text PRIMARY KEY,
  timezone   text NOT NULL DEFAULT 'UTC',
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
  id         text PRIMARY KEY,
  name       text NOT NULL,
  secret_sha256 bytea NOT NULL,
  scopes     text[] NOT NULL CHECK (scopes <@ ARRAY['ingest', 'read', 'admin']::text[]),
  created_at timestamptz NOT NULL DEFAULT now(),
  revoked_at timestamptz
);

-- Epoch milliseconds: the one time format ck's code reads back from SQL.
CREATE FUNCTION ck_ms(t timestamptz) RETURNS float8 LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT round(extract(epoch FROM t) * 1000)::float8
$$;
