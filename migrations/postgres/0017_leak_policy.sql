-- What an organization does with its secrets GitHub reports leaked: `revoke` them at once (the
-- default), or `notify` (record and show them, for a human to act on).
ALTER TABLE orgs ADD COLUMN leak_response TEXT NOT NULL DEFAULT 'revoke'
    CHECK (leak_response IN ('revoke', 'notify'));
