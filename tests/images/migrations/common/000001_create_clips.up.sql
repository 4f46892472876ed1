-- The app's first migration needs the extensions the admin login created beforehand.
CREATE TABLE clips (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    title text NOT NULL,
    title_digest bytea GENERATED ALWAYS AS (digest(title, 'sha256')) STORED,
    category ltree,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX clips_title_trgm ON clips USING gin (title gin_trgm_ops);
INSERT INTO clips (title, category) VALUES ('first clip', 'games.speedrun');
