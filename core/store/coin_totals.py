"""Migration 14: per-coin, per-hour totals (core.coins.trends reads these, not posts): coin_hours counts the posts
mentioning a coin in an hour (unix time / 3600), coin_hour_scores the predictions of each run among them.
Triggers keep both exact wherever post_coins or predictions change (tagging, a coin-list change's
re-tagging, every scorer, a deleted run), so no writer can forget them; a deleted post takes its rows out
first, while its time is still there. Rows are filled from what is stored already; predictions_post serves
the triggers' lookup of one post's predictions. A post's time never changes once stored.
"""

# The script is part of the migration list (core.store.migrations): once released, never edit it; change
# the totals with a new migration.
COIN_TOTALS = """
    CREATE INDEX predictions_post ON predictions(post_id);
    CREATE TABLE coin_hours (
        coin TEXT NOT NULL,
        hour INTEGER NOT NULL,
        posts INTEGER NOT NULL,
        PRIMARY KEY (coin, hour)
    ) WITHOUT ROWID;
    CREATE INDEX coin_hours_hour ON coin_hours(hour);
    CREATE TABLE coin_hour_scores (
        run_id INTEGER NOT NULL,
        coin TEXT NOT NULL,
        hour INTEGER NOT NULL,
        scored INTEGER NOT NULL,
        bullish INTEGER NOT NULL,
        bearish INTEGER NOT NULL,
        PRIMARY KEY (run_id, hour, coin)
    ) WITHOUT ROWID;
    INSERT INTO coin_hours (coin, hour, posts)
        SELECT c.coin, p.time / 3600, count(*) FROM post_coins c JOIN posts p ON p.id = c.post_id
        WHERE p.time IS NOT NULL GROUP BY c.coin, p.time / 3600;
    INSERT INTO coin_hour_scores (run_id, coin, hour, scored, bullish, bearish)
        SELECT r.run_id, c.coin, p.time / 3600, count(*), sum(r.label = 'bullish'), sum(r.label = 'bearish')
        FROM post_coins c JOIN posts p ON p.id = c.post_id JOIN predictions r ON r.post_id = c.post_id
        WHERE p.time IS NOT NULL GROUP BY r.run_id, c.coin, p.time / 3600;
    CREATE TRIGGER coin_hours_tag AFTER INSERT ON post_coins BEGIN
        INSERT INTO coin_hours (coin, hour, posts)
            SELECT NEW.coin, p.time / 3600, 1 FROM posts p WHERE p.id = NEW.post_id AND p.time IS NOT NULL
            ON CONFLICT (coin, hour) DO UPDATE SET posts = posts + 1;
        INSERT INTO coin_hour_scores (run_id, coin, hour, scored, bullish, bearish)
            SELECT r.run_id, NEW.coin, p.time / 3600, 1, r.label = 'bullish', r.label = 'bearish'
            FROM predictions r JOIN posts p ON p.id = r.post_id WHERE r.post_id = NEW.post_id AND p.time IS NOT NULL
            ON CONFLICT (run_id, hour, coin) DO UPDATE SET scored = scored + 1,
                bullish = bullish + excluded.bullish, bearish = bearish + excluded.bearish;
    END;
    CREATE TRIGGER coin_hours_untag AFTER DELETE ON post_coins BEGIN
        UPDATE coin_hours SET posts = posts - 1
            WHERE coin = OLD.coin AND hour = (SELECT time / 3600 FROM posts WHERE id = OLD.post_id);
        UPDATE coin_hour_scores SET scored = scored - 1,
            bullish = bullish - (SELECT count(*) FROM predictions r WHERE r.post_id = OLD.post_id
                AND r.run_id = coin_hour_scores.run_id AND r.label = 'bullish'),
            bearish = bearish - (SELECT count(*) FROM predictions r WHERE r.post_id = OLD.post_id
                AND r.run_id = coin_hour_scores.run_id AND r.label = 'bearish')
            WHERE coin = OLD.coin AND hour = (SELECT time / 3600 FROM posts WHERE id = OLD.post_id)
            AND run_id IN (SELECT run_id FROM predictions WHERE post_id = OLD.post_id);
    END;
    CREATE TRIGGER coin_hours_score AFTER INSERT ON predictions BEGIN
        INSERT INTO coin_hour_scores (run_id, coin, hour, scored, bullish, bearish)
            SELECT NEW.run_id, c.coin, p.time / 3600, 1, NEW.label = 'bullish', NEW.label = 'bearish'
            FROM post_coins c JOIN posts p ON p.id = c.post_id WHERE c.post_id = NEW.post_id AND p.time IS NOT NULL
            ON CONFLICT (run_id, hour, coin) DO UPDATE SET scored = scored + 1,
                bullish = bullish + excluded.bullish, bearish = bearish + excluded.bearish;
    END;
    CREATE TRIGGER coin_hours_rescore AFTER UPDATE OF label ON predictions WHEN OLD.label IS NOT NEW.label BEGIN
        UPDATE coin_hour_scores
            SET bullish = bullish + (NEW.label = 'bullish') - (OLD.label = 'bullish'),
                bearish = bearish + (NEW.label = 'bearish') - (OLD.label = 'bearish')
            WHERE run_id = NEW.run_id AND hour = (SELECT time / 3600 FROM posts WHERE id = NEW.post_id)
            AND coin IN (SELECT coin FROM post_coins WHERE post_id = NEW.post_id);
    END;
    CREATE TRIGGER coin_hours_unscore AFTER DELETE ON predictions BEGIN
        UPDATE coin_hour_scores
            SET scored = scored - 1, bullish = bullish - (OLD.label = 'bullish'),
                bearish = bearish - (OLD.label = 'bearish')
            WHERE run_id = OLD.run_id AND hour = (SELECT time / 3600 FROM posts WHERE id = OLD.post_id)
            AND coin IN (SELECT coin FROM post_coins WHERE post_id = OLD.post_id);
    END;
    CREATE TRIGGER coin_hours_unpost BEFORE DELETE ON posts BEGIN
        DELETE FROM predictions WHERE post_id = OLD.id;
        DELETE FROM post_coins WHERE post_id = OLD.id;
    END;
"""
