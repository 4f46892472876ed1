-- Needs an ACCESS EXCLUSIVE lock on clips, as most ALTER TABLEs do: it waits for any open
-- transaction that read clips (a nightly pg_dump, a long report), and while it waits every
-- new query on clips queues behind it, unless lock_timeout makes it give up first.
ALTER TABLE clips ADD COLUMN IF NOT EXISTS rating smallint;
