-- The admission queue: a task may be `queued` (waiting for a free provider slot), has a
-- `priority`, and remembers when it left the queue (`admitted_at`: its deadline runs from then).

ALTER TABLE tasks DROP CONSTRAINT tasks_status_check;
ALTER TABLE tasks ADD CONSTRAINT tasks_status_check
    CHECK (status IN ('queued', 'pending', 'submitted', 'processing', 'succeeded', 'failed'));
ALTER TABLE tasks ADD COLUMN priority integer NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN admitted_at timestamptz;

-- the queue, in the order tasks leave it: highest priority, then oldest
CREATE INDEX tasks_queue ON tasks (priority DESC, created_at, id) WHERE status = 'queued';
-- tasks in flight at the provider, counted per model at every admission
CREATE INDEX tasks_in_flight ON tasks (model_name)
    WHERE status IN ('pending', 'submitted', 'processing');
