ALTER TABLE clips ADD COLUMN views bigint NOT NULL DEFAULT 0;
CREATE INDEX clips_views ON clips (views DESC);
