"""Schema migrations. Migration N brings a database from user_version N-1 to N; never edit a released one."""

from bizsent.core.store.coin_totals import COIN_TOTALS

MIGRATIONS: list[str] = [
    # 1: the tables of the architecture guide.
    """
    CREATE TABLE images (
        id INTEGER PRIMARY KEY,
        url TEXT UNIQUE,
        thumb_url TEXT,
        md5 TEXT,
        sha256 TEXT,
        path TEXT,
        thumb_path TEXT,
        width INTEGER,
        height INTEGER,
        mime TEXT,
        bytes INTEGER,
        status TEXT NOT NULL DEFAULT 'pending'
            CHECK (status IN ('pending', 'ok', 'missing', 'corrupt', 'unsupported')),
        reason TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_attempt_at TEXT,
        fetched_at TEXT
    );
    CREATE INDEX images_sha256 ON images(sha256);
    CREATE INDEX images_status ON images(status);
    CREATE TABLE posts (
        id INTEGER PRIMARY KEY,
        board TEXT NOT NULL,
        thread_no INTEGER NOT NULL,
        post_no INTEGER NOT NULL,
        is_op INTEGER NOT NULL DEFAULT 0,
        time INTEGER,
        subject TEXT NOT NULL DEFAULT '',
        text TEXT NOT NULL DEFAULT '',
        html TEXT NOT NULL DEFAULT '',
        image_id INTEGER REFERENCES images(id),
        source TEXT NOT NULL DEFAULT 'live',
        scraped_at TEXT NOT NULL,
        UNIQUE (board, post_no)
    );
    CREATE INDEX posts_thread ON posts(board, thread_no);
    CREATE INDEX posts_time ON posts(time);
    CREATE INDEX posts_image ON posts(image_id);
    CREATE TABLE threads (
        board TEXT NOT NULL,
        thread_no INTEGER NOT NULL,
        last_modified INTEGER,
        http_last_modified TEXT,
        replies INTEGER,
        state TEXT NOT NULL DEFAULT 'live' CHECK (state IN ('live', 'archived', 'gone')),
        fetched_at TEXT,
        PRIMARY KEY (board, thread_no)
    );
    CREATE TABLE http_cache (
        url TEXT PRIMARY KEY,
        last_modified TEXT,
        fetched_at TEXT
    );
    CREATE TABLE labels (
        id INTEGER PRIMARY KEY,
        post_id INTEGER NOT NULL REFERENCES posts(id) ON DELETE CASCADE,
        label TEXT NOT NULL CHECK (label IN ('bearish', 'neutral', 'bullish')),
        source TEXT NOT NULL CHECK (source IN ('human', 'openai', 'gemini', 'compatible', 'model', 'pseudo')),
        labeler TEXT NOT NULL DEFAULT '',
        confidence REAL,
        sarcastic INTEGER NOT NULL DEFAULT 0,
        rationale TEXT,
        split TEXT NOT NULL DEFAULT 'unassigned' CHECK (split IN ('test', 'train', 'val', 'unassigned')),
        created_at TEXT NOT NULL,
        UNIQUE (post_id, source, labeler)
    );
    CREATE INDEX labels_post ON labels(post_id);
    CREATE INDEX labels_source_split ON labels(source, split);
    CREATE TABLE api_calls (
        id INTEGER PRIMARY KEY,
        request_key TEXT NOT NULL,
        job_id INTEGER REFERENCES jobs(id),
        post_id INTEGER REFERENCES posts(id),
        provider TEXT NOT NULL,
        model TEXT NOT NULL,
        prompt_version TEXT,
        mode TEXT NOT NULL DEFAULT 'live',
        status TEXT NOT NULL DEFAULT 'pending',
        tokens_in INTEGER,
        tokens_out INTEGER,
        usd REAL,
        latency_ms REAL,
        error TEXT,
        response_path TEXT,
        created_at TEXT NOT NULL,
        completed_at TEXT
    );
    CREATE INDEX api_calls_key ON api_calls(request_key);
    CREATE INDEX api_calls_job ON api_calls(job_id);
    CREATE TABLE jobs (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        params TEXT NOT NULL DEFAULT '{}',
        state TEXT NOT NULL DEFAULT 'queued'
            CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),
        progress REAL NOT NULL DEFAULT 0,
        total INTEGER,
        done INTEGER NOT NULL DEFAULT 0,
        failed INTEGER NOT NULL DEFAULT 0,
        counts TEXT NOT NULL DEFAULT '{}',
        error TEXT,
        pid INTEGER,
        remote_id TEXT,
        created_at TEXT NOT NULL,
        started_at TEXT,
        finished_at TEXT,
        heartbeat_at TEXT
    );
    CREATE INDEX jobs_state ON jobs(state);
    CREATE TABLE pods (
        id INTEGER PRIMARY KEY,
        pod_id TEXT UNIQUE,
        name TEXT NOT NULL,
        gpu TEXT,
        usd_per_hour REAL,
        state TEXT NOT NULL DEFAULT 'requested',
        created_at TEXT NOT NULL,
        terminated_at TEXT,
        total_usd REAL NOT NULL DEFAULT 0,
        job_id INTEGER REFERENCES jobs(id)
    );
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        base_model TEXT,
        adapter_path TEXT,
        params TEXT NOT NULL DEFAULT '{}',
        manifest TEXT NOT NULL DEFAULT '{}',
        state TEXT NOT NULL DEFAULT 'running',
        job_id INTEGER REFERENCES jobs(id),
        created_at TEXT NOT NULL,
        finished_at TEXT
    );
    CREATE TABLE metrics (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        kind TEXT NOT NULL CHECK (kind IN ('train', 'eval')),
        step INTEGER,
        epoch REAL,
        loss REAL,
        lr REAL,
        accuracy REAL,
        macro_f1 REAL,
        confusion TEXT,
        data TEXT NOT NULL DEFAULT '{}',
        created_at TEXT NOT NULL
    );
    CREATE INDEX metrics_run ON metrics(run_id, kind, step);
    CREATE TABLE predictions (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        post_id INTEGER NOT NULL REFERENCES posts(id) ON DELETE CASCADE,
        label TEXT NOT NULL,
        probs TEXT NOT NULL,
        latency_ms REAL,
        created_at TEXT NOT NULL,
        UNIQUE (run_id, post_id)
    );
    """,
    # 2: what a human labeling session records beyond the label itself.
    """
    ALTER TABLE labels ADD COLUMN unsure INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE notes (
        id INTEGER PRIMARY KEY,
        post_id INTEGER NOT NULL REFERENCES posts(id) ON DELETE CASCADE,
        text TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX notes_post ON notes(post_id);
    CREATE TABLE skips (
        post_id INTEGER NOT NULL REFERENCES posts(id) ON DELETE CASCADE,
        source TEXT NOT NULL DEFAULT 'human',
        reason TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL,
        PRIMARY KEY (post_id, source)
    );
    """,
    # 3: batch labeling: which remote batch carries a ledger row (several batches per job).
    """
    ALTER TABLE api_calls ADD COLUMN batch_id TEXT;
    CREATE INDEX api_calls_status ON api_calls(job_id, status);
    """,
    # 4: pool scoring keeps a small embedding per prediction (float16, core.pool.EMBED_DIM) for the
    # active-learning queue's diversity step.
    """
    ALTER TABLE predictions ADD COLUMN embedding BLOB;
    """,
    # 5: protecting the human labels. Triggers (not the writers) fill label_history, so every path that writes
    # labels (console, import, jobs, a hand-typed sqlite3 UPDATE) keeps the values it replaces; changed_by says
    # who wrote a row's current value (core.history.actor). app_state keeps the console's session across restarts.
    """
    ALTER TABLE labels ADD COLUMN changed_by TEXT NOT NULL DEFAULT '';
    CREATE TABLE label_history (
        id INTEGER PRIMARY KEY,
        label_id INTEGER NOT NULL,  -- no foreign key: the history outlives a deleted label row
        post_id INTEGER NOT NULL,
        source TEXT NOT NULL,
        labeler TEXT NOT NULL,
        change TEXT NOT NULL CHECK (change IN ('insert', 'update', 'delete')),
        old_label TEXT, old_split TEXT, old_sarcastic INTEGER, old_unsure INTEGER, old_confidence REAL,
        new_label TEXT, new_split TEXT, new_sarcastic INTEGER, new_unsure INTEGER, new_confidence REAL,
        changed_at TEXT NOT NULL,
        changed_by TEXT NOT NULL
    );
    CREATE INDEX label_history_post ON label_history(post_id, id);
    CREATE TRIGGER label_history_insert AFTER INSERT ON labels BEGIN
        INSERT INTO label_history (label_id, post_id, source, labeler, change, new_label, new_split,
            new_sarcastic, new_unsure, new_confidence, changed_at, changed_by)
        VALUES (NEW.id, NEW.post_id, NEW.source, NEW.labeler, 'insert', NEW.label, NEW.split, NEW.sarcastic,
            NEW.unsure, NEW.confidence, strftime('%Y-%m-%dT%H:%M:%S+00:00', 'now'), NEW.changed_by);
    END;
    -- Only real changes: rewriting the same answer (an API job run twice) or stamping changed_by adds nothing.
    CREATE TRIGGER label_history_update AFTER UPDATE ON labels
    WHEN OLD.label IS NOT NEW.label OR OLD.split IS NOT NEW.split OR OLD.sarcastic IS NOT NEW.sarcastic
        OR OLD.unsure IS NOT NEW.unsure OR OLD.confidence IS NOT NEW.confidence BEGIN
        INSERT INTO label_history (label_id, post_id, source, labeler, change, old_label, old_split,
            old_sarcastic, old_unsure, old_confidence, new_label, new_split, new_sarcastic, new_unsure,
            new_confidence, changed_at, changed_by)
        VALUES (NEW.id, NEW.post_id, NEW.source, NEW.labeler, 'update', OLD.label, OLD.split, OLD.sarcastic,
            OLD.unsure, OLD.confidence, NEW.label, NEW.split, NEW.sarcastic, NEW.unsure, NEW.confidence,
            strftime('%Y-%m-%dT%H:%M:%S+00:00', 'now'), NEW.changed_by);
    END;
    -- core.posts.delete_label stamps changed_by with the deleter first; a delete by other means (a post's
    -- cascade, a hand-typed DELETE) names the row's last writer.
    CREATE TRIGGER label_history_delete AFTER DELETE ON labels BEGIN
        INSERT INTO label_history (label_id, post_id, source, labeler, change, old_label, old_split,
            old_sarcastic, old_unsure, old_confidence, changed_at, changed_by)
        VALUES (OLD.id, OLD.post_id, OLD.source, OLD.labeler, 'delete', OLD.label, OLD.split, OLD.sarcastic,
            OLD.unsure, OLD.confidence, strftime('%Y-%m-%dT%H:%M:%S+00:00', 'now'), OLD.changed_by);
    END;
    CREATE TABLE app_state (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL,  -- JSON
        updated_at TEXT NOT NULL
    );
    """,
    # 6: trusting the training data. images.phash: a perceptual hash (core.images.perceptual_hash, hex; '' for an
    # image too flat to have one; NULL until computed) so the leakage guard catches re-saved or resized copies of
    # test images without decoding every image on each dataset build. labels.sampling: how a human label's post
    # was chosen (core.labels.RANDOM_SAMPLING or the queue order; NULL where nobody recorded it), so a report can
    # say whether the test set is a random sample.
    """
    ALTER TABLE images ADD COLUMN phash TEXT;
    ALTER TABLE labels ADD COLUMN sampling TEXT;
    """,
    # 7: claims. A ledger row that is still open ('pending' or 'sent') claims its request key: at most one per
    # key, across every process (a second run skips the post). The row names the process that holds it (pid)
    # and the dollars it reserved against the caps until it is settled with the real cost. Duplicate open rows
    # left by older versions (two runs at once) are closed first as 'interrupted': maybe paid.
    """
    ALTER TABLE api_calls ADD COLUMN pid INTEGER;
    ALTER TABLE api_calls ADD COLUMN reserved_usd REAL;
    UPDATE api_calls SET status = 'interrupted',
        error = 'open twice when claims were introduced; may be billed',
        completed_at = strftime('%Y-%m-%dT%H:%M:%S+00:00', 'now')
        WHERE status IN ('pending', 'sent') AND id NOT IN (
            SELECT max(id) FROM api_calls WHERE status IN ('pending', 'sent') GROUP BY request_key);
    CREATE UNIQUE INDEX api_calls_open_key ON api_calls(request_key) WHERE status IN ('pending', 'sent');
    CREATE INDEX api_calls_post ON api_calls(post_id);
    """,
    # 8: RunPod pods (core.pods). run_name and cloud say what was started where; token is the per-run bearer
    # token the pod's agent checks. It is not the user's RunPod key (that never leaves the environment) and it
    # dies with the pod, so keeping it in the user's own database, next to the pod it opens, is acceptable: a
    # later process (tail, collect) needs it to reach the agent. updated_at: when total_usd was last refreshed.
    """
    ALTER TABLE pods ADD COLUMN run_name TEXT;
    ALTER TABLE pods ADD COLUMN cloud TEXT;
    ALTER TABLE pods ADD COLUMN token TEXT;
    ALTER TABLE pods ADD COLUMN updated_at TEXT;
    ALTER TABLE pods ADD COLUMN error TEXT;
    CREATE INDEX pods_state ON pods(state);
    """,
    # 9: providers are data, not schema. Every API label gets source 'api' and names its provider in its labeler
    # ("openai:gpt-5-mini@p3", core.labels.api_labeler), so a new provider (core.label.providers) needs no table
    # rebuild again. SQLite cannot drop a CHECK, so labels is rebuilt: same ids (label_history.label_id points at
    # them), columns, UNIQUE, indexes and history triggers (migration 5's, unchanged; dropping the old table
    # dropped them). Copying and dropping fire no triggers, so the history records no fake inserts or deletes.
    # label_history is migrated the same way, so a label's history names its labeler as its row does (a reader
    # asking for a source's history finds old and new API writes under 'api' alike); what each write was, when
    # and by whom is unchanged, and the provider that made it stays in the labeler name, as true as before.
    """
    CREATE TABLE labels_new (
        id INTEGER PRIMARY KEY,
        post_id INTEGER NOT NULL REFERENCES posts(id) ON DELETE CASCADE,
        label TEXT NOT NULL CHECK (label IN ('bearish', 'neutral', 'bullish')),
        source TEXT NOT NULL CHECK (source IN ('human', 'api', 'model', 'pseudo')),
        labeler TEXT NOT NULL DEFAULT '',
        confidence REAL,
        sarcastic INTEGER NOT NULL DEFAULT 0,
        rationale TEXT,
        split TEXT NOT NULL DEFAULT 'unassigned' CHECK (split IN ('test', 'train', 'val', 'unassigned')),
        created_at TEXT NOT NULL,
        unsure INTEGER NOT NULL DEFAULT 0,
        changed_by TEXT NOT NULL DEFAULT '',
        sampling TEXT,
        UNIQUE (post_id, source, labeler)
    );
    INSERT INTO labels_new (id, post_id, label, source, labeler, confidence, sarcastic, rationale, split,
        created_at, unsure, changed_by, sampling)
    SELECT id, post_id, label,
        CASE WHEN source IN ('openai', 'gemini', 'compatible') THEN 'api' ELSE source END,
        CASE WHEN source IN ('openai', 'gemini', 'compatible') THEN source || ':' || labeler ELSE labeler END,
        confidence, sarcastic, rationale, split, created_at, unsure, changed_by, sampling
    FROM labels;
    DROP TABLE labels;
    ALTER TABLE labels_new RENAME TO labels;
    CREATE INDEX labels_post ON labels(post_id);
    CREATE INDEX labels_source_split ON labels(source, split);
    UPDATE label_history SET labeler = source || ':' || labeler, source = 'api'
        WHERE source IN ('openai', 'gemini', 'compatible');
    CREATE TRIGGER label_history_insert AFTER INSERT ON labels BEGIN
        INSERT INTO label_history (label_id, post_id, source, labeler, change, new_label, new_split,
            new_sarcastic, new_unsure, new_confidence, changed_at, changed_by)
        VALUES (NEW.id, NEW.post_id, NEW.source, NEW.labeler, 'insert', NEW.label, NEW.split, NEW.sarcastic,
            NEW.unsure, NEW.confidence, strftime('%Y-%m-%dT%H:%M:%S+00:00', 'now'), NEW.changed_by);
    END;
    CREATE TRIGGER label_history_update AFTER UPDATE ON labels
    WHEN OLD.label IS NOT NEW.label OR OLD.split IS NOT NEW.split OR OLD.sarcastic IS NOT NEW.sarcastic
        OR OLD.unsure IS NOT NEW.unsure OR OLD.confidence IS NOT NEW.confidence BEGIN
        INSERT INTO label_history (label_id, post_id, source, labeler, change, old_label, old_split,
            old_sarcastic, old_unsure, old_confidence, new_label, new_split, new_sarcastic, new_unsure,
            new_confidence, changed_at, changed_by)
        VALUES (NEW.id, NEW.post_id, NEW.source, NEW.labeler, 'update', OLD.label, OLD.split, OLD.sarcastic,
            OLD.unsure, OLD.confidence, NEW.label, NEW.split, NEW.sarcastic, NEW.unsure, NEW.confidence,
            strftime('%Y-%m-%dT%H:%M:%S+00:00', 'now'), NEW.changed_by);
    END;
    CREATE TRIGGER label_history_delete AFTER DELETE ON labels BEGIN
        INSERT INTO label_history (label_id, post_id, source, labeler, change, old_label, old_split,
            old_sarcastic, old_unsure, old_confidence, changed_at, changed_by)
        VALUES (OLD.id, OLD.post_id, OLD.source, OLD.labeler, 'delete', OLD.label, OLD.split, OLD.sarcastic,
            OLD.unsure, OLD.confidence, strftime('%Y-%m-%dT%H:%M:%S+00:00', 'now'), OLD.changed_by);
    END;
    """,
    # 10: one job interface for every long-running kind (jobs.kinds). A job row names the machine its process
    # runs on (host), so a pid is only ever checked where it means something; liveness itself goes by the
    # heartbeat (core.store.liveness), which any machine can read.
    """
    ALTER TABLE jobs ADD COLUMN host TEXT;
    CREATE INDEX jobs_kind ON jobs(kind, id);
    """,
    # 11: fencing (jobs.rows): a job row's epoch grows by one on every take-over, and each ledger row records
    # the epoch it was claimed under, so a process that lost its job can no longer write as its owner.
    """
    ALTER TABLE jobs ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE api_calls ADD COLUMN epoch INTEGER;
    """,
    # 12: coin mentions per post (core.coins). post_coins: one row per post and coin, `how` names the rule that
    # found it (core.coins.extract). coin_scans: which posts were read with which version of the list and
    # rules, so a changed list re-reads them and an unchanged one reads only new posts.
    """
    CREATE TABLE post_coins (
        post_id INTEGER NOT NULL REFERENCES posts(id) ON DELETE CASCADE,
        coin TEXT NOT NULL,
        how TEXT NOT NULL,
        PRIMARY KEY (post_id, coin)
    ) WITHOUT ROWID;
    CREATE INDEX post_coins_coin ON post_coins(coin, post_id);
    CREATE TABLE coin_scans (
        post_id INTEGER PRIMARY KEY REFERENCES posts(id) ON DELETE CASCADE,
        version TEXT NOT NULL
    );
    """,
    # 13: the archive backfill's progress (core.collect.archive): one row per day listed and per thread page
    # read, so a backfill killed midway goes on where it stopped. state: done | missing (404, final).
    """
    CREATE TABLE archive_pages (
        board TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('day', 'thread')),
        key TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('done', 'missing')),
        posts INTEGER NOT NULL DEFAULT 0,
        fetched_at TEXT NOT NULL,
        PRIMARY KEY (board, kind, key)
    );
    """,
    # 14: per-coin, per-hour totals for Trends, kept by triggers (core.store.coin_totals says how).
    COIN_TOTALS,
    # 15: the words written on each image, read by OCR (core.collect.ocr), with `squashed` (lowercase, no
    # whitespace) for search: the OCR model often drops the spaces between words. And the Label screen's blind
    # repeats (core.label.repeats): a post shown again to the same person, whose answer never changes its label;
    # label_history by writer and time, so a session's own answers are read without scanning every change.
    """
    CREATE TABLE image_text (
        image_id INTEGER PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,
        text TEXT NOT NULL,
        squashed TEXT NOT NULL,
        engine TEXT NOT NULL,
        read_at TEXT NOT NULL
    );
    CREATE TABLE label_repeats (
        id INTEGER PRIMARY KEY,
        session TEXT NOT NULL,
        post_id INTEGER NOT NULL REFERENCES posts(id) ON DELETE CASCADE,
        stored_label TEXT NOT NULL,
        label TEXT NOT NULL,
        sarcastic INTEGER NOT NULL DEFAULT 0,
        unsure INTEGER NOT NULL DEFAULT 0,
        answered_at TEXT NOT NULL,
        answered_by TEXT NOT NULL
    );
    CREATE INDEX label_repeats_session ON label_repeats(session, id);
    CREATE INDEX label_history_writer ON label_history(changed_by, changed_at);
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)
