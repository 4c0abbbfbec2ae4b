"""The database schema, as an ordered list of migrations.

`PRAGMA user_version` holds how many migrations a database has had; start-up applies the rest, each
in its own transaction, so a crash during a migration leaves the previous version intact.
"""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: the data model of DESIGN.md.
    """
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );

    CREATE TABLE orders (
        id           INTEGER PRIMARY KEY,
        store_id     TEXT NOT NULL UNIQUE,
        number       TEXT NOT NULL,
        status       TEXT NOT NULL DEFAULT '',
        customer     TEXT NOT NULL DEFAULT '',
        placed_at    TEXT,
        modified_at  TEXT,
        raw          TEXT NOT NULL DEFAULT '{}',
        qb_state     TEXT NOT NULL DEFAULT 'new'
                     CHECK (qb_state IN ('new', 'sent', 'posted', 'failed', 'skipped')),
        qb_kind      TEXT NOT NULL DEFAULT 'sales_receipt'
                     CHECK (qb_kind IN ('sales_receipt', 'invoice', 'sales_order', 'credit_memo')),
        ref_number   TEXT NOT NULL,
        txn_id       TEXT,
        error        TEXT,
        attempts     INTEGER NOT NULL DEFAULT 0,
        sent_session INTEGER REFERENCES qbwc_sessions(id) ON DELETE SET NULL,
        imported_at  TEXT NOT NULL,
        updated_at   TEXT NOT NULL
    );
    CREATE INDEX orders_qb_state ON orders(qb_state, id);

    CREATE TABLE order_lines (
        id       INTEGER PRIMARY KEY,
        order_id INTEGER NOT NULL REFERENCES orders(id) ON DELETE CASCADE,
        line_no  INTEGER NOT NULL,
        sku      TEXT NOT NULL,
        name     TEXT NOT NULL DEFAULT '',
        quantity TEXT NOT NULL,
        price    TEXT,
        UNIQUE (order_id, line_no)
    );
    CREATE INDEX order_lines_sku ON order_lines(sku);

    CREATE TABLE items (
        list_id          TEXT PRIMARY KEY,
        kind             TEXT NOT NULL CHECK (kind IN ('inventory', 'assembly')),
        name             TEXT NOT NULL,
        full_name        TEXT NOT NULL,
        mpn              TEXT,
        quantity_on_hand TEXT NOT NULL DEFAULT '0',
        time_modified    TEXT NOT NULL,
        edit_sequence    TEXT,
        is_active        INTEGER NOT NULL DEFAULT 1,
        seen_at          TEXT NOT NULL
    );
    CREATE INDEX items_name ON items(name COLLATE NOCASE);
    CREATE INDEX items_full_name ON items(full_name COLLATE NOCASE);

    CREATE TABLE pending (
        sku          TEXT PRIMARY KEY,
        quantity     TEXT NOT NULL,
        state        TEXT NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'in_flight', 'failed')),
        attempts     INTEGER NOT NULL DEFAULT 0,
        next_attempt TEXT NOT NULL,
        last_error   TEXT,
        updated_at   TEXT NOT NULL
    );
    CREATE INDEX pending_due ON pending(state, next_attempt);

    CREATE TABLE sku_log (
        id      INTEGER PRIMARY KEY,
        at      TEXT NOT NULL,
        sku     TEXT NOT NULL,
        old_qty TEXT,
        new_qty TEXT,
        ok      INTEGER NOT NULL,
        reason  TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX sku_log_at ON sku_log(at);
    CREATE INDEX sku_log_sku ON sku_log(sku, at);

    CREATE TABLE tasks (
        name             TEXT PRIMARY KEY,
        interval_seconds INTEGER NOT NULL,
        last_run         TEXT,
        next_run         TEXT,
        last_result      TEXT
    );

    CREATE TABLE qbwc_sessions (
        id          INTEGER PRIMARY KEY,
        ticket_hash TEXT UNIQUE,
        client      TEXT NOT NULL DEFAULT '',
        started     TEXT NOT NULL,
        last_seen   TEXT NOT NULL,
        ended       TEXT,
        requests    INTEGER NOT NULL DEFAULT 0,
        result      TEXT,
        error       TEXT,
        company     TEXT,
        qbxml_version TEXT,
        state       TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX qbwc_sessions_open ON qbwc_sessions(ended, last_seen);

    CREATE TABLE qb_requests (
        id          INTEGER PRIMARY KEY,
        session_id  INTEGER NOT NULL REFERENCES qbwc_sessions(id) ON DELETE CASCADE,
        at          TEXT NOT NULL,
        request_id  TEXT NOT NULL,
        kind        TEXT NOT NULL,
        status_code INTEGER,
        severity    TEXT,
        message     TEXT
    );
    CREATE INDEX qb_requests_session ON qb_requests(session_id);
    """,
]

MIGRATIONS.append(
    # 2: the storefront side: the store's SKU index, explicit SKU mappings, scheduled tasks seeded
    # by the scheduler, and which store order a credit memo came from.
    """
    CREATE TABLE catalog (
        sku_key      TEXT PRIMARY KEY,
        sku          TEXT NOT NULL,
        item_id      TEXT NOT NULL,
        parent_id    TEXT,
        quantity     INTEGER,
        managed      INTEGER NOT NULL DEFAULT 1,
        refreshed_at TEXT NOT NULL
    );

    CREATE TABLE mappings (
        store_sku_key TEXT PRIMARY KEY,
        store_sku     TEXT NOT NULL,
        qb_item       TEXT NOT NULL,
        created_at    TEXT NOT NULL
    );
    CREATE INDEX mappings_qb_item ON mappings(qb_item COLLATE NOCASE);

    ALTER TABLE orders ADD COLUMN parent_order_id INTEGER REFERENCES orders(id) ON DELETE SET NULL;
    ALTER TABLE pending ADD COLUMN pushed_quantity TEXT
    """
)

MIGRATIONS.append(
    # 3: the event log the interface tails (also from another process), and the state of a queue
    # drain for the dashboard's progress bar.
    """
    CREATE TABLE events (
        id      INTEGER PRIMARY KEY,
        at      TEXT NOT NULL,
        level   TEXT NOT NULL CHECK (level IN ('info', 'warning', 'error')),
        kind    TEXT NOT NULL,
        message TEXT NOT NULL
    );
    CREATE INDEX sku_log_ok ON sku_log(ok, id);
    CREATE INDEX orders_imported_at ON orders(imported_at)
    """
)

MIGRATIONS.append(
    # 4: when an order was handed to the Web Connector, so an order in doubt is added again only
    # once QuickBooks can no longer be working on the first request.
    """
    ALTER TABLE orders ADD COLUMN sent_at TEXT
    """
)

MIGRATIONS.append(
    # 5: one SKU rule (engine/skus.py): keys are trimmed, Unicode case-folded text computed in
    # Python (SQLite's lower() folds ASCII only), stored beside the value they come from; the
    # migration fills them with `sku_key`, the same function registered on every connection.
    # The catalog keeps every store product claiming a SKU (two claiming one is reported, not
    # silently collapsed), and what was wrong with an entry the store answered for.
    """
    CREATE TABLE catalog_v5 (
        id           INTEGER PRIMARY KEY,
        sku          TEXT NOT NULL,
        sku_key      TEXT NOT NULL,
        item_id      TEXT NOT NULL,
        parent_id    TEXT,
        quantity     INTEGER,
        managed      INTEGER NOT NULL DEFAULT 1,
        problem      TEXT NOT NULL DEFAULT '',
        refreshed_at TEXT NOT NULL
    );
    INSERT INTO catalog_v5(sku, sku_key, item_id, parent_id, quantity, managed, refreshed_at)
        SELECT sku, sku_key(sku), item_id, parent_id, quantity, managed, refreshed_at FROM catalog;
    DROP TABLE catalog;
    ALTER TABLE catalog_v5 RENAME TO catalog;
    CREATE INDEX catalog_sku_key ON catalog(sku_key);

    ALTER TABLE items ADD COLUMN name_key TEXT;
    ALTER TABLE items ADD COLUMN full_name_key TEXT;
    ALTER TABLE items ADD COLUMN mpn_key TEXT;
    UPDATE items SET name_key = sku_key(name), full_name_key = sku_key(full_name), mpn_key = sku_key(mpn);
    CREATE INDEX items_name_key ON items(name_key);
    CREATE INDEX items_full_name_key ON items(full_name_key);
    CREATE INDEX items_mpn_key ON items(mpn_key);

    ALTER TABLE order_lines ADD COLUMN sku_key TEXT;
    UPDATE order_lines SET sku_key = sku_key(sku);
    CREATE INDEX order_lines_sku_key ON order_lines(sku_key);

    UPDATE OR IGNORE mappings SET store_sku_key = sku_key(store_sku)
    """
)
