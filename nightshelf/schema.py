"""One place for names: columns, event types, tables."""

from __future__ import annotations

USER = "user_id"
ITEM = "item_id"
EVENT_TYPE = "event_type"
EVENT_TIME = "event_time"
EVENT_ID = "event_id"
SESSION = "session_id"
PRICE = "price"
QUANTITY = "quantity"
WEIGHT = "weight"
DS = "ds"

REQUIRED_EVENT_COLUMNS = (USER, ITEM, EVENT_TYPE, EVENT_TIME)
OPTIONAL_EVENT_COLUMNS = (EVENT_ID, SESSION, PRICE, QUANTITY)
CLEAN_EVENT_COLUMNS = (EVENT_ID, USER, ITEM, EVENT_TYPE, EVENT_TIME, SESSION, PRICE, QUANTITY,
                       WEIGHT)

# canonical event types
VIEW, ADD_TO_CART, PURCHASE, FAVORITE = "view", "add_to_cart", "purchase", "favorite"
EVENT_TYPES = (VIEW, ADD_TO_CART, PURCHASE, FAVORITE)

# catalog
TITLE, CATEGORY, BRAND, AVAILABLE = "title", "category", "brand", "available"
REPURCHASABLE, FIRST_SEEN, DESCRIPTION = "repurchasable", "first_seen", "description"
REQUIRED_CATALOG_COLUMNS = (ITEM, TITLE, CATEGORY, BRAND, PRICE, AVAILABLE)

# quarantine
CORRUPT = "_corrupt_record"   # a landed line that did not parse (wrong column count, bad JSON)
RAW = "raw"
REJECT_REASON = "reject_reason"

# sequences table
SEQ_ITEMS, SEQ_TYPES, SEQ_TIMES = "items", "event_types", "event_times"
RECENT_PURCHASES = "recent_purchases"

# published recommendations
RANK, SCORE, REASON, MODEL_VERSION, RUN_ID = "rank", "score", "reason", "model_version", "run_id"
RECOMMENDATION_COLUMNS = (USER, RANK, ITEM, SCORE, REASON, MODEL_VERSION, RUN_ID)
