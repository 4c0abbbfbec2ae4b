"""The interface's screens, one per view (App MODES, keys 1-6), and its dialogs.

base.py       DataScreen: status line, footer, the refresh cycle (worker reads, handler applies)
dashboard.py  pending.py  sku_log.py  orders.py  tasks.py  events.py
dialogs.py    ConfirmDialog, DetailDialog, KeysDialog (modal)
messages.py   EngineEvent (engine -> App), Loaded (worker -> screen)
"""
