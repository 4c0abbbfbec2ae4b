"""The engine: everything connex-tui does, without an interface (it never imports Textual or Rich).

`runtime.Engine` puts it together: it makes the one `clock.Clock`, opens the `db.Database` with it
(every part reads the time as `db.clock`), answers the Web Connector through `qbwc_session`, and
runs the storefront tasks of `sync_tasks` on the `scheduler`.

* Foundations: `clock` (time, stored timestamps), `db` + `schema` (SQLite, migrations), `config`,
  `events` + `event_log` (the bus, and its table), `logs` + `logfile`, `private_files`, `numbers`
  (untrusted numbers checked where they enter), `skus_rule` + `skus` (which store SKU is which item).
* The Web Connector session: `qbwc_session` answers the eight SOAP calls; `session_tickets` (who may
  begin), `session_plan` (what to ask next), `session_record` (answers applied), `session_orders`,
  `session_state`; `auth_throttle` (wrong passwords), `company` (which company file).
* QuickBooks to the store: `items` (items read, quantities queued), `pusher` (one batch),
  `dispatch` (batches side by side), `catalog` (the store's SKU index), `throughput`.
* The store to QuickBooks: `order_import` (store orders, refunds as credit memos) and `orders` (rows,
  and the transaction each becomes). The order model itself is the store layer's
  (`storefronts.base.StoreOrder`/`StoreLine`): clients return it and the engine stores it.
* For people: `views` (every read the interface and the admin CLI show), `admin_commands` (every
  action they take), `metrics` (`/metrics`).
"""
